import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import CeleriacPool
import CeleriacWorker
import Foundation
import Logging
import ServiceLifecycle

struct TaskBench {
    let url: AMQPURL
    let n: Int
    let rounds: Int
    let soak: Int
    let pool: String
    let concurrency: Int
    let pipelineDepth: Int
    let prefetchMultiplier: Int

    static func registry() -> TaskRegistry {
        var r = TaskRegistry()
        r.register(TaskName<NoArguments, JSONValue>("demo.noop")) { _, _ in .null }
        r.register(TaskName<AddArgs, Int>("demo.add", parameters: "x", "y")) { a, _ in a.x + a.y }
        return r
    }

    struct AddArgs: Codable, Sendable { let x: Int; let y: Int }

    func run() async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let queue = benchQueue("tasks")
        let client = CeleriacClient(
            configuration: .init(defaultQueue: queue, connectionName: "bench-client"), broker: AMQPBroker(url: url))
        try await client.start()

        // Enqueue with confirms: sequential (like Celery's apply_async loop) and 64 in flight.
        let sequential = min(n, 5000)
        var start = ContinuousClock.now
        for _ in 0..<sequential { _ = try await client.send("demo.noop", options: SendOptions(ignoreResult: true)) }
        emit("tasks.enqueue_rate_sequential", Double(sequential) / seconds(ContinuousClock.now - start), "tasks/s")
        start = ContinuousClock.now
        try await sendNoops(client, count: n)
        let enqueueRate = Double(n) / seconds(ContinuousClock.now - start)
        emit("tasks.enqueue_rate", enqueueRate, "tasks/s")
        let rawEnqueue = try await rawCeleryShapedPublish(count: n, lanes: 64)
        emit("tasks.raw_enqueue_rate_same_inflight", rawEnqueue, "msg/s")
        emit("ratio.tasks.enqueue_vs_raw_publish", enqueueRate / rawEnqueue, "x")
        let total = sequential + n

        // Drain: a worker with `concurrency` slots (16 by default) and prefetch 8x that runs everything enqueued.
        let counter = Counter()
        let executor: any TaskExecutor =
            pool == "process"
            ? ProcessPool(
                configuration: .init(
                    executable: "/proc/self/exe", arguments: ["pool-child"], processes: concurrency,
                    pipelineDepth: pipelineDepth))
            : InProcessExecutor()
        emit("tasks.pool_\(pool)_concurrency", Double(concurrency), "slots")
        let worker = Worker(
            registry: Self.registry(),
            configuration: .fixedPrefetch(
                queues: [queue], concurrency: concurrency, prefetchMultiplier: prefetchMultiplier),
            broker: AMQPBroker(url: url),
            logger: logger, observer: counter, executor: executor)
        let group = ServiceGroup(configuration: .init(services: [.init(service: worker)], logger: logger))
        let idleRSS = rssMB()
        let cpuBefore = cpuSeconds()
        start = ContinuousClock.now
        let running = Task { try await group.run() }
        try await counter.wait(for: total, while: running)
        let end = ContinuousClock.now
        // Timed from the moment the worker consumes, as the raw consumer below is timed from its basic.consume;
        // the worker's start-up (two connections, topology, remote control) is reported on its own.
        let consuming = counter.consumingSince ?? start
        let drain = Double(total) / seconds(end - consuming)
        emit("tasks.drain_rate", drain, "tasks/s")
        emit("tasks.drain_rate_including_startup", Double(total) / seconds(end - start), "tasks/s")
        emit("worker.startup_ms", seconds(consuming - start) * 1000, "ms")
        // CPU of the worker process and its pool children (their whole life) per task: steadier than the rate on a
        // shared machine (the broker's CPU is not included).
        let children = (executor as? ProcessPool)?.childPIDs ?? []
        let cpu = cpuSeconds() - cpuBefore + children.map { cpuSeconds(of: $0) }.reduce(0, +)
        emit("tasks.drain_cpu_per_task", cpu / Double(total) * 1_000_000, "us")
        emit("worker.rss_idle_mb", idleRSS, "MB")
        emit("worker.rss_load_mb", rssMB(), "MB")
        // The yardstick, side by side: the raw transport consuming and acking the same number of persistent
        // Celery-shaped messages at the worker's prefetch, right after the drain.
        let prefetch = concurrency * prefetchMultiplier
        let raw = try await rawCeleryShapedConsume(count: total, prefetch: prefetch)
        emit("tasks.prefetch", Double(prefetch), "messages")
        emit("tasks.raw_consume_rate_same_prefetch", raw, "msg/s")
        emit("ratio.tasks.drain_vs_raw_consume", drain / raw, "x")

