import CeleriacAMQP
import CeleriacCore
import CeleriacWorker
import Logging
import ServiceLifecycle

struct EchoArgs: Codable, Sendable { let value: String }

enum WorkerExample {
    static let echo = TaskName<EchoArgs, String>("example.echo", parameters: "value")

    static func run() async throws {
        let logger = Logger(label: "worker")
        var registry = TaskRegistry()
        registry.register(echo) { args, _ in args.value }

        var configuration = Worker.Configuration(queues: ["celery"], concurrency: 8, prefetchMultiplier: 2)
        configuration.events = true  // -E
        configuration.duplicateWindow = 10_000  // --duplicate-window

        let broker = try AMQPBroker("amqp://guest:guest@127.0.0.1:5682/%2F")
        let worker = Worker(registry: registry, configuration: configuration, broker: broker, logger: logger)
        let services = ServiceGroup(services: [worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await services.run()
    }
}
