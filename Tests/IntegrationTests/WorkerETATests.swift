import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import Foundation
import Testing

/// The last sub-second of an ETA is waited in the worker without holding a concurrency slot.
@Suite(.tags(.integration))
struct WorkerETATests {
    @Test func aTaskDueSoonDoesNotBlockATaskDueNow() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("eta-slot")
        // One slot; prefetch 4, so the task due now is delivered while the other waits for its ETA.
        let running = try await startWorker(
            TestTasks.registry(), url: url, queues: [queue], concurrency: 1, prefetchMultiplier: 4)
        let client = try await startClient(url: url, queue: queue)
        var later = SendOptions()
        let eta = Date().addingTimeInterval(0.95)  // < 1 s: published straight to the queue, waited in the worker
        later.eta = eta
        let dueLater = try await client.send("it.add", args: [1, 1], options: later)
        let dueNow = try await client.send("it.mul", args: [2, 2])
        // Order, not timing: with the slot held through the wait, the task due now could only start after the
        // other one had run.
        let firstStarted = try await first(running.observer.started, within: .seconds(30), "a task to start") { _ in
            true
        }
        #expect(firstStarted == "it.mul", "the task due now started first")
        #expect(try await dueNow.get(timeout: .seconds(30)) == .int(4))
        #expect(try await dueLater.get(timeout: .seconds(30)) == .int(2))
        let laterDone = try #require(await client.state(of: dueLater.id)?.dateDone)
        #expect(laterDone >= eta, "never early: finished at \(laterDone), ETA \(eta)")
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func aCustomExchangeAndRoutingKeyWorkWithAndWithoutACountdown() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("eta-route")
        let exchange = uniqueName("eta-route-x")
        let key = uniqueName("eta-route-key")
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue])
        // The application's own exchange, routing to the worker's queue under a key that is not the queue's name.
        let admin = AMQPConnection(url: url, options: .init(name: "it-route-admin", confirms: false))
        try await admin.connect()
        try await admin.declare(ExchangeSpec(exchange, kind: .direct, durable: false, autoDelete: false))
        try await admin.bind(BindingSpec(queue: queue, exchange: exchange, routingKey: key))
        let client = try await startClient(url: url, queue: queue)
        let routed = SendOptions(queue: queue, routingKey: key, exchange: exchange)
        #expect(try await client.send("it.add", args: [2, 3], options: routed).get(timeout: .seconds(30)) == .int(5))
        // A countdown of 1 s or more goes through the broker's delay topology and comes back to the same queue.
        try await Self.expectSumNeverEarly(client, 4, 5, countdown: 1.2, options: routed)
        await client.close()
        try await running.stop()
        try? await admin.deleteExchange(exchange)
        await admin.close()
        await deleteQueues([queue], url: url)
    }

    /// Quorum queues (RabbitMQ clusters): the delay levels are quorum queues with kombu's arguments, and a countdown
    /// still comes back on time. On a vhost of its own, since the shared one holds classic levels of the same names.
    @Test func aCountdownThroughQuorumDelayQueues() async throws {
        let broker = TestBroker.shared
        let (vhost, url) = try broker.freshVhost("quorum")
        defer { _ = try? broker.ctl("delete_vhost", vhost) }
        let queue = uniqueName("quorum-q")
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue], queueType: .quorum)
        var configuration = CeleriacClient.Configuration(defaultQueue: queue, connectionName: "it-quorum")
        configuration.queueType = .quorum
        let client = CeleriacClient(configuration: configuration, broker: AMQPBroker(url: url))
        try await client.start()
        try await Self.expectSumNeverEarly(client, 20, 22, countdown: 1.5)
        let listed = try broker.ctl("list_queues", "-p", vhost, "name", "type", "arguments")
        let level0 = try #require(
            listed.split(separator: "\n").first { $0.hasPrefix(Topology.delayLevel(0) + "\t") }, "\(listed)")
        #expect(level0.contains("quorum") && level0.contains("at-least-once"), "\(level0)")
        let work = try #require(listed.split(separator: "\n").first { $0.hasPrefix(queue + "\t") }, "\(listed)")
        #expect(work.contains("quorum"), "\(work)")
        await client.close()
        try await running.stop()
    }

    /// Sends `it.add(x, y)` with a countdown and `options`; expects the sum, finished no earlier than the countdown.
    static func expectSumNeverEarly(
        _ client: CeleriacClient, _ x: Int, _ y: Int, countdown: Double,
        options: SendOptions = SendOptions()
    ) async throws {
        var options = options
        options.countdown = countdown
        let sentAt = Date()
        let r = try await client.send("it.add", args: [.int(Int64(x)), .int(Int64(y))], options: options)
        #expect(try await r.get(timeout: .seconds(60)) == .int(Int64(x + y)))
        let done = try #require(await client.state(of: r.id)?.dateDone)
        #expect(done >= sentAt.addingTimeInterval(countdown), "never early: finished at \(done), sent at \(sentAt)")
    }
}