        // Round trip of add(2, 2).get().
        var rtts: [Double] = []
        for i in 0..<(rounds + 20) {
            let t0 = ContinuousClock.now
            _ = try await client.send("demo.add", args: [2, 2]).get(timeout: .seconds(30))
            if i >= 20 { rtts.append(seconds(ContinuousClock.now - t0) * 1000) }
        }
        emit("tasks.rtt_p50", percentile(rtts, 0.5), "ms")
        emit("tasks.rtt_p99", percentile(rtts, 0.99), "ms")
        // The broker's floors for this round trip, in the same run (issue #23, target 3): the Celery-shaped task and
        // result between raw ends, answered on the consuming connection, and answered as the worker answers.
        let floor = try await celeryShapedFloor(url: url, rounds: rounds)
        let confirmedFloor = try await celeryShapedFloor(url: url, rounds: rounds, confirmedResults: true)
        for (name, times) in [("celery_shaped", floor), ("confirmed_result", confirmedFloor)] {
            for (p, label) in [(0.5, "p50"), (0.99, "p99")] {
                emit("tasks.\(name)_floor_\(label)", percentile(times, p), "ms")
                emit("ratio.tasks.rtt_\(label)_vs_\(name)_floor", percentile(rtts, p) / percentile(times, p), "x")
            }
        }
        try await roundTripParts(client: client, worker: queue)

        // ETA precision: tasks with a 2 s countdown (held by the broker's delay queues); lateness = when the
        // result says it finished minus the ETA.
        var lateness: [Double] = []
        let etaRounds = min(rounds, 100)
        try await withThrowingTaskGroup(of: Double?.self) { group in
            for _ in 0..<etaRounds {
                let eta = Date().addingTimeInterval(2)
                let r = try await client.send("demo.add", args: [1, 1], options: SendOptions(eta: eta))
                group.addTask {
                    _ = try await r.get(timeout: .seconds(60))
                    guard let done = await client.state(of: r.id)?.dateDone else { return nil }
                    return done.timeIntervalSince(eta) * 1000
                }
            }
            for try await l in group { if let l { lateness.append(l) } }
        }
        emit("tasks.eta_lateness_p50", percentile(lateness, 0.5), "ms")
        emit("tasks.eta_lateness_p99", percentile(lateness, 0.99), "ms")
        emit("tasks.eta_early_count", Double(lateness.filter { $0 < 0 }.count), "tasks")

