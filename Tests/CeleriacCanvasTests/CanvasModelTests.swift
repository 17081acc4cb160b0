import CeleriacCanvas
import CeleriacCore
import Foundation
import Testing

enum T {
    struct Pair: Codable, Sendable, Arguments2 {
        let x: Int; let y: Int; init(_ x: Int, _ y: Int) { self.x = x; self.y = y }
    }
    struct Numbers: Codable, Sendable, Arguments1 { let numbers: [Int]; init(_ n: [Int]) { numbers = n } }
    static let add = TaskName<Pair, Int>("t.add", parameters: "x", "y")
    static let mul = TaskName<Pair, Int>("t.mul", parameters: "x", "y")
    static let xsum = TaskName<Numbers, Int>("t.xsum", parameters: "numbers")
}

@Suite struct SignatureJSONTests {
    @Test func taskSignatureHasCeleryShape() throws {
        let json = T.add.s(1, 2).node.json
        #expect(
            json == [
                "task": "t.add", "args": [1, 2], "kwargs": [:], "options": [:], "subtask_type": nil, "immutable": false,
            ])
        #expect(T.add.si(1, 2).node.json["immutable"] == true)
    }

    @Test func nestedCanvasRoundTripsThroughJSON() throws {
        let canvas = chord(
            group {
                T.add.s(1, 1); T.add.s(2, 2) | T.mul.s(3)
            }, T.xsum.s() | T.add.s(1))
        let json = canvas.node.json
        #expect(json["subtask_type"] == "chord")
        #expect(json["kwargs"]?["header"]?.arrayValue?.count == 2)
        #expect(try CanvasNode(json: json) == canvas.node)
        // Celery's own forms parse too: a chord whose header is a group signature, unknown keys ignored.
        let celery: JSONValue = [
            "task": "celery.chord", "args": [], "subtask_type": "chord", "immutable": false, "options": [:],
            "chord_size": nil,
            "kwargs": [
                "kwargs": [:], "body": T.xsum.s().node.json,
                "header": [
                    "task": "celery.group", "args": [], "subtask_type": "group", "options": [:],
                    "kwargs": ["tasks": [T.add.s(1, 1).node.json]],
                ],
            ],
        ]
        guard case .chord(let header, _, _) = try CanvasNode(json: celery) else { Issue.record("not a chord"); return }
        #expect(header.count == 1)
    }

    @Test func malformedSignaturesAreRejectedWithTheReason() {
        #expect(throws: CanvasDecodingError.self) { try CanvasNode(json: ["args": []]) }
        #expect(throws: CanvasDecodingError.self) {
            try CanvasNode(json: ["task": "celery.chord", "subtask_type": "chord", "kwargs": ["header": []]])
        }
        #expect(throws: CanvasDecodingError.self) { try CanvasNode(json: "add") }
    }
}

@Suite struct FreezeAndPlanTests {
    let freezer = CanvasFreezer(replyTo: "reply-q", defaultQueue: "celery")
    let planner = CanvasPlanner(defaultQueue: "celery")

    @Test func chainPublishesItsFirstStepWithTheRestReversed() throws {
        let frozen = freezer.freeze((T.add.s(2, 2) | T.mul.s(4) | T.mul.s(5)).node)
        let plan = planner.plan(frozen)
        #expect(plan.messages.count == 1)
        let first = plan.messages[0].message
        #expect(first.name == "t.add")
        #expect(first.args == [2, 2])
        #expect(first.replyTo == "reply-q")
        let chain = try #require(first.embed.chain)
        #expect(chain.map { $0["args"] } == [[5], [4]])  // next step last, as Celery does
        // Every step's id is known up front; the chain's result is the last step's.
        guard case .task(let lastID, _) = ResultShape(of: frozen) else { Issue.record("not a task shape"); return }
        #expect(chain[0]["options"]?["task_id"]?.stringValue == lastID)
    }

    @Test func groupFollowedByAStepBecomesAChord() throws {
        let canvas =
            group {
                T.add.s(1, 1); T.add.s(2, 2)
            } | T.xsum.s()
        let frozen = freezer.freeze(canvas.node)
        guard case .chord(let header, let body, let options) = frozen else {
            Issue.record("not upgraded to a chord: \(frozen)"); return
        }
        #expect(header.count == 2)
        let info = try #require(ChordInfo(json: body.options[ChordInfo.optionKey]))
        #expect(info.size == 2)
        #expect(info.id == options["group_id"]?.stringValue)
        let plan = planner.plan(frozen)
        #expect(plan.chords == [info])
        #expect(plan.messages.map(\.message.groupIndex) == [0, 1])
        #expect(plan.messages.allSatisfy { $0.message.groupID == info.id && $0.message.embed.chord != nil })
        #expect(!info.quorum)
    }

