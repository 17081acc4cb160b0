import AMQPTransport
import ArgumentParser
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import CeleriacPool
import CeleriacWorker
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// `celeriac-bench SCENARIO [--broker URL] [--n N]`: prints `name value unit` lines.
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "celeriac-bench",
        abstract:
            "Benchmarks: `amqp` (raw transport), `tasks` (client + worker, --pool), `defaults` (the worker at the CLI's defaults against fixed prefetch), `pools` (process against async pool), `compact` (the compact message form against Celery's and the raw consume), `pool` (process-pool dispatch), `canvas` (chain/group/chord), `coordination` (global limits, unique tasks). Prints `name value unit` lines."
    )

    @Argument(help: "amqp, tasks, defaults, pools, compact, pool, canvas, observability or coordination") var scenario:
        String
    @Option(help: "Broker URL") var broker: String =
        ProcessInfo.processInfo.environment["CELERIAC_BROKER_URL"] ?? "amqp://guest:guest@127.0.0.1:5682/%2F"
    @Option(help: "Messages or tasks per scenario") var n: Int = 100_000
    @Option(help: "Round trips for latency figures") var rounds: Int = 1000
    @Option(help: "Tasks for the soak (0 = skip)") var soak: Int = 0
    @Option(help: "tasks: the worker's pool, async (in process) or process (child processes)") var pool: String =
        "async"
    @Option(name: .customShort("c"), help: "tasks: worker concurrency (default 16 for async, 2 for process)")
    var concurrency: Int?
    @Option(help: "pool, tasks --pool process: runs a child may hold at once (1: no pipelining)") var pipelineDepth:
        Int = 2
    @Option(
        help:
            "tasks, pools, compact: the worker's fixed prefetch multiplier (default 8 for tasks and compact, 32 for pools)"
    )
    var prefetchMultiplier: Int?
    @Option(help: "defaults, pools, compact: interleaved runs of each configuration (the median is printed)")
    var repeats: Int = 3
    @Option(help: "observability: run one side only, on or off (for profiling it)") var observedSide: String?
    @Option(help: "observability: observe with metrics or events only (diagnosis)") var observedWith: String?

    func run() async throws {
        if scenario == "pool-child" {
            // The process pool's children: this executable in child mode (see --pool process).
            var logger = Logger(label: "bench.child")
            logger.logLevel = .error
            await PoolChild.run(registry: TaskBench.registry(), hostname: "bench", logger: logger)
        }
        let url = try AMQPURL(broker)
        guard pool == "async" || pool == "process" else { throw ValidationError("--pool must be async or process") }
        let interrupted = Task { await BenchQueues.deleteOnSignal(url: url) }
        defer { interrupted.cancel() }
        switch scenario {
        case "amqp": try await AMQPBench(url: url, n: n, rounds: rounds).run()
        case "pool":
            try await PoolBench(rounds: rounds, concurrency: concurrency ?? 2, pipelineDepth: pipelineDepth).run()
        case "tasks":
            try await TaskBench(
                url: url, n: n, rounds: rounds, soak: soak, pool: pool,
                concurrency: concurrency ?? (pool == "process" ? 2 : 16), pipelineDepth: pipelineDepth,
                prefetchMultiplier: prefetchMultiplier ?? 8
            ).run()
        case "defaults": try await DefaultsBench(url: url, n: n, repeats: max(1, repeats)).run()
        case "pools":
            try await PoolsBench(
                url: url, n: n, repeats: max(1, repeats), concurrency: concurrency ?? 4,
                prefetchMultiplier: prefetchMultiplier ?? 32
            ).run()
        case "compact":
            try await CompactBench(
                url: url, n: n, repeats: max(1, repeats), processPool: pool == "process",
                concurrency: concurrency ?? (pool == "process" ? 4 : 16), prefetchMultiplier: prefetchMultiplier ?? 8
            ).run()
        case "canvas": try await CanvasBench(url: url, rounds: min(rounds, 5)).run()
        case "observability":
            try await ObservabilityBench(
                url: url, n: min(n, 50_000), concurrency: concurrency ?? 16, side: observedSide, only: observedWith
            ).run()
        case "coordination": try await CoordinationBench(url: url, n: n, rounds: rounds).run()
        default:
            throw ValidationError(
                "unknown scenario '\(scenario)' (amqp, tasks, defaults, pools, compact, pool, canvas, observability, coordination)"
            )
        }
    }
}

