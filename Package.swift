// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "Celeriac",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "AMQPTransport", targets: ["AMQPTransport"]),
        .library(
            name: "Celeriac",
            targets: [
                "CeleriacCore", "CeleriacCanvas", "CeleriacTracing", "CeleriacWire", "CeleriacBroker",
                "CeleriacMessaging", "CeleriacAMQP", "CeleriacWorker", "CeleriacPool", "CeleriacMetrics", "CeleriacCLI",
                "CeleriacBeat", "CeleriacCoordination",
            ]),
        .library(name: "CeleriacTesting", targets: ["CeleriacTesting"]),
        .executable(name: "celeriac-demo", targets: ["celeriac-demo"]),
        .executable(name: "celeriac-bench", targets: ["celeriac-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.1.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CRabbitMQ",
            path: "Sources/CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"]), .brew(["rabbitmq-c"])]
        ),
        // The message and topology vocabulary (kombu's message model: body, properties, headers; exchanges, queues,
        // bindings) shared by the broker ports and the AMQP transport. No dependencies.
        .target(name: "CeleriacWire", swiftSettings: swiftSettings),
        .target(name: "AMQPTransport", dependencies: ["CRabbitMQ", "CeleriacWire"], swiftSettings: swiftSettings),
        // The broker ports: what the worker, client, beat and coordination ask of a broker. Imports only the vocabulary.
        .target(name: "CeleriacBroker", dependencies: ["CeleriacWire"], swiftSettings: swiftSettings),
        // HMAC-SHA256 for signed task messages, from the system's libcrypto (already there for librabbitmq's TLS).
        .systemLibrary(
            name: "CLibCrypto", path: "Sources/CLibCrypto", pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"]), .brew(["openssl"])]),
        .target(name: "CeleriacHMAC", dependencies: ["CLibCrypto"], swiftSettings: swiftSettings),
        .target(
            name: "CeleriacCore", dependencies: [.product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        .target(name: "CeleriacCanvas", dependencies: ["CeleriacCore"], swiftSettings: swiftSettings),
        .target(
            name: "CeleriacTracing",
            dependencies: ["CeleriacCore", .product(name: "Tracing", package: "swift-distributed-tracing")],
            swiftSettings: swiftSettings),
        // Celery protocol v2 over the ports: the task and result codecs, topology names, signing, the client.
        .target(
            name: "CeleriacMessaging",
            dependencies: ["CeleriacCore", "CeleriacCanvas", "CeleriacTracing", "CeleriacBroker", "CeleriacHMAC"],
            swiftSettings: swiftSettings),
        // RabbitMQ behind the ports (AMQPBroker): the only library above the transport that imports it.
        .target(name: "CeleriacAMQP", dependencies: ["CeleriacBroker", "AMQPTransport"], swiftSettings: swiftSettings),
        .target(
            name: "CeleriacCoordination",
            dependencies: [
                "CeleriacCore", "CeleriacBroker", "CeleriacMessaging", .product(name: "Logging", package: "swift-log"),
            ], swiftSettings: swiftSettings),
        .target(
            name: "CeleriacWorker",
            dependencies: [
                "CeleriacCore", "CeleriacCanvas", "CeleriacBroker", "CeleriacMessaging", "CeleriacTracing",
                "CeleriacCoordination",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ], swiftSettings: swiftSettings),
        // Testing without RabbitMQ: the in-memory broker, the manual clock, the broker contract, CeleriacTestApp.
        .target(
            name: "CeleriacTesting",
            dependencies: [
                "CeleriacCore", "CeleriacBroker", "CeleriacMessaging", "CeleriacWorker", "CeleriacCoordination",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ], swiftSettings: swiftSettings),
        .target(
            name: "CeleriacPool",
            dependencies: [
                "CeleriacCore", "CeleriacWorker", .product(name: "Logging", package: "swift-log"),
            ], swiftSettings: swiftSettings),
        .target(
            name: "CeleriacBeat",
            dependencies: [
                .product(name: "Yams", package: "Yams"),
                "CeleriacCore", "CeleriacBroker", "CeleriacMessaging",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ], swiftSettings: swiftSettings),
        .target(
            name: "CeleriacMetrics",
            dependencies: [
                .product(name: "CoreMetrics", package: "swift-metrics"),
                "CeleriacWorker", "CeleriacBeat", "CeleriacCoordination",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ], swiftSettings: swiftSettings),
        .target(
            name: "CeleriacCLI",
            dependencies: [
                "CeleriacCore", "CeleriacCanvas", "CeleriacBroker", "CeleriacMessaging", "CeleriacAMQP",
                "CeleriacWorker", "CeleriacPool", "CeleriacMetrics", "CeleriacBeat", "CeleriacCoordination",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ], swiftSettings: swiftSettings),
        .executableTarget(
            name: "celeriac-demo",
            dependencies: [
                "CeleriacCLI", "CeleriacCore", "CeleriacCanvas", "CeleriacBeat", "CeleriacMessaging", "CeleriacAMQP",
                "CeleriacCoordination",
            ], swiftSettings: swiftSettings),
        .executableTarget(
            name: "celeriac-bench",
            dependencies: [
                "AMQPTransport", "CeleriacCore", "CeleriacCanvas", "CeleriacBroker", "CeleriacMessaging",
                "CeleriacAMQP", "CeleriacWorker", "CeleriacPool", "CeleriacMetrics", "CeleriacCoordination",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ], swiftSettings: swiftSettings),
        // Fuzz targets (Fuzz/README.md): scripts/fuzz.sh builds this with -sanitize=fuzzer; a plain build replays a corpus.
        .executableTarget(
            name: "celeriac-fuzz",
            dependencies: ["AMQPTransport", "CeleriacMessaging", "CeleriacCore", "CeleriacBeat"],
            path: "Fuzz/Sources/celeriac-fuzz", swiftSettings: swiftSettings),
        .testTarget(
            name: "CeleriacBeatTests", dependencies: ["CeleriacBeat", "CeleriacCore"], swiftSettings: swiftSettings),
        .testTarget(name: "CeleriacCoreTests", dependencies: ["CeleriacCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "CeleriacCanvasTests", dependencies: ["CeleriacCanvas", "CeleriacCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "CeleriacMessagingTests",
            dependencies: ["CeleriacMessaging", "CeleriacCore", "CeleriacBroker", "CeleriacHMAC"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "CeleriacPoolTests", dependencies: ["CeleriacPool", "CeleriacCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "CeleriacCoordinationTests", dependencies: ["CeleriacCoordination", "CeleriacCore"],
            swiftSettings: swiftSettings),
        .testTarget(name: "AMQPTransportTests", dependencies: ["AMQPTransport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "CeleriacWorkerTests",
            dependencies: [
                "CeleriacTesting", "CeleriacWorker", "CeleriacMessaging", "CeleriacCanvas", "CeleriacCoordination",
                "CeleriacCore", "CeleriacBroker",
            ], swiftSettings: swiftSettings),
        // Every Swift example of README.md and docs/ (scripts/docs/check_docs.py keeps them identical to the pages).
        .testTarget(
            name: "DocExamplesTests",
            dependencies: [
                "CeleriacTesting", "CeleriacAMQP", "CeleriacWorker", "CeleriacMessaging", "CeleriacCanvas",
                "CeleriacCoordination",
                "CeleriacCore", "CeleriacBeat", "CeleriacCLI",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ], swiftSettings: swiftSettings),
        .testTarget(
            name: "CeleriacTestingTests", dependencies: ["CeleriacTesting", "CeleriacBroker", "CeleriacCore"],
            swiftSettings: swiftSettings),
        .testTarget(name: "CeleriacWireTests", dependencies: ["CeleriacWire"], swiftSettings: swiftSettings),
        .testTarget(
            name: "CeleriacCLITests",
            dependencies: [
                "CeleriacCLI", "CeleriacBeat", "CeleriacCoordination", "CeleriacCore", "CeleriacWorker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "AMQPTransport", "CeleriacCore", "CeleriacCanvas", "CeleriacBroker", "CeleriacMessaging",
                "CeleriacAMQP", "CeleriacWorker", "CeleriacPool", "CeleriacMetrics", "CeleriacBeat",
                "CeleriacTracing", "CeleriacCoordination", "CeleriacTesting",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ], swiftSettings: swiftSettings),
    ]
)

// API documentation (`make docs`, and `scripts/check-docs.sh` in `make test`): swift-docc-plugin is added only when
// CELERIAC_DOCC is set, so that a package depending on Celeriac never resolves or builds it.
if Context.environment["CELERIAC_DOCC"] != nil {
    package.dependencies.append(.package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"))
}
