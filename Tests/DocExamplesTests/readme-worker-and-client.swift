import CeleriacAMQP  // AMQPBroker
import CeleriacCore  // TaskName, TaskRegistry
import CeleriacMessaging  // CeleriacClient
import CeleriacWorker  // Worker
import Logging
import ServiceLifecycle

struct AddArgs: Codable, Sendable { let x: Int; let y: Int }

enum QuickStart {
    static let add = TaskName<AddArgs, Int>("demo.add", parameters: "x", "y")  // the wire name, as in Python

    /// In `main.swift`: `try await QuickStart.run()`.
    static func run() async throws {
        let logger = Logger(label: "quickstart")
        var registry = TaskRegistry()
        registry.register(add) { args, _ in args.x + args.y }

        let broker = try AMQPBroker("amqp://guest:guest@127.0.0.1:5682/%2F")
        let worker = Worker(
            registry: registry, configuration: .init(queues: ["celery"], concurrency: 4),
            broker: broker, logger: logger)
        let client = CeleriacClient(configuration: .init(defaultQueue: "celery"), broker: broker)

        let services = ServiceGroup(services: [worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        async let running: Void = services.run()
        try await client.start()
        let sum = try await client.delay(add, AddArgs(x: 2, y: 3)).get(timeout: .seconds(30))
        print("2 + 3 =", sum)  // 2 + 3 = 5
        await client.close()
        await services.triggerGracefulShutdown()
        try await running
    }
}