func emit(_ name: String, _ value: Double, _ unit: String) {
    let text = value >= 100 ? String(Int(value.rounded())) : String(format: "%.3f", value)
    print("\(name) \(text) \(unit)")
    fflush(nil)  // flush every stream: `stdout` itself is not concurrency-safe to name in Swift 6
}

/// A diagnostic line on stderr (each interleaved run's figures, before `emit` prints their medians on stdout).
func note(_ text: String) {
    FileHandle.standardError.write(Data("celeriac-bench: \(text)\n".utf8))
}

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
}

func rssMB() -> Double {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let parts = text.split(separator: " ")
    return parts.count > 1 ? (Double(parts[1]) ?? 0) * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576 : 0
}

/// CPU seconds (user + system) used so far by process `pid`, or by this process, from /proc.
func cpuSeconds(of pid: Int32? = nil) -> Double {
    guard let text = try? String(contentsOfFile: pid.map { "/proc/\($0)/stat" } ?? "/proc/self/stat", encoding: .utf8),
        let close = text.lastIndex(of: ")")
    else { return 0 }
    // After "(comm)": state, ppid, ... utime and stime are the 12th and 13th fields.
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// Deletes a scenario's queue and its exchange at the end of a run.
func deleteBenchQueue(_ queue: String, url: AMQPURL) async throws {
    let cleanup = AMQPConnection(url: url, options: .init(name: "bench-cleanup", confirms: false))
    try await cleanup.connect()
    try await cleanup.deleteQueue(queue)
    try? await cleanup.deleteExchange(queue)
    await cleanup.close()
}

/// Sends `count` `demo.noop` (no result wanted) through `client` in `lanes` concurrent lanes, each waiting for its
/// confirm before the next.
func sendNoops(_ client: CeleriacClient, count: Int, lanes: Int = 64) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for lane in 0..<lanes {
            group.addTask {
                for _ in stride(from: lane, to: count, by: lanes) {
                    _ = try await client.send("demo.noop", options: SendOptions(ignoreResult: true))
                }
            }
        }
        try await group.waitForAll()
    }
}

extension Worker.Configuration {
    /// A worker whose prefetch stays at `concurrency × prefetchMultiplier` (no adaptive prefetch): what a bench
    /// compares with a raw consume at the same prefetch.
    static func fixedPrefetch(
        queues: [String] = [Topology.defaultQueue], concurrency: Int, prefetchMultiplier: Int
    ) -> Self {
        var configuration = Self(queues: queues, concurrency: concurrency, prefetchMultiplier: prefetchMultiplier)
        configuration.adaptivePrefetch = nil
        return configuration
    }
}

/// A fresh queue name for one scenario run, remembered so that an interrupted run can delete it (see
/// ``BenchQueues``).
func benchQueue(_ prefix: String) -> String {
    let name = "bench-\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
    BenchQueues.names.withLock { _ = $0.insert(name) }
    return name
}

/// The queues a run declared. A run deletes its queues when it ends; one interrupted by Ctrl-C or SIGTERM would leave
/// them on the broker, with the messages it had queued, and skew the next runs' figures (a consumer at the same
/// prefetch drains a broker holding 35 000 stray messages at half the rate). ``deleteOnSignal(url:)`` deletes
/// them (and their exchanges, which the worker names after them) before the process exits.
enum BenchQueues {
    static let names = Mutex<Set<String>>([])

    /// Waits for SIGINT or SIGTERM, then deletes every queue this run named and exits with 130. Says on stderr what
    /// it deleted: a `deleted QUEUE (N messages)` line per queue that held messages, and how many more there were.
    static func deleteOnSignal(url: AMQPURL) async {
        for await signal in await UnixSignalsSequence(trapping: .sigint, .sigterm) {
            let queues = names.withLock { $0 }.sorted()
            var report = "celeriac-bench: \(signal); deleting this run's \(queues.count) bench queues\n"
            let cleanup = AMQPConnection(url: url, options: .init(name: "bench-interrupted", confirms: false))
            if (try? await cleanup.connect()) != nil {
                var empty = 0
                for queue in queues {
                    // Idempotent on RabbitMQ: a queue the run already deleted is deleted again without error, and
                    // reports no messages, like an empty one.
                    if let messages = try? await cleanup.deleteQueue(queue) {
                        if messages > 0 {
                            report += "celeriac-bench: deleted \(queue) (\(messages) messages)\n"
                        } else {
                            empty += 1
                        }
                    }
                    try? await cleanup.deleteExchange(queue)
                }
                if empty > 0 { report += "celeriac-bench: \(empty) more were empty or already deleted\n" }
                await cleanup.close()
            } else {
                report +=
                    "celeriac-bench: cannot reach the broker; delete them by hand: \(queues.joined(separator: " "))\n"
            }
            FileHandle.standardError.write(Data(report.utf8))
            exit(130)
        }
    }
}

