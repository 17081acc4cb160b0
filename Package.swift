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
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CRabbitMQ",
            path: "Sources/CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"]), .brew(["rabbitmq-c"])]
        ),
        .target(name: "AMQPTransport", dependencies: ["CRabbitMQ"], swiftSettings: swiftSettings),
        .target(name: "CeleriacCore", dependencies: [.product(name: "Logging", package: "swift-log")], swiftSettings: swiftSettings),
        .target(name: "CeleriacAMQP", dependencies: ["CeleriacCore", "AMQPTransport"], swiftSettings: swiftSettings),
        .testTarget(name: "CeleriacCoreTests", dependencies: ["CeleriacCore"], swiftSettings: swiftSettings),
        .testTarget(name: "AMQPTransportTests", dependencies: ["AMQPTransport"], swiftSettings: swiftSettings),
        .testTarget(name: "IntegrationTests", dependencies: ["AMQPTransport"], swiftSettings: swiftSettings),
    ]
)
