// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "Celeriac",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "AMQPTransport", targets: ["AMQPTransport"]),
        .library(name: "Celeriac", targets: ["CeleriacCore", "CeleriacCanvas", "CeleriacTracing", "CeleriacAMQP", "CeleriacWorker", "CeleriacPool", "CeleriacMetrics", "CeleriacCLI", "CeleriacBeat", "CeleriacCoordination"]),
        .executable(name: "celeriac-demo", targets: ["celeriac-demo"]),
        .executable(name: "celeriac-bench", targets: ["celeriac-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.1.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CRabbitMQ",
            path: "Sources/CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"]), .brew(["rabbitmq-c"])]
        ),
        .target(name: "AMQPTransport", dependencies: ["CRabbitMQ"], swiftSettings: swiftSettings),
        // HMAC-SHA256 for signed task messages, from the system's libcrypto (already there for librabbitmq's TLS).
        .systemLibrary(name: "CLibCrypto", path: "Sources/CLibCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"]), .brew(["openssl"])]),
        .target(name: "CeleriacHMAC", dependencies: ["CLibCrypto"], swiftSettings: swiftSettings),
        .target(name: "CeleriacCore", dependencies: [.product(name: "Logging", package: "swift-log")], swiftSettings: swiftSettings),
        .target(name: "CeleriacCanvas", dependencies: ["CeleriacCore"], swiftSettings: swiftSettings),
        .target(name: "CeleriacTracing", dependencies: ["CeleriacCore", .product(name: "Tracing", package: "swift-distributed-tracing")], swiftSettings: swiftSettings),
        .target(name: "CeleriacAMQP", dependencies: ["CeleriacCore", "CeleriacCanvas", "CeleriacTracing", "AMQPTransport", "CeleriacHMAC"], swiftSettings: swiftSettings),
        .target(name: "CeleriacCoordination", dependencies: [
            "CeleriacCore", "CeleriacAMQP", "AMQPTransport", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: swiftSettings),
        .target(name: "CeleriacWorker", dependencies: [
            "CeleriacCore", "CeleriacCanvas", "CeleriacAMQP", "CeleriacTracing", "AMQPTransport", "CeleriacCoordination",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: swiftSettings),
        .target(name: "CeleriacPool", dependencies: [
            "CeleriacCore", "CeleriacWorker", .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: swiftSettings),
        .target(name: "CeleriacBeat", dependencies: [
            "CeleriacCore", "CeleriacAMQP", "AMQPTransport",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: swiftSettings),
        .target(name: "CeleriacMetrics", dependencies: [
            "CeleriacWorker", "CeleriacBeat", "CeleriacCoordination",
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: swiftSettings),
        .target(name: "CeleriacCLI", dependencies: [
            "CeleriacCore", "CeleriacCanvas", "CeleriacAMQP", "CeleriacWorker", "CeleriacPool", "CeleriacMetrics", "CeleriacBeat", "AMQPTransport", "CeleriacCoordination",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
        ], swiftSettings: swiftSettings),
        .executableTarget(name: "celeriac-demo", dependencies: ["CeleriacCLI", "CeleriacCore", "CeleriacCanvas", "CeleriacBeat", "CeleriacAMQP", "AMQPTransport", "CeleriacCoordination"], swiftSettings: swiftSettings),
        .executableTarget(name: "celeriac-bench", dependencies: [
            "AMQPTransport", "CeleriacCore", "CeleriacCanvas", "CeleriacAMQP", "CeleriacWorker", "CeleriacPool", "CeleriacMetrics", "CeleriacCoordination",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: swiftSettings),
        // Fuzz targets (Fuzz/README.md): scripts/fuzz.sh builds this with -sanitize=fuzzer; a plain build replays a corpus.
        .executableTarget(name: "celeriac-fuzz", dependencies: ["AMQPTransport", "CeleriacAMQP", "CeleriacCore", "CeleriacBeat"],
                          path: "Fuzz/Sources/celeriac-fuzz", swiftSettings: swiftSettings),
        .testTarget(name: "CeleriacBeatTests", dependencies: ["CeleriacBeat", "CeleriacCore"], swiftSettings: swiftSettings),
        .testTarget(name: "CeleriacCoreTests", dependencies: ["CeleriacCore"], swiftSettings: swiftSettings),
        .testTarget(name: "CeleriacCanvasTests", dependencies: ["CeleriacCanvas", "CeleriacCore"], swiftSettings: swiftSettings),
        .testTarget(name: "CeleriacAMQPTests", dependencies: ["CeleriacAMQP", "CeleriacCore", "AMQPTransport", "CeleriacHMAC"], swiftSettings: swiftSettings),
        .testTarget(name: "CeleriacPoolTests", dependencies: ["CeleriacPool", "CeleriacCore"], swiftSettings: swiftSettings),
        .testTarget(name: "CeleriacCoordinationTests", dependencies: ["CeleriacCoordination", "CeleriacCore"], swiftSettings: swiftSettings),
        .testTarget(name: "AMQPTransportTests", dependencies: ["AMQPTransport"], swiftSettings: swiftSettings),
        .testTarget(name: "IntegrationTests", dependencies: [
            "AMQPTransport", "CeleriacCore", "CeleriacCanvas", "CeleriacAMQP", "CeleriacWorker", "CeleriacPool", "CeleriacMetrics", "CeleriacBeat",
            "CeleriacTracing", "CeleriacCoordination",
            .product(name: "Tracing", package: "swift-distributed-tracing"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ], swiftSettings: swiftSettings),
    ]
)