/// The process pool alone (no broker): round trip of a no-op through a child, and throughput with N children, with
/// one caller per child (`pool.throughput`) and with as many callers as the worker's slots (`pool.throughput_full`:
/// children × (depth + 1), so that the children's queues stay full).
struct PoolBench {
    let rounds: Int
    let concurrency: Int
    let pipelineDepth: Int

    func run() async throws {
        let pool = ProcessPool(
            configuration: .init(
                executable: "/proc/self/exe", arguments: ["pool-child"], processes: concurrency,
                pipelineDepth: pipelineDepth))
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        try await pool.start(logger: logger)
        guard let task = TaskBench.registry()["demo.noop"] else { return }
        let message = TaskMessage(name: "demo.noop")
        let context = TaskContext(message: message, logger: logger, hostname: "bench", options: task.options)
        var rtts: [Double] = []
        for _ in 0..<rounds {
            let t0 = ContinuousClock.now
            _ = try await pool.run(message, task: task, context: context, limits: .init())
            rtts.append(seconds(ContinuousClock.now - t0) * 1_000_000)
        }
        emit("pool.rtt_p50", percentile(rtts, 0.5), "us")
        emit("pool.rtt_p99", percentile(rtts, 0.99), "us")
        /// Tasks per second with `callers` concurrent callers, each running `rounds` no-ops.
        func throughput(callers: Int) async throws -> Double {
            let start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<callers {
                    group.addTask {
                        for _ in 0..<rounds {
                            _ = try await pool.run(message, task: task, context: context, limits: .init())
                        }
                    }
                }
                try await group.waitForAll()
            }
            return Double(rounds * callers) / seconds(ContinuousClock.now - start)
        }
        emit("pool.throughput", try await throughput(callers: concurrency), "tasks/s")
        let full = try await throughput(callers: concurrency + pool.extraSlots)
        emit("pool.throughput_full", full, "tasks/s")
        await pool.stop()
    }
}

struct AMQPBench {
    let url: AMQPURL
    let n: Int
    let rounds: Int

