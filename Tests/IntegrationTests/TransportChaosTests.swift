import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import Foundation
import Synchronization
import Testing

/// Tests that restart or freeze the broker. They use their own node (`TestBroker.chaos`) and run one at a time.
@Suite(.tags(.integration), .serialized)
struct TransportChaosTests {
    @Test func brokerRestartMidStreamIsSurvivedWithNothingLost() async throws {
        let broker = TestBroker.chaos
        let url = try broker.url(heartbeat: 2)
        let publisher = AMQPConnection(url: url, options: .init(name: "chaos-pub", reconnectCap: .seconds(1)))
        let consumerConnection = AMQPConnection(
            url: url, options: .init(name: "chaos-con", confirms: false, reconnectCap: .seconds(1)))
        defer {
            Task {
                await publisher.close(); await consumerConnection.close()
            }
        }
        try await publisher.connect()
        try await consumerConnection.connect()
        let q = uniqueName()
        try await publisher.declare(QueueSpec(q, durable: true))
        let events = publisher.events()
        let consumer = try await consumerConnection.consume(queue: q, prefetch: 50)
        let total = 3000

        let received = Task { () -> Set<Int> in
            var seen = Set<Int>()
            for await d in consumer.deliveries {
                seen.insert(Int(String(decoding: d.body, as: UTF8.self))!)
                await consumerConnection.ack(d.tag)  // a stale tag after the restart is dropped; the broker redelivers
                if seen.count == total { break }
            }
            return seen
        }
        // Publish with retry: an unconfirmed publish is sent again after the reconnect (at-least-once).
        let (progress, progressSink) = AsyncStream<Int>.makeStream()
        let publishing = Task {
            var failures = 0
            for i in 0..<total {
                if i == total / 3 { progressSink.yield(i) }
                while true {
                    do {
                        try await publisher.publish(
                            OutgoingMessage(
                                routingKey: q, body: Array(String(i).utf8), properties: .init(deliveryMode: 2)))
                        break
                    } catch let error as AMQPError where error.isConnectionLevel || error.code == .channelClosed {
                        failures += 1
                        _ = await publisher.waitUntilConnected(timeout: .seconds(30))
                    }
                }
            }
            return failures
        }
        // Restart once a third has been published and confirmed.
        _ = try await first(progress, within: .seconds(60), "a third of the messages confirmed") { _ in true }
        try await broker.scriptAsync("restart")
        _ = try await first(events, within: .seconds(30), "the disconnect") {
            if case .disconnected = $0 { return true }; return false
        }
        _ = try await first(events, within: .seconds(60), "the reconnect") {
            if case .connected = $0 { return true }; return false
        }
        _ = try await within(.seconds(120), "all publishes") { try await publishing.value }
        let seen = try await within(.seconds(120), "all \(total) deliveries") { await received.value }
        #expect(seen.count == total)
        try await publisher.deleteQueue(q)
    }

    @Test func frozenBrokerIsDetectedByHeartbeat() async throws {
        let broker = TestBroker.chaos
        let c = AMQPConnection(
            url: try broker.url(heartbeat: 1), options: .init(name: "chaos-frozen", reconnectCap: .seconds(1)))
        defer { Task { await c.close() } }
        try await c.connect()
        let events = c.events()
        try await broker.scriptAsync("pause")
        let resumed = BrokerScriptOnce(broker, "resume")
        defer { resumed.run() }
        let start = ContinuousClock.now
        let event = try await first(events, within: .seconds(15), "a heartbeat timeout") {
            if case .disconnected = $0 { return true }; return false
        }
        let elapsed = ContinuousClock.now - start
        guard case .disconnected(let error) = event else { return }
        #expect(error.code == .heartbeatTimeout || error.code == .connectionLost)
        // Two heartbeat intervals (2 s) plus the poll granularity.
        #expect(elapsed < .seconds(5))
        resumed.run()
        _ = try await first(events, within: .seconds(60), "the reconnect after SIGCONT") {
            if case .connected = $0 { return true }; return false
        }
        #expect(c.isConnected)
    }
}

