import CeleriacBroker
import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import Logging
import Testing

@testable import CeleriacWorker

/// ``OutcomePublisher`` alone on the in-memory broker: dead letters, parking and republishing through the delay
/// topology, results and what happens when the broker cannot take them.
@Suite struct OutcomePublisherTests {
    let clock = ManualClock()
    let broker: InMemoryBroker
    let publishing: any BrokerConnection
    let consuming: any BrokerConnection
    let recorder = Recorder()

    init() async throws {
        let rig = try await BrokerRig(clock: clock)
        (broker, publishing, consuming) = (rig.broker, rig.publishing, rig.consuming)
        try await rig.declareWorkQueues(["work"], delayed: ["work"])
        try await rig.declareDeadLetter()
    }

    func publisher(grace: Duration = .seconds(5), released: EventLog<String> = EventLog()) -> OutcomePublisher {
        OutcomePublisher(
            settings: .init(hostname: "celeriac@test", gracePeriod: grace, signer: nil, clock: clock),
            connection: publishing, settler: consuming, observer: recorder, logger: Logger(label: "test"), tracing: nil,
            releaseUnique: { released.append($0.properties.correlationID ?? "?") })
    }

    /// Publishes `message` to the work queue and takes its delivery (unacked).
    func delivered(_ message: TaskMessage) async throws -> Delivery {
        try await publishing.publish(TaskCodec.encode(message, routingKey: "work"))
        let consumer = try await consuming.consume(queue: "work", prefetch: 10)
        var deliveries = consumer.deliveries.makeAsyncIterator()
        let delivery = try #require(await deliveries.next())
        try await consuming.cancel(consumer)
        return delivery
    }

    @Test func aDeadLetterKeepsTheBodyAddsTheReasonAndAcksTheOriginal() async throws {
        let released = EventLog<String>()
        let publisher = publisher(released: released)
        let message = TaskMessage(name: "t.add", args: [1, 2])
        let delivery = try await delivered(message)
        await publisher.deadLetter(
            delivery, queue: "work", reason: "task 't.add' is not registered", label: "unregistered")
        let dead = try #require(broker.messages(in: Topology.deadLetterQueue)?.first)
        #expect(dead.body == delivery.body)
        #expect(dead.properties.headers?[HeaderKey.deadReason]?.stringValue == "task 't.add' is not registered")
        #expect(dead.properties.headers?[HeaderKey.deadQueue]?.stringValue == "work")
        #expect(dead.properties.headers?[HeaderKey.deadWorker]?.stringValue == "celeriac@test")
        #expect(broker.messages(in: "work")?.isEmpty == true)
        #expect(released.items == [message.id], "a unique lock the message held is given back")
        #expect(recorder.deadLetters.items == ["unregistered"])
        let info = try await consuming.inspect(queue: "work")
        #expect(info.messageCount == 0 && info.consumerCount == 0)
    }

    @Test func anEarlyMessageIsParkedInTheDelayTopologyAndAcked() async throws {
        let publisher = publisher()
        let message = TaskMessage(name: "t.add", eta: clock.now.addingTimeInterval(30))
        let delivery = try await delivered(message)
        await publisher.park(delivery, message, queue: "work")
        #expect(broker.delayedMessageCount == 1)
        #expect(recorder.parked.items == ["t.add"])
        await clock.advance(by: .seconds(30))
        try await broker.waitForMessages(in: "work", 1)
    }

    @Test func aCopyDueWithinASecondGoesStraightToItsQueue() async throws {
        let publisher = publisher()
        #expect(
            await publisher.republish(TaskMessage(name: "t.add", eta: clock.now.addingTimeInterval(0.5)), queue: "work")
        )
        #expect(broker.delayedMessageCount == 0)
        #expect(broker.messages(in: "work")?.count == 1)
    }

    @Test func aResultGoesToTheReplyQueueUnlessTheTaskIgnoresResults() async throws {
        let publisher = publisher()
        _ = try await publishing.declare(Topology.replyQueue("reply.1"), recreateAfterReconnect: false)
        let message = TaskMessage(name: "t.add", ignoreResult: nil, replyTo: "reply.1")
        #expect(await publisher.publishResult(.success(message.id, 3, for: message), for: message))
        let reply = try #require(broker.messages(in: "reply.1")?.first)
        #expect(reply.properties.correlationID == message.id)
        let ignoring = RegisteredTask(name: "t.add", parameters: [], options: TaskOptions(ignoreResult: true)) { _, _ in
            .null
        }
        #expect(publisher.resultMessage(.success(message.id, 3, for: message), for: message, task: ignoring) == nil)
        #expect(
            publisher.resultMessage(.success(message.id, 3, for: message), for: TaskMessage(name: "t.add")) == nil,
            "no reply_to")
    }

    @Test func aResultTheBrokerCannotTakeReturnsFalseAndIsCounted() async throws {
        let failures = FailureCounter()
        let publisher = OutcomePublisher(
            settings: .init(hostname: "celeriac@test", gracePeriod: .milliseconds(50), signer: nil, clock: clock),
            connection: publishing, settler: consuming, observer: failures, logger: Logger(label: "test"),
            tracing: nil, releaseUnique: { _ in })
        await publishing.close()
        let message = TaskMessage(name: "t.add", replyTo: "reply.gone")
        #expect(!(await publisher.publishResult(.success(message.id, 3, for: message), for: message)))
        #expect(failures.count.items.count == 1)
    }
}

/// Counts results that could not be published.
final class FailureCounter: WorkerObserver {
    let count = EventLog<Int>()
    func resultPublishFailed() { count.append(1) }
}
