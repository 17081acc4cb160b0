import CeleriacBroker
import CeleriacCore
import Synchronization
import Testing

@testable import CeleriacWorker

/// The event emitter on its own, with a publisher that records.
@Suite struct WorkerEventsTests {
    final class Recording: MessagePublishing {
        let sent = Mutex<[OutgoingMessage]>([])
        func publish(_ messages: [OutgoingMessage], settler: PublishSettler?) async throws(BrokerError) {
            sent.withLock { $0 += messages }
        }
        func publishInBackground(_ message: OutgoingMessage) { sent.withLock { $0.append(message) } }
    }

    func events(enabled: Bool) -> (WorkerEvents, Recording) {
        let publisher = Recording()
        return (
            WorkerEvents(hostname: "celeriac@unit", enabled: enabled, publisher: publisher, lamport: LamportClock()),
            publisher
        )
    }

    @Test func nothingIsSentWhileEventsAreOff() {
        let (events, publisher) = events(enabled: false)
        events.received(TaskMessage(id: "1", name: "t.add", args: [1, 2]))
        events.flush()
        events.offline(.init(active: 0, processed: 0))
        #expect(publisher.sent.withLock { $0.isEmpty })
    }

    @Test func taskEventsLeaveAsOneBatchWithIdentityAndARisingClock() throws {
        let (events, publisher) = events(enabled: true)
        let m = TaskMessage(id: "id-1", name: "t.add", args: [1, 2])
        events.received(m)
        events.started(m)
        events.succeeded(m, result: .int(3), runtime: 0.25)
        #expect(publisher.sent.withLock { $0.isEmpty }, "a batch left before it was full or flushed")
        events.flush()
        let sent = try #require(publisher.sent.withLock { $0.first })
        #expect(sent.exchange == "celeryev" && sent.routingKey == "task.multi" && sent.properties.deliveryMode == 1)
        let batch = try #require(try JSONValue.parse(sent.body).arrayValue)
        #expect(batch.compactMap { $0["type"]?.stringValue } == ["task-received", "task-started", "task-succeeded"])
        #expect(batch.allSatisfy { $0["hostname"] == .string("celeriac@unit") && $0["uuid"] == .string("id-1") })
        #expect(batch.compactMap { $0["clock"]?.intValue } == [1, 2, 3])
        #expect(batch.last?["result"] == .string("3"))
    }

    @Test func aFullBatchLeavesWithoutWaitingForTheFlusher() {
        let (events, publisher) = events(enabled: true)
        for i in 0..<WorkerEvents.batchSize { events.started(TaskMessage(id: "\(i)", name: "t.add")) }
        #expect(publisher.sent.withLock { $0.count } == 1)
        events.flush()
        #expect(publisher.sent.withLock { $0.count } == 1, "an empty batch was sent")
    }

    @Test func workerEventsReportTheStatusGiven() throws {
        let (events, publisher) = events(enabled: true)
        events.offline(.init(active: 2, processed: 41))
        let sent = try #require(publisher.sent.withLock { $0.last })
        #expect(sent.routingKey == "worker.offline")
        let body = try JSONValue.parse(sent.body)
        #expect(body["active"] == .int(2) && body["processed"] == .int(41) && body["type"] == .string("worker-offline"))
    }

    @Test func switchingEventsOnAtRunTimeTakesEffect() {
        let (events, publisher) = events(enabled: false)
        events.setEnabled(true)
        events.started(TaskMessage(id: "x", name: "t.add"))
        events.flush()
        #expect(publisher.sent.withLock { $0.count } == 1)
    }
}
