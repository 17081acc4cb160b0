import CeleriacBroker
import CeleriacCanvas
import CeleriacCoordination
import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import Logging
import Testing

@testable import CeleriacWorker

/// ``TaskPipeline`` alone on the in-memory broker: one delivery handed to it, what it publishes, settles and
/// reports. (The worker behaviour tests run it through a whole worker.)
@Suite struct TaskPipelineTests {
    /// Every call the chain gets, by kind and task name.
    struct Calls: TaskMiddleware {
        let log: EventLog<String>
        func received(_ run: TaskRun) async { log.append("received \(run.message.name)") }
        func started(_ run: TaskRun) async { log.append("started \(run.message.name)") }
        func finished(_ run: TaskRun, outcome: TaskOutcome, seconds: Double) async {
            log.append("finished \(run.message.name) \(outcome.finished.rawValue)")
        }
    }

    let clock = ManualClock()
    let broker: InMemoryBroker
    let publishing: any BrokerConnection
    let consuming: any BrokerConnection
    let recorder = Recorder()
    let calls = EventLog<String>()
    let pipeline: TaskPipeline
    let ran = Counter()

    init() async throws {
        let rig = try await BrokerRig(clock: clock)
        (broker, publishing, consuming) = (rig.broker, rig.publishing, rig.consuming)
        try await rig.declareWorkQueues(["work", "reply"], delayed: ["work"])
        try await rig.declareDeadLetter()

        let log = Logger(label: "test")
        var registry = TaskRegistry()
        let ran = self.ran
        registry.register(Tasks.add) { p, ctx in
            ran.add(ctx.name)
            return p.x + p.y
        }
        let coordination = WorkerCoordination(
            configuration: .init(duplicateWindow: 100), broker: broker, hostname: "celeriac@test", logger: log,
            observer: nil)
        let execution = TaskExecution(
            settings: .init(
                hostname: "celeriac@test", timeLimit: nil, softTimeLimit: nil, acksEarly: false, clock: clock),
            executor: InProcessExecutor(), concurrency: 2)
        let publisher = OutcomePublisher(
            settings: .init(hostname: "celeriac@test", gracePeriod: .seconds(5), signer: nil, clock: clock),
            connection: publishing, settler: consuming, observer: recorder, logger: log, tracing: nil,
            releaseUnique: { _ in })
        let planner = CanvasPlanner(defaultQueue: "work")
        let chords = ChordJoiner(
            connection: publishing, publisher: publisher, execution: execution, observer: recorder, clock: clock,
            planner: planner)
        let canvas = CanvasFollowUps(
            publisher: publisher, chords: chords,
            graph: GraphRecorder(publisher: publishing, hostname: "celeriac@test", logger: log), clock: clock,
            planner: planner)
        pipeline = TaskPipeline(
            settings: .init(limits: .init(), signer: nil, acksEarly: false, clock: clock), registry: registry,
            execution: execution, publisher: publisher, canvas: canvas, coordination: coordination,
            rateLimiter: RateLimiter(clock: clock),
            middleware: MiddlewareChain([ObserverMiddleware(observer: recorder), Calls(log: calls)]),
            observer: recorder,
            logger: log)
    }

