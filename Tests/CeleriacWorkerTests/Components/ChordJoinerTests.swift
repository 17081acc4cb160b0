import CeleriacBroker
import CeleriacCanvas
import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import Logging
import Testing

@testable import CeleriacWorker

/// ``ChordJoiner`` (with the ``CanvasFollowUps`` it uses) alone on the in-memory broker: parts, the count, the join.
@Suite struct ChordJoinerTests {
    let clock = ManualClock()
    let broker: InMemoryBroker
    let publishing: any BrokerConnection
    let consuming: any BrokerConnection
    let recorder = Recorder()
    let log = Logger(label: "test")
    let joiner: ChordJoiner
    let canvas: CanvasFollowUps
    let info = ChordInfo(id: "chord-1", size: 2, queue: "work")

    init() async throws {
        let rig = try await BrokerRig(clock: clock)
        (broker, publishing, consuming) = (rig.broker, rig.publishing, rig.consuming)
        try await rig.declareWorkQueues(["work"])
        let publisher = OutcomePublisher(
            settings: .init(hostname: "celeriac@test", gracePeriod: .seconds(5), signer: nil, clock: clock),
            connection: publishing, settler: consuming, observer: recorder, logger: log, tracing: nil,
            releaseUnique: { _ in })
        let execution = TaskExecution(
            settings: .init(
                hostname: "celeriac@test", timeLimit: nil, softTimeLimit: nil, acksEarly: false, clock: clock),
            executor: InProcessExecutor(), concurrency: 2)
        let planner = CanvasPlanner(defaultQueue: "work")
        joiner = ChordJoiner(
            connection: publishing, publisher: publisher, execution: execution, observer: recorder, clock: clock,
            planner: planner)
        canvas = CanvasFollowUps(
            publisher: publisher, chords: joiner,
            graph: GraphRecorder(publisher: publishing, hostname: "celeriac@test", logger: log),
            clock: clock, planner: planner)
    }

    /// The chord body as its members carry it: `t.xsum` with the chord's join information in its options.
    var body: JSONValue {
        [
            "task": "t.xsum", "args": [], "kwargs": [:], "subtask_type": .null,
            "options": ["task_id": "body-1", ChordInfo.optionKey: info.json],
        ]
    }

    func member(_ index: Int) -> TaskMessage {
        var m = TaskMessage(name: "t.add", groupID: "group-1", groupIndex: index)
        m.embed.chord = body
        return m
    }

    /// Takes every message now ready in `queue`.
    func take(_ queue: String) async throws -> [Delivery] {
        var out: [Delivery] = []
        while let d = try await consuming.get(queue: queue) { out.append(d) }
        return out
    }

    @Test func theLastPartPublishesOneJoinAndTheJoinPublishesTheBodyWithEveryResult() async throws {
        _ = try await publishing.declare(ChordQueues.joinQueue(info), recreateAfterReconnect: false)
        #expect(await joiner.reportPart(of: member(0), outcome: .success(3), chord: body, log: log))
        #expect(try await take("work").isEmpty, "one of two parts: no join yet")
        #expect(await joiner.reportPart(of: member(1), outcome: .success(4), chord: body, log: log))
        let joins = try await take("work")
        #expect(joins.count == 1)
        let join = try TaskCodec.decode(try #require(joins.first))
        #expect(join.name == ChordInfo.joinTaskName)

        await joiner.join(try #require(joins.first), join, queue: "work", log: log, canvas: canvas)
        let bodies = try await take("work")
        let task = try TaskCodec.decode(try #require(bodies.first))
        #expect(task.name == "t.xsum")
        #expect(task.args == [[3, 4]])
        #expect(broker.queueNames.filter { $0.hasPrefix("celeriac.chord.") }.isEmpty, "join and lock queues are gone")
        #expect(recorder.chords.items == ["joined"])
    }

    @Test func aFailedPartFailsTheBody() async throws {
        _ = try await publishing.declare(ChordQueues.joinQueue(info), recreateAfterReconnect: false)
        let boom = TaskFailure(type: "ValueError", arguments: ["boom"], module: "builtins")
        #expect(await joiner.reportPart(of: member(0), outcome: .failure(boom), chord: body, log: log))
        #expect(await joiner.reportPart(of: member(1), outcome: .success(4), chord: body, log: log))
        let joins = try await take("work")
        let join = try TaskCodec.decode(try #require(joins.first))
        await joiner.join(try #require(joins.first), join, queue: "work", log: log, canvas: canvas)
        #expect(try await take("work").isEmpty, "the body does not run")
        #expect(recorder.chords.items == ["failed"])
    }

    @Test func aPartAfterTheJoinQueueIsGoneIsDroppedAsLate() async throws {
        #expect(await joiner.reportPart(of: member(0), outcome: .success(3), chord: body, log: log))
        #expect(recorder.chords.items == ["late_part"])
    }
}
