import AMQPTransport
import CeleriacAMQP
import CeleriacCanvas
import CeleriacCore
import CeleriacMessaging
import CeleriacWorker
import Foundation
import Logging
import ServiceLifecycle

/// `celeriac-bench canvas`: chain of 100 (and 300, 1,000) end-to-end latency, group of 1,000 with every result collected, chord of
/// 1,000 header tasks joined over RabbitMQ. One in-process worker (16 slots, prefetch 128), like `tasks`; the
/// same scenarios for Celery are in bench/celery_canvas_bench.py.
struct CanvasBench {
    let url: AMQPURL
    let rounds: Int

    struct Pair: Codable, Sendable, Arguments2 {
        let x: Int; let y: Int; init(_ x: Int, _ y: Int) { self.x = x; self.y = y }
    }
    struct Numbers: Codable, Sendable, Arguments1 { let numbers: [Int]; init(_ n: [Int]) { numbers = n } }
    static let add = TaskName<Pair, Int>("demo.add", parameters: "x", "y")
    static let xsum = TaskName<Numbers, Int>("demo.xsum", parameters: "numbers")

    struct WrongResult: Error, CustomStringConvertible {
        let what: String
        var description: String { "wrong result: \(what)" }
    }

    func run() async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let queue = benchQueue("canvas")
        var registry = TaskRegistry()
        registry.register(Self.add) { p, _ in p.x + p.y }
        registry.register(Self.xsum) { n, _ in n.numbers.reduce(0, +) }
        let worker = Worker(
            registry: registry, configuration: .init(queues: [queue], concurrency: 16, prefetchMultiplier: 8),
            broker: AMQPBroker(url: url), logger: logger)
        let services = ServiceGroup(configuration: .init(services: [.init(service: worker)], logger: logger))
        let running = Task { try await services.run() }
        let client = CeleriacClient(
            configuration: .init(defaultQueue: queue, connectionName: "bench-canvas"), broker: AMQPBroker(url: url))
        try await client.start()
        while !worker.isReady { try await Task.sleep(for: .milliseconds(10)) }

        let n = max(1, rounds)
        var chain100: [Double] = [], longChains: [Int: [Double]] = [:]
        var group1000: [Double] = [], chord1000: [Double] = []
        var groupPublish: [Double] = [], rawPublish: [Double] = [], rawFanOutIn: [Double] = []
        for _ in 0..<n {
            var pipeline = Self.add.s(0, 1)
            for _ in 1..<100 { pipeline = pipeline | Self.add.s(1) }
            var t0 = ContinuousClock.now
            let hundred = try await client.apply(pipeline).get(timeout: .seconds(120))
            chain100.append(seconds(ContinuousClock.now - t0) * 1000)
            guard hundred == 100 else { throw WrongResult(what: "chain of 100 gave \(hundred)") }
            // Longer chains: each message carries the rest of the chain (Celery's form), so a step's message shrinks
            // from the chain's length to nothing; the figures show how the time grows with the length.
            for length in [300, 1000] {
                var long = Self.add.s(0, 1)
                for _ in 1..<length { long = long | Self.add.s(1) }
                t0 = ContinuousClock.now
                let sum = try await client.apply(long).get(timeout: .seconds(600))
                longChains[length, default: []].append(seconds(ContinuousClock.now - t0) * 1000)
                guard sum == length else { throw WrongResult(what: "chain of \(length) gave \(sum)") }
            }

            t0 = ContinuousClock.now
            let applied = try await client.apply(group { for i in 0..<1000 { Self.add.s(i, i) } })
            groupPublish.append(seconds(ContinuousClock.now - t0) * 1000)
            let values = try await applied.get(timeout: .seconds(120))
            group1000.append(seconds(ContinuousClock.now - t0) * 1000)
            guard values == (0..<1000).map({ 2 * $0 }) else { throw WrongResult(what: "group of 1,000") }

            t0 = ContinuousClock.now
            let total = try await client.apply(chord(group { for i in 0..<1000 { Self.add.s(i, i) } }, Self.xsum.s()))
                .get(timeout: .seconds(120))
            chord1000.append(seconds(ContinuousClock.now - t0) * 1000)
            guard total == 999_000 else { throw WrongResult(what: "chord of 1,000 gave \(total)") }

            let floor = try await rawFanOutFanIn(count: 1000)
            rawPublish.append(floor.publishMS)
            rawFanOutIn.append(floor.totalMS)
        }
        emit("canvas.chain100_ms", percentile(chain100, 0.5), "ms")
        emit("canvas.chain300_ms", percentile(longChains[300] ?? [], 0.5), "ms")
        emit("canvas.chain1000_ms", percentile(longChains[1000] ?? [], 0.5), "ms")
        // 1 when a chain's time grows linearly with its length; above 1, by how much a step of a long chain costs more.
        emit(
            "ratio.canvas.chain1000_vs_10x_chain100",
            percentile(longChains[1000] ?? [], 0.5) / (10 * percentile(chain100, 0.5)), "x"
        )
        emit("canvas.group1000_ms", percentile(group1000, 0.5), "ms")
        emit("canvas.chord1000_ms", percentile(chord1000, 0.5), "ms")
        // The same-run floors (issue #23): 1,000 Celery-shaped add messages published in one confirmed batch on the
        // bare transport, answered by a raw responder that publishes a ready-made result for each, all collected.
        emit("canvas.group1000_publish_ms", percentile(groupPublish, 0.5), "ms")
        emit("canvas.raw_batch1000_publish_ms", percentile(rawPublish, 0.5), "ms")
        emit("canvas.raw_fanout_fanin1000_ms", percentile(rawFanOutIn, 0.5), "ms")
        emit("ratio.canvas.group1000_publish_vs_raw", percentile(groupPublish, 0.5) / percentile(rawPublish, 0.5), "x")
        emit("ratio.canvas.group1000_vs_raw", percentile(group1000, 0.5) / percentile(rawFanOutIn, 0.5), "x")
        emit("ratio.canvas.chord1000_vs_raw", percentile(chord1000, 0.5) / percentile(rawFanOutIn, 0.5), "x")
        // A chain's floor: 100 times the broker's round trip for a Celery-shaped task and result between raw ends,
        // measured now (1,000 round trips).
        let roundTrip = percentile(try await celeryShapedFloor(url: url, rounds: 1000), 0.5)
        emit("canvas.celery_shaped_rtt_floor_p50_ms", roundTrip, "ms")
        emit("ratio.canvas.chain100_vs_100x_floor", percentile(chain100, 0.5) / (100 * roundTrip), "x")