    /// Publishes `message` (or raw bytes) to `work` and takes its delivery.
    func take(_ outgoing: OutgoingMessage) async throws -> Delivery {
        try await publishing.publish(outgoing)
        let consumer = try await consuming.consume(queue: "work", prefetch: 1)
        // The delivery, or nil after 10 s of real time (a message the broker did not deliver fails the test).
        let delivery = await withTaskGroup(of: Delivery?.self) { group in
            group.addTask {
                var deliveries = consumer.deliveries.makeAsyncIterator()
                return await deliveries.next()
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(10))
                return nil
            }
            defer { group.cancelAll() }
            return await group.next() ?? nil
        }
        try await consuming.cancel(consumer)
        return try #require(delivery, "the broker delivered nothing within 10 s")
    }

    /// Publishes `message` (or raw bytes) to `work`, takes its delivery and hands it to the pipeline.
    func handle(_ outgoing: OutgoingMessage) async throws {
        await pipeline.handle(try await take(outgoing), queue: "work")
    }

    func results() -> [ResultMessage] { (broker.messages(in: "reply") ?? []).compactMap(ResultCodec.decode) }

    @Test func aTaskRunsAndItsResultIsPublishedBeforeTheAck() async throws {
        let message = TaskMessage(name: "t.add", args: [2, 3], replyTo: "reply")
        try await handle(TaskCodec.encode(message, routingKey: "work"))
        try await broker.waitForMessages(in: "reply", 1)
        #expect(results().map(\.result) == [5])
        #expect(calls.items == ["received t.add", "started t.add", "finished t.add succeeded"])
        #expect(ran.count("t.add") == 1)
    }

    @Test func anUndecodableMessageGoesToTheDeadLetterQueueAndItsCallerHearsWhy() async throws {
        var props = BasicProperties(
            contentType: "application/json",
            headers: ["task": .string("t.add"), "id": .string("bad-1"), "lang": .string("py")])
        props.correlationID = "bad-1"
        props.replyTo = "reply"
        try await handle(OutgoingMessage(routingKey: "work", body: Array("[1, 2".utf8), properties: props))
        let dead = try #require(broker.messages(in: Topology.deadLetterQueue)?.first)
        #expect(dead.properties.headers?[HeaderKey.deadQueue]?.stringValue == "work")
        #expect(recorder.deadLetters.items.count == 1)
        try await broker.waitForMessages(in: "reply", 1)
        let answer = try #require(results().first)
        #expect(answer.status == .failure && answer.failure?.type == "DecodeError")
        #expect(calls.items.isEmpty, "not a task: the middleware never hears of it")
        #expect(broker.messages(in: "work")?.isEmpty == true)
    }

    @Test func anUnknownTaskFailsWithNotRegisteredAndIsDeadLettered() async throws {
        let message = TaskMessage(name: "t.nope", replyTo: "reply")
        try await handle(TaskCodec.encode(message, routingKey: "work"))
        try await broker.waitForMessages(in: "reply", 1)
        #expect(results().first?.failure?.type == "NotRegistered")
        #expect(recorder.deadLetters.items == ["unregistered"])
        #expect(calls.items == ["received t.nope", "finished t.nope failed"], "finished, never started")
    }

    @Test func anExpiredTaskIsRevokedWithoutRunning() async throws {
        // Its `expires` header has passed; the AMQP expiration is left out, so that the broker delivers it and the
        // pipeline's own check is what refuses it.
        let message = TaskMessage(
            name: "t.add", args: [1, 1], expires: clock.now.addingTimeInterval(-1), replyTo: "reply")
        var outgoing = TaskCodec.encode(message, routingKey: "work", now: clock.now)
        outgoing.properties.expiration = nil
        try await handle(outgoing)
        try await broker.waitForMessages(in: "reply", 1)
        #expect(results().first?.status == .revoked)
        #expect(calls.items == ["received t.add", "finished t.add expired"])
        #expect(ran.count("t.add") == 0)
    }

    @Test func anEarlyTaskIsParkedInTheBrokerNotHeldHere() async throws {
        let message = TaskMessage(name: "t.add", args: [1, 1], eta: clock.now.addingTimeInterval(60), replyTo: "reply")
        try await handle(TaskCodec.encode(message, routingKey: "work"))
        #expect(broker.delayedMessageCount == 1)
        #expect(recorder.parked.items == ["t.add"])
        #expect(ran.count("t.add") == 0)
        #expect(broker.messages(in: "work")?.isEmpty == true, "the original is acked")
    }

    @Test func aDuplicateDeliveryOfACompletedTaskIsAckedWithoutRunningAgain() async throws {
        let message = TaskMessage(name: "t.add", args: [1, 2], replyTo: "reply")
        try await handle(TaskCodec.encode(message, routingKey: "work"))
        try await handle(TaskCodec.encode(message, routingKey: "work"))
        #expect(ran.count("t.add") == 1)
        #expect(results().count == 1)
        #expect(broker.messages(in: "work")?.isEmpty == true)
    }
}