    @Test func aChordFrozenForAClusterCarriesItsQuorumJoinQueue() throws {
        var clustered = freezer
        clustered.quorumJoinQueues = true
        guard case .chord(_, let body, _) = clustered.freeze(chord(group { T.add.s(1, 1) }, T.xsum.s()).node) else {
            Issue.record("not a chord"); return
        }
        let info = try #require(ChordInfo(json: body.options[ChordInfo.optionKey]))
        // Every party (client, the worker that joins) declares the join queue from this flag, so they agree.
        #expect(info.quorum)
        #expect(ChordInfo(json: info.json) == info)
    }

    @Test func chainInsideAChordHeaderCarriesTheChordOnItsLastStep() throws {
        let canvas = chord(
            group {
                T.add.s(1, 1) | T.mul.s(2); T.add.s(3, 3)
            }, T.xsum.s())
        let plan = planner.plan(freezer.freeze(canvas.node))
        #expect(plan.messages.count == 2)
        let chained = plan.messages[0].message
        #expect(chained.embed.chord == nil)  // the first step is not the member's last
        let last = try #require(chained.embed.chain?.first)
        #expect(last["options"]?["group_index"] == 0)
        #expect(last["options"]?["chord"] != nil)
        #expect(plan.messages[1].message.groupIndex == 1)
    }

    @Test func chordWithDeadlinePlansADelayedJoin() throws {
        let canvas = chord(group { T.add.s(1, 1) }, T.xsum.s(), deadline: .seconds(30))
        let now = Date()
        let plan = planner.plan(freezer.freeze(canvas.node), now: now)
        let join = try #require(plan.messages.first { $0.message.name == ChordInfo.joinTaskName })
        #expect(join.message.eta == now.addingTimeInterval(30))
        #expect(join.message.kwargs["reason"] == "deadline")
    }

    @Test func previousResultIsPrependedUnlessImmutable() {
        let parent = TaskMessage(id: "p1", name: "t.add")
        let step = planner.plan(T.mul.s(4).node, previous: 3, parent: parent)
        #expect(step.messages[0].message.args == [3, 4])
        #expect(step.messages[0].message.parentID == "p1")
        let fixed = planner.plan(T.mul.si(1, 2).node, previous: 3, parent: parent)
        #expect(fixed.messages[0].message.args == [1, 2])
    }

    @Test func chunksSplitIntoStarmapTasks() {
        let plan = planner.plan(freezer.freeze(T.add.chunks((0..<5).map { ($0, $0) }, size: 2).node))
        #expect(plan.messages.map(\.message.name) == ["celery.starmap", "celery.starmap", "celery.starmap"])
        #expect(plan.messages.map { $0.message.kwargs["it"]?.arrayValue?.count } == [2, 2, 1])
    }
}

@Suite struct ChordJoinDecisionTests {
    let info = ChordInfo(id: "c1", size: 3, queue: "celery", deadline: 5)

    func part(_ i: Int, _ v: Int) -> ChordPart {
        ChordPart(index: i, taskID: "t\(i)", outcome: .success(.int(Int64(v))))
    }

    @Test func resultsAreInHeaderOrderWhateverTheArrivalOrder() {
        #expect(
            ChordJoin.decide(parts: [part(2, 30), part(0, 10), part(1, 20)], info: info) == .runBody([10, 20, 30]))
    }

    @Test func duplicatesCountOnceAndMissingMembersAreNamed() {
        #expect(ChordJoin.decide(parts: [part(0, 1), part(0, 1), part(2, 3)], info: info) == .incomplete(missing: [1]))
    }

    @Test func deadlineFailsAnIncompleteChordNamingTheMissing() {
        guard case .fail(let failure) = ChordJoin.decide(parts: [part(0, 1)], info: info, deadlinePassed: true) else {
            Issue.record("an incomplete chord past its deadline must fail"); return
        }
        #expect(failure.type == "ChordError")
        #expect(failure.message.contains("missing members [1, 2]"))
    }

    @Test func failedMemberFailsTheBodyOrIsCollected() {
        let bad = ChordPart(
            index: 1, taskID: "t1",
            outcome: .failure(TaskFailure(type: "ValueError", arguments: ["nope"], module: "builtins")))
        guard case .fail(let failure) = ChordJoin.decide(parts: [part(0, 1), bad, part(2, 3)], info: info) else {
            Issue.record("a failed member must fail the body"); return
        }
        #expect(failure.message.contains("Dependency t1 raised ValueError('nope')"))
        var collecting = info
        collecting.policy = .collectErrors
        guard case .runBody(let list) = ChordJoin.decide(parts: [part(0, 1), bad, part(2, 3)], info: collecting) else {
            Issue.record("collectErrors must run the body"); return
        }
        #expect(list.arrayValue?[1]["exc_type"] == "ValueError")
        #expect(ChordPart(json: bad.json) == bad)
    }
}