    func run() async throws {
        let pub = AMQPConnection(url: url, options: .init(name: "bench-pub", confirms: false))
        let conf = AMQPConnection(url: url, options: .init(name: "bench-confirm", confirms: true))
        let con = AMQPConnection(url: url, options: .init(name: "bench-consume", confirms: false))
        try await pub.connect()
        try await conf.connect()
        try await con.connect()
        let body = [UInt8](repeating: 0x78, count: 300)
        let props = BasicProperties(contentType: "application/json", deliveryMode: 2)

        // Publish without confirms.
        var q = benchQueue("pub")
        try await pub.declare(QueueSpec(q).expires(milliseconds: 600_000))
        var start = ContinuousClock.now
        for batch in stride(from: 0, to: n, by: 1000) {
            try await pub.publish(
                Array(
                    repeating: OutgoingMessage(routingKey: q, body: body, properties: props),
                    count: min(1000, n - batch)))
        }
        _ = try await pub.inspect(queue: q)
        emit("amqp.publish_rate", Double(n) / seconds(ContinuousClock.now - start), "msg/s")

        // Consume + ack at prefetch 100 (the queue is full now), then refill for prefetch 1000.
        emit("amqp.consume_ack_rate_prefetch100", try await consumeAll(con, queue: q, count: n, prefetch: 100), "msg/s")
        for batch in stride(from: 0, to: n, by: 1000) {
            try await pub.publish(
                Array(
                    repeating: OutgoingMessage(routingKey: q, body: body, properties: props),
                    count: min(1000, n - batch)))
        }
        _ = try await pub.inspect(queue: q)
        emit(
            "amqp.consume_ack_rate_prefetch1000", try await consumeAll(con, queue: q, count: n, prefetch: 1000), "msg/s"
        )
        try await pub.deleteQueue(q)

        // Publish with confirms, window 1000.
        q = benchQueue("confirm")
        try await conf.declare(QueueSpec(q).expires(milliseconds: 600_000))
        start = ContinuousClock.now
        for batch in stride(from: 0, to: n, by: 1000) {
            try await conf.publish(
                Array(
                    repeating: OutgoingMessage(routingKey: q, body: body, properties: props),
                    count: min(1000, n - batch)))
        }
        emit("amqp.publish_confirm_rate", Double(n) / seconds(ContinuousClock.now - start), "msg/s")
        try await conf.deleteQueue(q)

        // Celery-shaped messages (19 headers, protocol v2 body).
        for prefetch in [8, 128] {
            q = benchQueue("celery")
            try await pub.declare(QueueSpec(q).expires(milliseconds: 600_000))
            let count = min(n, 50_000)
            for batch in stride(from: 0, to: count, by: 1000) {
                let messages = (0..<min(1000, count - batch)).map { _ in
                    TaskCodec.encode(TaskMessage(name: "demo.noop", replyTo: "bench-reply"), routingKey: q)
                }
                try await pub.publish(messages)
            }
            _ = try await pub.inspect(queue: q)
            emit(
                "amqp.celery_shaped_consume_ack_rate_prefetch\(prefetch)",
                try await consumeAll(con, queue: q, count: count, prefetch: UInt16(prefetch)), "msg/s")
            try await pub.deleteQueue(q)
        }

        // Request/reply round trip: a responder on its own connection echoes to a reply queue.
        let requests = benchQueue("req"), replies = benchQueue("rep")
        let responder = AMQPConnection(url: url, options: .init(name: "bench-responder", confirms: false))
        try await responder.connect()
        try await pub.declare(QueueSpec(requests, durable: false).expires(milliseconds: 600_000))
        try await pub.declare(QueueSpec(replies, durable: false).expires(milliseconds: 600_000))
        let reqConsumer = try await responder.consume(queue: requests, prefetch: 1, noAck: true)
        // The responder runs on its connection's thread (AMQPConnection is a TaskExecutor), as the C responder does.
        let echo = Task(executorPreference: responder) {
            for await d in reqConsumer.deliveries {
                try? await responder.publish(
                    OutgoingMessage(
                        routingKey: replies, body: d.body,
                        properties: .init(deliveryMode: 1, correlationID: d.properties.correlationID)))
            }
        }
        let replyConsumer = try await con.consume(queue: replies, prefetch: 1, noAck: true)
        nonisolated(unsafe) var it = replyConsumer.deliveries.makeAsyncIterator()
        /// Publishes a request and waits for its reply, `rounds` times after 20 for warm-up; milliseconds each.
        func roundTrips() async throws -> [Double] {
            var rtts: [Double] = []
            for i in 0..<(rounds + 20) {
                let t0 = ContinuousClock.now
                try await con.publish(
                    OutgoingMessage(
                        routingKey: requests, body: body, properties: .init(deliveryMode: 1, correlationID: String(i))))
                guard await it.next() != nil else { break }
                if i >= 20 { rtts.append(seconds(ContinuousClock.now - t0) * 1000) }
            }
            return rtts
        }
        // Requester on its connection's thread: publish and wait for the reply without a thread hop.
        let onThread = try await withTaskExecutorPreference(con) { try await roundTrips() }
        emit("amqp.rtt_p50", percentile(onThread, 0.5), "ms")
        emit("amqp.rtt_p99", percentile(onThread, 0.99), "ms")
        // The same from the cooperative pool: every call crosses to the connection thread and back.
        let rtts = try await roundTrips()
        emit("amqp.rtt_from_pool_p50", percentile(rtts, 0.5), "ms")
        emit("amqp.rtt_from_pool_p99", percentile(rtts, 0.99), "ms")
        echo.cancel()

        // The same round trip with what a task's round trip puts on the broker (`celeryShapedFloor`): the broker's
        // floor for `tasks.rtt_*`, answered on the consuming connection, then with the result confirmed on a second
        // connection before the ack, as the worker answers.
        let celeryShaped = try await celeryShapedFloor(url: url, rounds: rounds)
        emit("amqp.celery_shaped_rtt_p50", percentile(celeryShaped, 0.5), "ms")
        emit("amqp.celery_shaped_rtt_p99", percentile(celeryShaped, 0.99), "ms")
        let confirmed = try await celeryShapedFloor(url: url, rounds: rounds, confirmedResults: true)
        emit("amqp.confirmed_result_rtt_p50", percentile(confirmed, 0.5), "ms")
        emit("amqp.confirmed_result_rtt_p99", percentile(confirmed, 0.99), "ms")
        try await pub.deleteQueue(requests)
        try await pub.deleteQueue(replies)
        await responder.close()
        await pub.close()
        await conf.close()
        await con.close()
    }