extension TransportChaosTests {
    /// `url1;url2`: the connection starts on the first broker and, when that node stops, fails over to the second
    /// by itself, re-declaring the queue and re-creating the consumer there.
    @Test func connectionFailsOverToTheNextBrokerOfTheList() async throws {
        let chaos = TestBroker.chaos
        var url = try chaos.url(heartbeat: 2)
        url.alternates = [try TestBroker.shared.url(heartbeat: 2)]
        #expect(
            try AMQPURL("\(chaos.urlString);\(TestBroker.shared.urlString)").failoverOrder.map(\.port) == [
                chaos.port, TestBroker.shared.port,
            ])
        let c = AMQPConnection(url: url, options: .init(name: "chaos-failover", reconnectCap: .seconds(1)))
        defer { Task { await c.close() } }
        try await c.connect()
        let q = uniqueName("failover")
        try await c.declare(QueueSpec(q, durable: false, autoDelete: false).expires(milliseconds: 120_000))
        let events = c.events()
        let consumer = try await c.consume(queue: q, prefetch: 10, noAck: true)
        try await c.publish(OutgoingMessage(routingKey: q, body: Array("on the first".utf8)))
        _ = try await first(consumer.deliveries, within: .seconds(10), "the delivery on the first broker") {
            String(decoding: $0.body, as: UTF8.self) == "on the first"
        }
        #expect(try chaos.ctl("list_queues", "name").contains(q))

        try await chaos.scriptAsync("stop")
        let restarted = BrokerScriptOnce(chaos, "start")
        defer { restarted.run() }
        _ = try await first(events, within: .seconds(30), "the disconnect") {
            if case .disconnected = $0 { return true }; return false
        }
        _ = try await first(events, within: .seconds(30), "the connect to the second broker") {
            if case .connected = $0 { return true }; return false
        }
        // The chaos node is down: whatever flows now flows through the second broker.
        #expect(try TestBroker.shared.ctl("list_queues", "name").contains(q))
        try await c.publish(OutgoingMessage(routingKey: q, body: Array("on the second".utf8)))
        _ = try await first(consumer.deliveries, within: .seconds(10), "the delivery on the second broker") {
            String(decoding: $0.body, as: UTF8.self) == "on the second"
        }
        _ = try await c.deleteQueue(q)
        restarted.run()
    }

    /// After a reconnect, a consumer whose queue RabbitMQ cannot serve any more (here: a transient queue gone with
    /// the restart) is dropped and its stream ends; the connection stays up and the other consumers consume.
    @Test func aConsumerThatCannotBeRestoredIsDroppedAndTheOthersGoOn() async throws {
        let broker = TestBroker.chaos
        let url = try broker.url(heartbeat: 2)
        let admin = AMQPConnection(
            url: url, options: .init(name: "chaos-restore-admin", confirms: false, reconnectCap: .seconds(1)))
        let c = AMQPConnection(url: url, options: .init(name: "chaos-restore", reconnectCap: .seconds(1)))
        defer {
            Task {
                await c.close(); await admin.close()
            }
        }
        try await admin.connect()
        try await c.connect()
        let transient = uniqueName("transient"), durable = uniqueName("durable")
        _ = try await admin.declare(QueueSpec(transient, durable: false), recreateAfterReconnect: false)
        _ = try await c.declare(QueueSpec(durable, durable: true))
        let events = c.events()
        let gone = try await c.consume(queue: transient, prefetch: 10, noAck: true)
        let kept = try await c.consume(queue: durable, prefetch: 10, noAck: true)

        try await broker.scriptAsync("restart")
        let dropped = try await first(events, within: .seconds(60), "the consumer of the vanished queue to be dropped")
        {
            if case .consumerCancelled = $0 { return true }; return false
        }
        #expect({ if case .consumerCancelled(let tag) = dropped { tag == gone.tag } else { false } }())
        _ = try await first(events, within: .seconds(30), "the restored connection") {
            if case .connected = $0 { return true }; return false
        }
        let ended = try await within(.seconds(10), "the dropped consumer's stream to end") { () -> Bool in
            for await _ in gone.deliveries {}
            return true
        }
        #expect(ended)
        try await c.publish(
            OutgoingMessage(routingKey: durable, body: Array("still here".utf8), properties: .init(deliveryMode: 2)))
        _ = try await first(kept.deliveries, within: .seconds(10), "a delivery on the restored consumer") {
            String(decoding: $0.body, as: UTF8.self) == "still here"
        }
        #expect(c.isConnected)
        _ = try await c.deleteQueue(durable)
    }

    /// A client's reply queue outlives its connection (not auto-delete, `x-expires`), results are persistent, a
    /// deleted reply queue is declared again, and `close()` removes the queue.
    @Test func replyQueueOutlivesTheConnectionAndCloseRemovesIt() async throws {
        let broker = TestBroker.shared
        let client = CeleriacClient(
            configuration: .init(connectionName: "reply-queue-test"), broker: AMQPBroker(url: try broker.url()))
        try await client.start()
        let listed = try broker.ctl("list_queues", "name", "auto_delete", "durable", "arguments")
        let line = try #require(listed.split(separator: "\n").first { $0.hasPrefix(client.replyQueue) })
        #expect(
            line.contains("false") && line.contains("true") && line.contains("x-expires"), "reply queue flags: \(line)")
        #expect(
            ResultCodec.encode(.init(taskID: "x", status: .success, result: 1), replyTo: "q", correlationID: "x")
                .properties.deliveryMode == 2)
        // The broker drops the client's result connection: the queue (and what is in it) stays.
        _ = try broker.ctl(
            "close_connection", try connectionPID(broker, named: "reply-queue-test-results"),
            "test: drop the result connection")
        #expect(try broker.ctl("list_queues", "name").contains(client.replyQueue))
        // Deleted by someone else: the client declares it again and goes on receiving results.
        let admin = AMQPConnection(url: try broker.url(), options: .init(name: "reply-queue-admin", confirms: false))
        try await admin.connect()
        _ = try await admin.deleteQueue(client.replyQueue)
        let q = client.replyQueue
        try await within(.seconds(30), "the client to declare its reply queue again") {
            while (try? await admin.inspect(queue: q)) == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        try await admin.publish(ResultCodec.encode(.success("manual-id", 42), replyTo: q, correlationID: "manual-id"))
        #expect(try await client.result(of: "manual-id", timeout: .seconds(10)) == .int(42))
        await admin.close()
        await client.close()
        #expect(try !broker.ctl("list_queues", "name").contains(client.replyQueue))
    }

    private func connectionPID(_ broker: TestBroker, named name: String) throws -> String {
        let out = try broker.ctl("list_connections", "pid", "client_properties")
        guard let line = out.split(separator: "\n").first(where: { $0.contains("\"\(name)\"") || $0.contains(name) }),
            let pid = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).first
        else {
            throw TimedOut(what: "a connection named \(name) (list_connections: \(out))", after: .zero)
        }
        return String(pid)
    }
}

