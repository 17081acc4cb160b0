import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import CeleriacWorker
import Foundation
import Testing

@testable import CeleriacCoordination

/// The compact message form on a real RabbitMQ: a Celeriac worker runs both forms on a compact queue, and a real
/// Celery 5 worker that meets a compact message rejects it into Celeriac's dead-letter queue, never acks it, and
/// keeps serving.
@Suite(.tags(.integration))
struct CompactFormTests {
    /// A raw connection, a reply queue consumed on it, and the Celery-form `add` it can publish to `queue` and wait
    /// for: the control message of both tests.
    struct RawRequester {
        let connection: AMQPConnection
        let replies: String
        let consumer: AMQPConsumer

        static func start(url: AMQPURL) async throws -> RawRequester {
            let c = AMQPConnection(url: url, options: .init(name: "it-compact-raw", confirms: true))
            try await c.connect()
            let replies = uniqueName("compact-rep")
            try await c.declare(Topology.replyQueue(replies))
            return RawRequester(
                connection: c, replies: replies, consumer: try await c.consume(queue: replies, prefetch: 8))
        }

        /// Publishes `name(x, y)` in Celery's form to `queue` and returns the result's value.
        func call(_ name: String, _ x: Int, _ y: Int, queue: String, timeout: Duration) async throws -> JSONValue? {
            let m = TaskMessage(name: name, args: [.int(Int64(x)), .int(Int64(y))], replyTo: replies)
            try await connection.publish(TaskCodec.encode(m, routingKey: queue))
            let d = try await first(consumer.deliveries, within: timeout, "the result of \(m.id)") {
                $0.properties.correlationID == m.id
            }
            await connection.ack(d.tag)
            return ResultCodec.decode(d)?.result
        }

        func close() async {
            try? await connection.deleteQueue(replies)
            await connection.close()
        }
    }

