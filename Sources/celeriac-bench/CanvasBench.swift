import AMQPTransport
import CeleriacAMQP
import CeleriacCanvas
import CeleriacCore
import CeleriacMessaging
import CeleriacWorker
import Foundation
import Logging
import ServiceLifecycle

/// `celeriac-bench canvas`: chain of 100 end-to-end latency, group of 1,000 with every result collected, chord of
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
        var chain100: [Double] = [], group1000: [Double] = [], chord1000: [Double] = []
        for _ in 0..<n {
            var pipeline = Self.add.s(0, 1)
            for _ in 1..<100 { pipeline = pipeline | Self.add.s(1) }
            var t0 = ContinuousClock.now
            let hundred = try await client.apply(pipeline).get(timeout: .seconds(120))
            chain100.append(seconds(ContinuousClock.now - t0) * 1000)
            guard hundred == 100 else { throw WrongResult(what: "chain of 100 gave \(hundred)") }

            t0 = ContinuousClock.now
            let values = try await client.apply(group { for i in 0..<1000 { Self.add.s(i, i) } }).get(
                timeout: .seconds(120))
            group1000.append(seconds(ContinuousClock.now - t0) * 1000)
            guard values == (0..<1000).map({ 2 * $0 }) else { throw WrongResult(what: "group of 1,000") }

            t0 = ContinuousClock.now
            let total = try await client.apply(chord(group { for i in 0..<1000 { Self.add.s(i, i) } }, Self.xsum.s()))
                .get(timeout: .seconds(120))
            chord1000.append(seconds(ContinuousClock.now - t0) * 1000)
            guard total == 999_000 else { throw WrongResult(what: "chord of 1,000 gave \(total)") }
        }
        emit("canvas.chain100_ms", percentile(chain100, 0.5), "ms")
        emit("canvas.group1000_ms", percentile(group1000, 0.5), "ms")
        emit("canvas.chord1000_ms", percentile(chord1000, 0.5), "ms")

        await client.close()
        await services.triggerGracefulShutdown()
        try await running.value
        try await deleteBenchQueue(queue, url: url)
    }
}