/// Runs a `scripts/broker.sh` command on a broker exactly once, even when the test fails early: starts a stopped
/// node again (`start`) or resumes a paused one (`resume`).
final class BrokerScriptOnce: Sendable {
    let broker: TestBroker
    let command: String
    private let done = Mutex(false)
    init(_ broker: TestBroker, _ command: String) {
        self.broker = broker
        self.command = command
    }
    func run() {
        guard
            !done.withLock({ d in
                defer { d = true }; return d
            })
        else { return }
        _ = try? broker.script(command)
    }
}

/// Results across a broker restart: every awaited result arrives, or its wait fails with the typed timeout that
/// names the task id, within its deadline. Never a hang.
extension TransportChaosTests {
    @Test func thousandResultsInRandomOrderWithABrokerRestart() async throws {
        let broker = TestBroker.chaos
        let url = try broker.url(heartbeat: 2)
        let queue = uniqueName()
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue], concurrency: 8)
        let client = try await startClient(url: url, queue: queue)
        var handles: [(Int, TaskHandle<Int>)] = []
        for i in 0..<1000 { handles.append((i, try await client.delay(TestTasks.add, .init(x: i, y: 1)))) }
        handles.shuffle()
        let (firstResult, firstSink) = AsyncStream<Void>.makeStream()
        let waits = Task {
            try await withThrowingTaskGroup(of: (Bool, Bool).self) { group -> (right: Int, timedOut: Int, wrong: Int) in
                for (i, h) in handles {
                    group.addTask {
                        do {
                            let v = try await h.get(timeout: .seconds(45))
                            firstSink.yield()
                            return (v == i + 1, false)
                        } catch let error as CeleriacError {
                            guard case .resultTimeout(let id, _) = error, id == h.id else { throw error }
                            return (false, true)
                        }
                    }
                }
                var tally = (right: 0, timedOut: 0, wrong: 0)
                for try await (right, timedOut) in group {
                    if right { tally.right += 1 } else if timedOut { tally.timedOut += 1 } else { tally.wrong += 1 }
                }
                return tally
            }
        }
        _ = try await first(firstResult, within: .seconds(60), "the first result") { _ in true }
        try await broker.scriptAsync("restart")
        let tally = try await within(.seconds(120), "all 1000 waits to end") { try await waits.value }
        #expect(tally.right + tally.timedOut == 1000)
        #expect(tally.wrong == 0)
        #expect(tally.right > 0)
        // After the restart the client's one reply consumer and the worker's consumer are subscribed again: every
        // task sent now has its result (a client that did not resubscribe would time out on all of them).
        var after: [(Int, TaskHandle<Int>)] = []
        for i in 0..<50 { after.append((i, try await client.delay(TestTasks.add, .init(x: i, y: 100)))) }
        for (i, h) in after.shuffled() {
            #expect(try await h.get(timeout: .seconds(60)) == i + 100)
        }
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }
}