        if soak > 0 {
            // In four quarters, with the RSS after each: a leak shows as a rise from quarter to quarter.
            let before = counter.count
            let quarter = soak / 4
            for q in 1...4 {
                let count = q == 4 ? soak - 3 * quarter : quarter
                try await sendNoops(client, count: count)
                try await counter.wait(for: before + (q == 4 ? soak : q * quarter), while: running)
                if q < 4 { emit("worker.rss_soak_quarter\(q)_mb", rssMB(), "MB") }
            }
            emit("worker.rss_after_soak_mb", rssMB(), "MB")
            emit("worker.soak_tasks", Double(soak), "tasks")
        }
        await group.triggerGracefulShutdown()
        try await running.value
        try await deleteBenchQueue(queue, url: url)
        await client.close()
    }

    /// The enqueue's limit (issue #23): `count` persistent Celery-shaped `demo.noop` messages (the headers and body
    /// of `send`'s, no reply wanted) published with confirms on the bare transport by `lanes` concurrent publishers,
    /// each waiting for its confirm before the next, as the client's 64 lanes do. Returns messages per second.
    func rawCeleryShapedPublish(count: Int, lanes: Int) async throws -> Double {
        let c = AMQPConnection(url: url, options: .init(name: "bench-raw-publish", confirms: true))
        try await c.connect()
        let q = benchQueue("raw-publish")
        try await c.declare(QueueSpec(q).expires(milliseconds: 600_000))
        let message = TaskCodec.encode(TaskMessage(name: "demo.noop", ignoreResult: true), routingKey: q)
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<lanes {
                group.addTask {
                    for _ in stride(from: lane, to: count, by: lanes) { try await c.publish(message) }
                }
            }
            try await group.waitForAll()
        }
        let rate = Double(count) / seconds(ContinuousClock.now - start)
        try await c.deleteQueue(q)
        await c.close()
        return rate
    }

    /// Consume+ack rate of `count` persistent Celery-shaped no-op messages at `prefetch`, on the connection's thread.
    func rawCeleryShapedConsume(count: Int, prefetch: Int) async throws -> Double {
        let c = AMQPConnection(url: url, options: .init(name: "bench-raw-consume", confirms: true))
        try await c.connect()
        let q = benchQueue("raw-celery")
        try await c.declare(QueueSpec(q).expires(milliseconds: 600_000))
        for batch in stride(from: 0, to: count, by: 1000) {
            try await c.publish(
                (0..<min(1000, count - batch)).map { _ in
                    TaskCodec.encode(TaskMessage(name: "demo.noop", replyTo: "bench-reply"), routingKey: q)
                })
        }
        let rate = try await AMQPBench(url: url, n: count, rounds: 0).consumeAll(
            c, queue: q, count: count, prefetch: UInt16(clamping: prefetch))
        try await c.deleteQueue(q)
        await c.close()
        return rate
    }

    /// Splits `tasks.rtt_*` in two: a raw requester (publish the Celery-shaped message, wait for the result, both
    /// on its connection's thread) against the real worker, and the real client against a raw responder (replies
    /// with a ready-made result on its connection's thread). Each side's figure minus
    /// `amqp.celery_shaped_rtt_p50` is what that side adds to the broker's round trip.
    func roundTripParts(client: CeleriacClient, worker queue: String) async throws {
        let requester = AMQPConnection(url: url, options: .init(name: "bench-raw-requester", confirms: true))
        try await requester.connect()
        let replies = benchQueue("raw-rep")
        try await requester.declare(Topology.replyQueue(replies))
        let resultConsumer = try await requester.consume(queue: replies, prefetch: 8)
        let toWorker = try await celeryShapedRoundTrips(requester, to: queue, replies: resultConsumer, rounds: rounds)
        emit("tasks.rtt_raw_requester_worker_p50", percentile(toWorker, 0.5), "ms")

        let responder = AMQPConnection(url: url, options: .init(name: "bench-raw-responder", confirms: false))
        try await responder.connect()
        let requests = benchQueue("raw-req")
        try await responder.declare(QueueSpec(requests))  // as the client declares it (deleted below)
        let taskConsumer = try await responder.consume(queue: requests, prefetch: 8)
        let echo = Task(executorPreference: responder) {
            for await d in taskConsumer.deliveries {
                let id = d.properties.correlationID ?? ""
                try? await responder.publish(
                    ResultCodec.encode(.success(id, .int(4)), replyTo: d.properties.replyTo ?? "", correlationID: id))
                responder.ackInBackground(d.tag)
            }
        }
        var fromClient: [Double] = []
        for i in 0..<(rounds + 20) {
            let t0 = ContinuousClock.now
            _ = try await client.send("demo.add", args: [2, 2], options: SendOptions(queue: requests)).get(
                timeout: .seconds(30))
            if i >= 20 { fromClient.append(seconds(ContinuousClock.now - t0) * 1000) }
        }
        emit("tasks.rtt_client_raw_responder_p50", percentile(fromClient, 0.5), "ms")
        echo.cancel()
        try await requester.deleteQueue(replies)
        try await responder.deleteQueue(requests)
        await requester.close()
        await responder.close()
    }
}
