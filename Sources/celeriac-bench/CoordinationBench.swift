import AMQPTransport
import CeleriacAMQP
import CeleriacCoordination
import CeleriacCore
import CeleriacMessaging
import CeleriacWorker
import Foundation
import Logging
import ServiceLifecycle

/// `celeriac-bench coordination`: the cost of each broker-only coordination mechanism per task. For each variant
/// (none, global rate limit of 5000/s, twice the plain throughput here, global concurrency equal to the worker's slots, unique
/// key per task) one in-process worker (16 slots, prefetch 128) runs `--n` no-op tasks sent by 64 lanes at once
/// (end-to-end throughput), then `--rounds` sequential send → result round trips (latency).
struct CoordinationBench {
    let url: AMQPURL
    let n: Int
    let rounds: Int

    enum Variant: String, CaseIterable {
        case none, rate, concurrency, unique
        case uniqueHot = "unique_hot"
    }

    func run() async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        // Extra broker operations per task, by design (see the README): rate = 1 delivery + 1 ack of a token;
        // concurrency = 1 delivery + 1 reject of a permit (+ basic.consume/cancel when the worker's permit consumer
        // starts or idles); unique = 1 declare + 1 confirmed publish at send (the index entry rides in the task's
        // batch), 1 get + 1 ack at the end.
        emit("coord.rate.extra_broker_ops", 2, "ops/task")
        emit("coord.concurrency.extra_broker_ops", 2, "ops/task")
        emit("coord.unique.extra_broker_ops", 4, "ops/task")
        for variant in Variant.allCases {
            let queue = benchQueue("coord-\(variant.rawValue)")
            let name = "bench.coord.\(queue.suffix(8))"
            var registry = TaskRegistry()
            registry.register(TaskName<NoArguments, Int>(name)) { _, _ in 1 }
            var config = Worker.Configuration.fixedPrefetch(queues: [queue], concurrency: 16, prefetchMultiplier: 8)
            switch variant {
            case .rate: config.globalLimits = [try GlobalLimit(name: name, rate: "5000/s")]
            case .concurrency: config.globalLimits = [try GlobalLimit(name: name, concurrency: 16)]
            case .none, .unique, .uniqueHot: break
            }
            let counter = Counter()
            let worker = Worker(
                registry: registry, configuration: config, broker: AMQPBroker(url: url), logger: logger,
                observer: counter)
            let group = ServiceGroup(configuration: .init(services: [.init(service: worker)], logger: logger))
            let running = Task { try await group.run() }
            let client = CeleriacClient(
                configuration: .init(defaultQueue: queue, connectionName: "bench-coord"), broker: AMQPBroker(url: url))
            try await client.start()
            while !worker.isReady { try await Task.sleep(for: .milliseconds(10)) }

            // unique: a fresh key per task (a new lock queue each time); unique_hot: one key per lane, reused once the
            // lane's previous task finished (the lock queue exists already).
            @Sendable func send(_ i: Int, lane: Int, ignore: Bool) async throws -> AsyncResult? {
                let options = SendOptions(ignoreResult: ignore)
                if variant == .unique || variant == .uniqueHot {
                    let key = variant == .unique ? "\(queue):\(i)" : "\(queue):lane\(lane)"
                    guard case .sent(let r) = try await client.sendUnique(name, key: key, options: options) else {
                        throw BenchFailure(what: "unique key \(key) still held")
                    }
                    return r
                }
                return try await client.send(name, options: options)
            }
            let start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { lanes in
                for lane in 0..<64 {
                    lanes.addTask {
                        for i in stride(from: lane, to: n, by: 64) {
                            let r = try await send(i, lane: lane, ignore: variant != .uniqueHot)
                            if variant == .uniqueHot { _ = try await r?.get(timeout: .seconds(30)) }
                        }
                    }
                }
                try await lanes.waitForAll()
            }
            try await counter.wait(for: n, while: running)
            emit("coord.\(variant.rawValue).throughput", Double(n) / seconds(ContinuousClock.now - start), "tasks/s")

            var rtts: [Double] = []
            for i in 0..<(rounds + 10) {
                let t0 = ContinuousClock.now
                _ = try await send(n + i, lane: 64, ignore: false)?.get(timeout: .seconds(30))
                if i >= 10 { rtts.append(seconds(ContinuousClock.now - t0) * 1000) }
            }
            emit("coord.\(variant.rawValue).rtt_p50", percentile(rtts, 0.5), "ms")

            await client.close()
            await group.triggerGracefulShutdown()
            try await running.value
            try await deleteBenchQueue(queue, url: url)
            let cleanup = AMQPConnection(url: url, options: .init(name: "bench-cleanup", confirms: false))
            try await cleanup.connect()
            for q in [
                CoordinationTopology.rateQueue(name), CoordinationTopology.semaphoreQueue(name),
                CoordinationTopology.semaphoreReady(name),
            ] {
                _ = try? await cleanup.deleteQueue(q)
            }
            if variant == .unique || variant == .uniqueHot {
                let keys =
                    variant == .unique
                    ? (0..<(n + rounds + 10)).map { "\(queue):\($0)" } : (0...64).map { "\(queue):lane\($0)" }
                for key in keys { _ = try? await cleanup.deleteQueue(CoordinationTopology.uniqueQueue(key)) }
                // The bench's index entries (bench broker only).
                _ = try? await cleanup.purge(queue: CoordinationTopology.uniqueIndex)
            }
            await cleanup.close()
        }
    }
}

struct BenchFailure: Error, CustomStringConvertible {
    let what: String
    var description: String { what }
}
