import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import CeleriacPool
import CeleriacWorker
import Foundation
import Logging
import ServiceLifecycle

/// `defaults`: the worker as `celeriac worker` runs it with no flags (process pool, `-c 4`, prefetch multiplier 1,
/// adaptive prefetch) against the same worker with a fixed prefetch multiplier of 1 (`--no-adaptive-prefetch`, the
/// default before), 2, 4, 8, 16 and 32, each draining the same `n` queued no-op tasks, interleaved `repeats` times.
/// Prints each drain's median and the ratios to the best fixed multiplier of the same run (issue #23's first target).
struct DefaultsBench {
    let url: AMQPURL
    let n: Int
    let repeats: Int
    static let multipliers = [1, 2, 4, 8, 16, 32]

    func run() async throws {
        let defaults = Worker.Configuration()
        emit("defaults.concurrency", Double(defaults.concurrency), "slots")
        emit("defaults.prefetch", Double(defaults.prefetch), "messages")
        var rates: [String: [Double]] = [:]
        var finalPrefetch: [Double] = []
        for i in 1...repeats {
            let (rate, prefetch, _) = try await drain(defaults)
            rates["defaults", default: []].append(rate)
            finalPrefetch.append(Double(prefetch))
            for m in Self.multipliers {
                let fixed = Worker.Configuration.fixedPrefetch(concurrency: defaults.concurrency, prefetchMultiplier: m)
                rates["fixed_pm\(m)", default: []].append(try await drain(fixed).rate)
            }
            let fixed = Self.multipliers.map { "\($0): \(Int(rates["fixed_pm\($0)"]?.last ?? 0))" }
            note(
                "defaults run \(i): the defaults \(Int(rate)) tasks/s (prefetch \(prefetch) at the end); fixed multipliers "
                    + fixed.joined(separator: ", "))
        }
        let median = { (name: String) in percentile(rates[name] ?? [], 0.5) }
        emit("defaults.drain_rate", median("defaults"), "tasks/s")
        emit("defaults.prefetch_at_end", percentile(finalPrefetch, 0.5), "messages")
        var best = (multiplier: 0, rate: 0.0)
        for m in Self.multipliers {
            emit("defaults.fixed_pm\(m)_drain_rate", median("fixed_pm\(m)"), "tasks/s")
            if median("fixed_pm\(m)") > best.rate { best = (m, median("fixed_pm\(m)")) }
        }
        emit("defaults.best_fixed_multiplier", Double(best.multiplier), "x")
        emit("ratio.defaults.drain_vs_best_fixed", median("defaults") / best.rate, "x")
        emit("ratio.defaults.drain_vs_fixed_pm1", median("defaults") / median("fixed_pm1"), "x")
    }

    /// Queues `n` Celery-shaped no-op tasks (no reply wanted), then times a worker with `configuration` (process
    /// pool, or the async pool) from its first delivery to its last finished task. Returns the rate, the prefetch
    /// at the end and the CPU per task of the worker and its children.
    func drain(
        _ configuration: Worker.Configuration, processPool: Bool = true, form: MessageForm = .celery
    ) async throws -> (rate: Double, prefetch: Int, cpuPerTask: Double) {
        var logger = Logger(label: "bench.defaults")
        logger.logLevel = .error
        let queue = benchQueue("defaults")
        let producer = AMQPConnection(url: url, options: .init(name: "bench-defaults-producer", confirms: true))
        try await producer.connect()
        try await producer.declare(Topology.workQueue(queue, form: form).1)
        for batch in stride(from: 0, to: n, by: 1000) {
            try await producer.publish(
                (0..<min(1000, n - batch)).map { _ in
                    TaskCodec.encode(TaskMessage(name: "demo.noop"), routingKey: queue, form: form)
                })
        }
        await producer.close()

        var configuration = configuration
        configuration.queues = [queue]
        if form == .compact { configuration.compactQueues = [queue] }
        let counter = Counter()
        let pool =
            processPool
            ? ProcessPool(
                configuration: .init(
                    executable: "/proc/self/exe", arguments: ["pool-child"], processes: configuration.concurrency))
            : nil
        let worker = Worker(
            registry: TaskBench.registry(), configuration: configuration, broker: AMQPBroker(url: url),
            logger: logger, observer: counter, executor: pool ?? InProcessExecutor())
        let group = ServiceGroup(configuration: .init(services: [.init(service: worker)], logger: logger))
        let cpuBefore = cpuSeconds()
        let running = Task { try await group.run() }
        try await counter.wait(for: n, while: running)
        let end = ContinuousClock.now
        let rate = Double(n) / seconds(end - (counter.consumingSince ?? end))
        let prefetch = counter.prefetch
        // The children's whole life, as in `tasks`: their start-up is a few ms against seconds of drain.
        let children = pool?.childPIDs ?? []
        let cpu = cpuSeconds() - cpuBefore + children.map { cpuSeconds(of: $0) }.reduce(0, +)
        await group.triggerGracefulShutdown()
        try await running.value
        try await deleteBenchQueue(queue, url: url)
        return (rate, prefetch, cpu / Double(n) * 1_000_000)
    }
}

/// `pools`: the process pool against the async pool at the same concurrency and prefetch (`-c`, default 4, and
/// `--prefetch-multiplier`, default 32), each draining the same `n` queued no-op tasks, interleaved
/// `repeats` times; prints each pool's median drain and CPU per task and the ratios (issue #23's second target:
/// drain ≥ 0.8 of the async pool's, CPU per task within 1.5×).
struct PoolsBench {
    let url: AMQPURL
    let n: Int
    let repeats: Int
    let concurrency: Int
    let prefetchMultiplier: Int

    func run() async throws {
        let drains = DefaultsBench(url: url, n: n, repeats: repeats)
        let configuration = Worker.Configuration.fixedPrefetch(
            concurrency: concurrency, prefetchMultiplier: prefetchMultiplier)
        emit("pools.concurrency", Double(concurrency), "slots")
        emit("pools.prefetch", Double(configuration.prefetch), "messages")
        var rates: [Bool: [Double]] = [:]
        var cpus: [Bool: [Double]] = [:]
        for i in 1...repeats {
            for processPool in [true, false] {
                let r = try await drains.drain(configuration, processPool: processPool)
                rates[processPool, default: []].append(r.rate)
                cpus[processPool, default: []].append(r.cpuPerTask)
                note(
                    "pools run \(i): \(processPool ? "process" : "async") pool \(Int(r.rate)) tasks/s,"
                        + " \(Int(r.cpuPerTask)) us of CPU per task")
            }
        }
        let rate = { (p: Bool) in percentile(rates[p] ?? [], 0.5) }
        let cpu = { (p: Bool) in percentile(cpus[p] ?? [], 0.5) }
        emit("pools.process_drain_rate", rate(true), "tasks/s")
        emit("pools.async_drain_rate", rate(false), "tasks/s")
        emit("pools.process_cpu_per_task", cpu(true), "us")
        emit("pools.async_cpu_per_task", cpu(false), "us")
        emit("ratio.pools.process_vs_async_drain", rate(true) / rate(false), "x")
        emit("ratio.pools.process_vs_async_cpu", cpu(true) / cpu(false), "x")
    }
}
