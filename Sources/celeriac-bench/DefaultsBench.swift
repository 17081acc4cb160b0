import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import CeleriacPool
import CeleriacWorker
import Foundation
import Logging
import ServiceLifecycle

/// `defaults`: the worker as `celeriac worker` runs it with no flags (process pool, `-c 4`, adaptive prefetch)
/// against the same worker with a fixed prefetch multiplier of 1, 2, 4, 8, 16 and 32, each draining the same `n`
/// queued no-op tasks, interleaved `repeats` times. Prints each drain's median and the defaults' ratio to the best
/// fixed multiplier of the same run (issue #23's first target).
struct DefaultsBench {
    let url: AMQPURL
    let n: Int
    let repeats: Int
    static let multipliers = [1, 2, 4, 8, 16, 32]

    func run() async throws {
        let defaults = Worker.Configuration()
        emit("defaults.concurrency", Double(defaults.concurrency), "slots")
        var rates: [String: [Double]] = [:]
        var finalPrefetch: [Double] = []
        for _ in 0..<repeats {
            let (rate, prefetch) = try await drain(defaults)
            rates["adaptive", default: []].append(rate)
            finalPrefetch.append(Double(prefetch))
            for m in Self.multipliers {
                var fixed = Worker.Configuration(concurrency: defaults.concurrency, prefetchMultiplier: m)
                fixed.adaptivePrefetch = nil
                rates["fixed_pm\(m)", default: []].append(try await drain(fixed).rate)
            }
        }
        let adaptive = percentile(rates["adaptive"] ?? [], 0.5)
        emit("defaults.drain_rate", adaptive, "tasks/s")
        emit("defaults.adaptive_prefetch_at_end", percentile(finalPrefetch, 0.5), "messages")
        var best = (name: "", rate: 0.0)
        for m in Self.multipliers {
            let rate = percentile(rates["fixed_pm\(m)"] ?? [], 0.5)
            emit("defaults.fixed_pm\(m)_drain_rate", rate, "tasks/s")
            if rate > best.rate { best = ("\(m)", rate) }
        }
        emit("defaults.best_fixed_multiplier", Double(best.name) ?? 0, "x")
        emit("ratio.defaults.drain_vs_best_fixed", adaptive / best.rate, "x")
    }

    /// Queues `n` Celery-shaped no-op tasks (no reply wanted), then times a process-pool worker with `configuration`
    /// from its first delivery to its last finished task. Returns the rate and the prefetch at the end.
    func drain(_ configuration: Worker.Configuration) async throws -> (rate: Double, prefetch: Int) {
        var logger = Logger(label: "bench.defaults")
        logger.logLevel = .error
        let queue = benchQueue("defaults")
        let producer = AMQPConnection(url: url, options: .init(name: "bench-defaults-producer", confirms: true))
        try await producer.connect()
        try await producer.declare(Topology.workQueue(queue).1)
        for batch in stride(from: 0, to: n, by: 1000) {
            try await producer.publish(
                (0..<min(1000, n - batch)).map { _ in
                    TaskCodec.encode(TaskMessage(name: "demo.noop"), routingKey: queue)
                })
        }
        await producer.close()

        var configuration = configuration
        configuration.queues = [queue]
        let counter = Counter()
        let pool = ProcessPool(
            configuration: .init(
                executable: "/proc/self/exe", arguments: ["pool-child"], processes: configuration.concurrency))
        let worker = Worker(
            registry: TaskBench.registry(), configuration: configuration, broker: AMQPBroker(url: url),
            logger: logger, observer: counter, executor: pool)
        let group = ServiceGroup(configuration: .init(services: [.init(service: worker)], logger: logger))
        let running = Task { try await group.run() }
        await counter.wait(for: n)
        let end = ContinuousClock.now
        let rate = Double(n) / seconds(end - (counter.consumingSince ?? end))
        let prefetch = counter.prefetch
        await group.triggerGracefulShutdown()
        try await running.value
        try await deleteBenchQueue(queue, url: url)
        return (rate, prefetch)
    }
}