        await client.close()
        await services.triggerGracefulShutdown()
        try await running.value
        try await deleteBenchQueue(queue, url: url)
    }

    /// A group's floor on the bare transport: `count` persistent Celery-shaped `add` messages published in one
    /// confirmed batch to a scratch queue, a raw responder (consume, publish a ready-made persistent result to the
    /// reply queue without waiting for its confirm, ack; on its connection's thread) and a requester that collects
    /// every result. Returns the
    /// publish time and the time until the last result, in ms.
    func rawFanOutFanIn(count: Int) async throws -> (publishMS: Double, totalMS: Double) {
        let requester = AMQPConnection(url: url, options: .init(name: "bench-raw-fanout", confirms: true))
        let responder = AMQPConnection(url: url, options: .init(name: "bench-raw-fanin", confirms: true))
        try await requester.connect()
        try await responder.connect()
        let tasks = benchQueue("raw-fanout"), replies = benchQueue("raw-fanin")
        try await requester.declare(QueueSpec(tasks).expires(milliseconds: 600_000))
        try await requester.declare(Topology.replyQueue(replies))
        let resultConsumer = try await requester.consume(queue: replies, prefetch: 1000)
        let taskConsumer = try await responder.consume(queue: tasks, prefetch: 128)
        let echo = Task(executorPreference: responder) {
            for await d in taskConsumer.deliveries {
                let id = d.properties.correlationID ?? ""
                // Without waiting for each confirm: a floor, below what a worker that confirms before it acks does.
                responder.publishInBackground(
                    ResultCodec.encode(.success(id, .int(4)), replyTo: d.properties.replyTo ?? "", correlationID: id))
                responder.ackInBackground(d.tag)
            }
        }
        let messages = (0..<count).map { i in
            TaskCodec.encode(
                TaskMessage(name: "demo.add", args: [.int(Int64(i)), .int(Int64(i))], replyTo: replies),
                routingKey: tasks)
        }
        let t0 = ContinuousClock.now
        try await requester.publish(messages)
        let published = ContinuousClock.now
        try await withTaskExecutorPreference(requester) {
            var results = resultConsumer.deliveries.makeAsyncIterator()
            for _ in 0..<count {
                guard let d = await results.next() else { break }
                requester.ackInBackground(d.tag)
            }
        }
        let end = ContinuousClock.now
        try await responder.cancel(taskConsumer)
        await echo.value
        try await requester.deleteQueue(tasks)
        try await requester.deleteQueue(replies)
        await requester.close()
        await responder.close()
        return (seconds(published - t0) * 1000, seconds(end - t0) * 1000)
    }
}