    /// Consumes `count` messages, acking each one, and returns messages per second.
    func consumeAll(_ c: AMQPConnection, queue: String, count: Int, prefetch: UInt16) async throws -> Double {
        let start = ContinuousClock.now
        let consumer = try await c.consume(queue: queue, prefetch: prefetch)
        // The consuming loop runs on the connection's thread, as the C consumer's does: deliveries and acks cross no
        // thread.
        let got = await withTaskExecutorPreference(c) { () async -> Int in
            var got = 0
            for await d in consumer.deliveries {
                c.ackInBackground(d.tag)
                got += 1
                if got == count { break }
            }
            return got
        }
        let rate = Double(got) / seconds(ContinuousClock.now - start)
        try await c.cancel(consumer)
        return rate
    }
}

/// Counts finished tasks and wakes a waiter at a target; notes when the worker started consuming.
final class Counter: WorkerObserver {
    private struct State {
        var count = 0
        var target = Int.max
        var waiter: CheckedContinuation<Void, any Error>?
        /// Set once the worker's service group has ended: no more tasks will finish.
        var stopped: WorkerStopped?
        /// Whether a task already watches the worker (one per counter, however many waits).
        var watching = false
    }
    private let state = Mutex(State())
    private let started = Mutex<ContinuousClock.Instant?>(nil)
    /// The first of: the worker reported ready (its consumers are subscribed), a task arrived.
    var consumingSince: ContinuousClock.Instant? { started.withLock { $0 } }
    func stateChanged(ready: Bool) { if ready { noteStart() } }
    func taskReceived(name: String, queue: String) { noteStart() }
    private func noteStart() { started.withLock { if $0 == nil { $0 = .now } } }
    func taskFinished(name: String, queue: String, outcome: TaskFinishedOutcome, seconds: Double) {
        let w = state.withLock { s -> CheckedContinuation<Void, any Error>? in
            s.count += 1
            if s.count >= s.target, let w = s.waiter {
                s.waiter = nil
                return w
            }
            return nil
        }
        w?.resume()
    }

    /// Waits until `target` tasks have finished. Throws `WorkerStopped` when `worker` (the task running the worker's
    /// service group) ends first, because the worker failed to start or stopped: a run never waits forever.
    func wait(for target: Int, while worker: Task<Void, any Error>) async throws {
        let first = state.withLock { s in
            defer { s.watching = true }
            return !s.watching
        }
        if first { watch(worker) }
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            let now = state.withLock { s -> Result<Bool, WorkerStopped> in
                if s.count >= target { return .success(true) }
                if let stopped = s.stopped { return .failure(stopped) }
                s.target = target
                s.waiter = c
                return .success(false)
            }
            switch now {
            case .success(true): c.resume()
            case .success(false): break
            case .failure(let stopped): c.resume(throwing: stopped)
            }
        }
    }

    /// Ends the pending wait with `WorkerStopped` when `worker` ends, and every later wait at once. Started by the
    /// first wait, it outlives the waits: after a normal run it ends at the run's shutdown and finds no waiter.
    private func watch(_ worker: Task<Void, any Error>) {
        Task {
            let reason: String
            switch await worker.result {
            case .success: reason = "it returned"
            case .failure(let error): reason = "\(error)"
            }
            let (waiter, stopped) = state.withLock { s in
                let stopped = WorkerStopped(finished: s.count, target: s.target, reason: reason)
                s.stopped = stopped
                defer { s.waiter = nil }
                return (s.waiter, stopped)
            }
            waiter?.resume(throwing: stopped)
        }
    }

    struct WorkerStopped: Error, CustomStringConvertible {
        let finished: Int
        let target: Int
        let reason: String
        var description: String {
            "the bench's worker stopped after \(finished) of \(target) tasks: \(reason)"
        }
    }
    var count: Int { state.withLock { $0.count } }
    private let prefetchNow = Mutex(0)
    func prefetchChanged(_ prefetch: Int) { prefetchNow.withLock { $0 = prefetch } }
    /// The worker's prefetch per consumer, as it last reported it.
    var prefetch: Int { prefetchNow.withLock { $0 } }
}