/// On the chaos node too, in the same serialized suite: a memory alarm must not overlap a restart.
extension TransportChaosTests {
    @Test func blockedBrokerIsNoticedAndPublishesFailAfterTheBound() async throws {
        let broker = TestBroker.chaos
        let url = try broker.url()
        let c = AMQPConnection(
            url: url, options: .init(name: "chaos-blocked", confirms: false, blockedTimeout: .milliseconds(300)))
        try await c.connect()
        let q = uniqueName()
        try await c.declare(QueueSpec(q, durable: false).expires(milliseconds: 120_000))
        let events = c.events()
        try await broker.scriptAsync("ctl", "set_vm_memory_high_watermark", "0.000001")
        defer { _ = try? broker.ctl("set_vm_memory_high_watermark", "0.4") }
        // RabbitMQ blocks a connection when it next publishes during an alarm.
        try await c.publish(OutgoingMessage(routingKey: q, body: [1]))
        _ = try await first(events, within: .seconds(30), "connection.blocked") {
            if case .blocked = $0 { return true }; return false
        }
        #expect(c.isBlocked)
        await #expect {
            try await c.publish(OutgoingMessage(routingKey: q, body: [2]))
        } throws: { ($0 as? AMQPError)?.code == .blocked && ($0 as? AMQPError)?.description.contains("alarm") == true }
        try await broker.scriptAsync("ctl", "set_vm_memory_high_watermark", "0.4")
        _ = try await first(events, within: .seconds(30), "connection.unblocked") { $0 == .unblocked }
        try await c.publish(OutgoingMessage(routingKey: q, body: [3]))
        try await c.deleteQueue(q)
        await c.close()
    }

    @Test func aClientSendDuringAnAlarmThrowsBrokerBlockedWithinItsBound() async throws {
        let broker = TestBroker.chaos
        let url = try broker.url()
        let queue = uniqueName()
        var configuration = CeleriacClient.Configuration(defaultQueue: queue, connectionName: "chaos-client-blocked")
        configuration.blockedTimeout = .milliseconds(300)
        let client = CeleriacClient(configuration: configuration, broker: AMQPBroker(url: try broker.url()))
        try await client.start()
        // Declares the queue.
        _ = try await client.send("it.add", args: [1, 1], options: SendOptions(ignoreResult: true))
        try await broker.scriptAsync("ctl", "set_vm_memory_high_watermark", "0.000001")
        defer { _ = try? broker.ctl("set_vm_memory_high_watermark", "0.4") }
        // The first send is read by the broker, which then blocks the connection and stops reading: its confirm
        // cannot come. It ends with the typed error once the block outlasts the bound, as every later send does.
        // Waited with a deadline far beyond the 300 ms bound: a send that waits out the alarm fails the test
        // rather than hanging it.
        for attempt in 1...2 {
            let send = Task { try await client.send("it.add", args: [2, 2], options: SendOptions(ignoreResult: true)) }
            let ended = try #require(
                await outcome(of: send, within: .seconds(60)), "send \(attempt) during the alarm did not end")
            if case .failure(let error) = ended, case .brokerBlocked? = error as? CeleriacError { continue }
            Issue.record("send \(attempt) during the alarm: expected brokerBlocked, got \(ended)")
        }
        try await broker.scriptAsync("ctl", "set_vm_memory_high_watermark", "0.4")
        await client.close()
        await deleteQueues([queue], url: url)
    }
}
