import AMQPTransport
import CeleriacAMQP
import CeleriacCoordination
import CeleriacCore
import CeleriacMessaging
import Foundation
import Logging
import Testing

/// Global rate limits: tokens from one elected refiller, taken by every worker before a run.
@Suite(.tags(.integration), .serialized)
struct GlobalRateLimitTests {
    /// 300 tasks, three workers with four slots each, one global limit of 10/s: the observed start rate is 10/s ±10 %.
    @Test func threeWorkersShareATenPerSecondLimit() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("grate")
        let name = "it.rate.\(queue.suffix(8))"
        let task = TaskName<NoArguments, Int>(name)
        let ledger = Ledger()
        var registry = TaskRegistry()
        registry.register(task) { _, _ in
            ledger.record()
            return 1
        }
        let limit = try GlobalLimit(name: name, rate: "10/s")
        var workers: [RunningWorker] = []
        for _ in 0..<3 {
            workers.append(try await startCoordinatedWorker(registry, url: url, queue: queue, limits: [limit]).0)
        }
        let client = try await startClient(url: url, queue: queue)

        var results: [AsyncResult] = []
        for _ in 0..<300 { results.append(try await client.send(name)) }
        for r in results { _ = try await r.get(timeout: .seconds(90)) }

        let starts = ledger.all.sorted()
        #expect(starts.count == 300)
        let span = try #require(starts.last) - (try #require(starts.first))
        let rate = Double(starts.count - 1) / span
        #expect(rate >= 9 && rate <= 11, "observed \(rate) tasks/s for a 10/s limit")
        for w in workers { #expect(w.worker.processedCount > 0, "a worker ran nothing: the limit was not shared") }
        print(
            "coordination: global rate 10/s observed \(String(format: "%.2f", rate)) tasks/s over \(starts.count) tasks, 3 workers"
        )

        for w in workers { try await w.stop() }
        await client.close()
        await deleteQueues([queue, CoordinationTopology.rateQueue(name)], url: url)
    }

    /// The refiller is elected; when it dies, the other candidate takes over and tokens keep coming.
    @Test func anotherRefillerTakesOverWhenTheLeaderDies() async throws {
        let url = try TestBroker.shared.url()
        let limit = uniqueName("it.refill")
        let logger = testLogger("it.refiller")
        let a = TokenRefiller(
            broker: AMQPBroker(url: url), limit: limit, perSecond: 50, burst: 5, retryInterval: .milliseconds(100),
            logger: logger)
        let b = TokenRefiller(
            broker: AMQPBroker(url: url), limit: limit, perSecond: 50, burst: 5, retryInterval: .milliseconds(100),
            logger: logger)
        let runA = Task { await a.run() }
        _ = try await first(a.leadership, within: .seconds(15), "the first candidate to lead") { $0 }
        let runB = Task { await b.run() }

        let reader = AMQPConnection(url: url, options: .init(name: "it-refill-reader", confirms: false))
        try await reader.connect()
        try await reader.declare(CoordinationTopology.rateQueueSpec(limit, burst: 5))
        let tokens = try await reader.consume(queue: CoordinationTopology.rateQueue(limit), prefetch: 0, noAck: true)
        let before = Counter()
        _ = try await first(tokens.deliveries, within: .seconds(10), "5 tokens from the first refiller") { _ in
            before.increment() >= 5
        }
        #expect(!b.isLeader, "two refillers at once")

        runA.cancel()  // the leader dies: its connection closes and the broker drops its lock queue
        await runA.value
        _ = try await first(b.leadership, within: .seconds(15), "the second candidate to take over") { $0 }
        // Tokens published before the takeover may still be buffered: count 10 more, which the new leader must refill.
        let after = Counter()
        _ = try await first(tokens.deliveries, within: .seconds(10), "10 tokens after the takeover") { _ in
            after.increment() >= 10
        }
        #expect(b.isLeader)
        runB.cancel()
        await runB.value
        await reader.close()
        await deleteQueues([CoordinationTopology.rateQueue(limit)], url: url)
    }
}