    @Test func aCeleriacWorkerRunsBothFormsOnACompactQueue() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("compact")
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue], compactQueues: [queue])
        var config = CeleriacClient.Configuration(defaultQueue: queue, connectionName: "it-compact")
        config.compactQueues = [queue]
        let client = CeleriacClient(configuration: config, broker: AMQPBroker(url: url))
        try await client.start()

        #expect(try await client.send("it.add", args: [1, 2]).get(timeout: .seconds(30)) == .int(3))
        // Two retries, each republished by the worker to the compact queue (in the compact form).
        #expect(try await client.send("it.flaky", args: [2]).get(timeout: .seconds(30)) == .int(2))
        await #expect {
            _ = try await client.send("it.fail", args: ["compact"]).get(timeout: .seconds(30))
        } throws: { error in
            guard case .taskFailed(_, _, let f)? = error as? CeleriacError else { return false }
            return f.message == "compact"
        }
        // Celery's form on the same queue: the worker reads both, always.
        let raw = try await RawRequester.start(url: url)
        #expect(try await raw.call("it.add", 4, 5, queue: queue, timeout: .seconds(30)) == .int(9))
        // The queue carries the dead-letter exchange: declaring it as Celery does by default is refused.
        let plain = AMQPConnection(url: url, options: .init(name: "it-compact-plain", confirms: false))
        try await plain.connect()
        await #expect {
            try await plain.declare(Topology.workQueue(queue).1)
        } throws: { error in
            (error as? BrokerError)?.replyCode == 406
        }
        await plain.close()
        await raw.close()
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func aQueueDeclaredForTheOtherFormIsRefusedWithWhatToDo() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("compact-conflict")
        let plain = AMQPConnection(url: url, options: .init(name: "it-compact-conflict", confirms: false))
        try await plain.connect()
        try await plain.declare(Topology.workQueue(queue).1)  // as Celery, or a worker without the flag, declares it
        var config = CeleriacClient.Configuration(defaultQueue: queue, connectionName: "it-compact-conflict")
        config.compactQueues = [queue]
        let client = CeleriacClient(configuration: config, broker: AMQPBroker(url: url))
        try await client.start()
        await #expect {
            _ = try await client.send("it.add", args: [1, 1])
        } throws: { error in
            let text = String(describing: error)
            return text.contains("exists in Celery's form") && text.contains("rabbitmqctl delete_queue \(queue)")
        }
        // A worker that does not list it refuses to start on a compact queue, and says why.
        let compactQueue = uniqueName("compact-conflict")
        let (_, compactSpec, _) = Topology.workQueue(compactQueue, form: .compact)
        try await plain.declare(compactSpec)
        let worker = Worker(
            registry: TestTasks.registry(), configuration: .init(queues: [compactQueue]), broker: AMQPBroker(url: url),
            logger: testLogger("it.compact"))
        await #expect {
            try await worker.run()
        } throws: { error in
            String(describing: error).contains("is not listed in --compact-queues")
        }
        await client.close()
        try? await plain.deleteQueue(queue)
        try? await plain.deleteQueue(compactQueue)
        await plain.close()
    }

    @Test func aCeleryWorkerRejectsACompactMessageIntoTheDeadLetterQueue() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("compact-py")
        // Watch this queue's dead letters on a queue of our own (Celeriac's dead-letter exchange routes by the
        // queue's name).
        let watcher = AMQPConnection(url: url, options: .init(name: "it-compact-dlq", confirms: false))
        try await watcher.connect()
        let (dlx, dlq, all) = Topology.deadLetter()
        try await watcher.declare(dlx)
        try await watcher.declare(dlq)
        try await watcher.bind(all)
        let watch = uniqueName("compact-dead")
        try await watcher.declare(QueueSpec(watch).expires(milliseconds: 600_000))
        try await watcher.bind(BindingSpec(queue: watch, exchange: Topology.deadLetterExchange, routingKey: queue))
        let dead = try await watcher.consume(queue: watch, prefetch: 8)
        // The queue exists before anything is sent to it (the default exchange drops what no queue takes).
        let (exchange, spec, binding) = Topology.workQueue(queue, form: .compact)
        try await watcher.declare(exchange)
        try await watcher.declare(spec)
        try await watcher.bind(binding)

        var config = CeleriacClient.Configuration(defaultQueue: queue, connectionName: "it-compact-py")
        config.compactQueues = [queue]
        let client = CeleriacClient(configuration: config, broker: AMQPBroker(url: url))
        try await client.start()
        var env = ProcessInfo.processInfo.environment
        env["CELERIAC_INTEROP_COMPACT"] = "1"
        let pid = try CeleryInteropTests.spawnPythonWorker(app: "interop_app", queue: queue, environment: env)
        defer { Shell.kill(pid) }
        let raw = try await RawRequester.start(url: url)

        // Celery serves the queue (the first call also waits for it to start)...
        #expect(try await raw.call("interop.add", 2, 3, queue: queue, timeout: .seconds(90)) == .int(5))
        // ...meets a compact message of a task it has registered, and rejects it: the broker dead-letters it.
        let sent = try await client.send("interop.add", args: [20, 22])
        let d = try await first(dead.deliveries, within: .seconds(60), "the compact message in the dead letters") {
            TaskCodec.compactSummary($0)?.id == sent.id
        }
        await watcher.ack(d.tag)
        #expect(d.properties.type == TaskCodec.compactType)
        guard case .array(let deaths)? = d.properties.headers?["x-death"], case .table(let death)? = deaths.first
        else {
            Issue.record("the dead letter has no x-death header: \(d.properties)")
            return
        }
        #expect(death["reason"]?.stringValue == "rejected")
        #expect(death["queue"]?.stringValue == queue)
        // `celeriac dlq list` says what happened and what to do.
        let entry = DeadLetterQueue.entry(d, now: Date().timeIntervalSince1970)
        #expect(entry.task == "interop.add" && entry.taskID == sent.id && entry.queue == queue)
        #expect(entry.reason.contains("compact form") && entry.reason.contains("let only Celeriac workers consume"))
        // Celery did not crash: it still serves the queue.
        #expect(try await raw.call("interop.add", 40, 2, queue: queue, timeout: .seconds(30)) == .int(42))

        await raw.close()
        await client.close()
        try? await watcher.deleteQueue(watch)
        await watcher.close()
        await deleteQueues([queue], url: url)
    }
}
