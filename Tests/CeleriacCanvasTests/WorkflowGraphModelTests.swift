import CeleriacCanvas
import CeleriacCore
import Foundation
import Testing

/// The workflow graph model without a broker: marking, structure of nested canvases, and how records set states.
@Suite struct WorkflowGraphModelTests {
    static func frozen(_ node: CanvasNode) -> (CanvasNode, String) {
        let (marked, root) = GraphRecording.mark(node)
        return (CanvasFreezer(replyTo: "r", defaultQueue: "q").freeze(marked), root)
    }

    static func taskIDs(_ node: CanvasNode) -> [String] {
        switch node {
        case .task(let t): [t.options["task_id"]?.stringValue ?? "?"]
        case .chain(let n, _), .group(let n, _): n.flatMap(taskIDs)
        case .chord(let h, let b, _): h.flatMap(taskIDs) + taskIDs(b)
        }
    }

    @Test func markingSetsTheRootAndHeaderOnEveryTaskIncludingTheChordBody() throws {
        let (node, root) = Self.frozen(
            chord(
                group {
                    T.add.s(1, 1) | T.mul.s(2); T.add.s(2, 2)
                }, T.xsum.s()
            ).node)
        let plan = CanvasPlanner(defaultQueue: "q").plan(node)
        #expect(plan.messages.count == 2)
        for m in plan.messages {
            #expect(m.message.rootID == root)
            #expect(m.message.extraHeaders[GraphRecording.header] == .string(root))
        }
        #expect(Self.taskIDs(node).first == root)
        // The body travels inside each header member's `chord` option, marked too.
        let body = try #require(plan.messages.last?.message.embed.chord)
        #expect(body["options"]?["headers"]?[GraphRecording.header] == .string(root))
    }

    @Test func nestedCanvasGivesNodesEdgesAndClusters() {
        // add | group(mul, add | mul) | xsum  →  add, then a chord whose header is the group, body xsum.
        let (node, root) = Self.frozen(
            (T.add.s(1, 1)
                | group(steps: {
                    T.mul.s(2); T.add.s(1) | T.mul.s(3)
                }) | T.xsum.s()).node)
        let graph = WorkflowGraph(root: root, canvas: node, records: [])
        let names: [String] = graph.nodes.map(\.name)
        #expect(names == ["t.add", "t.mul", "t.add", "t.mul", "t.xsum"])
        let ids = graph.nodes.map(\.id)
        let edges = Set(graph.edges.map { "\(ids.firstIndex(of: $0.from)!)-\($0.kind)->\(ids.firstIndex(of: $0.to)!)" })
        let expected: Set<String> = ["0-chain->1", "0-chain->2", "2-chain->3", "1-chord->4", "3-chord->4"]
        #expect(edges == expected)
        #expect(graph.clusters.count == 1 && graph.clusters[0].kind == "chord")
        #expect(graph.nodes.filter { $0.cluster != nil }.count == 3)
        #expect(!graph.isFinished)
    }

    @Test func aFinalStateIsNotReplacedByALateStartedRecord() {
        let (node, root) = Self.frozen(T.add.s(1, 1).node)
        let id = Self.taskIDs(node)[0]
        let records = [
            GraphRecord(taskID: id, name: "t.add", state: .started, timestamp: 100, worker: "w1"),
            GraphRecord(taskID: id, name: "t.add", state: .success, timestamp: 100.5, runtime: 0.5, worker: "w1"),
            // A redelivered duplicate:
            GraphRecord(taskID: id, name: "t.add", state: .started, timestamp: 101, worker: "w2"),
        ]
        let graph = WorkflowGraph(root: root, canvas: node, records: records)
        #expect(graph.nodes.count == 1)
        #expect(graph.nodes[0].state == .success)
        #expect(graph.nodes[0].started == 100)
        #expect(graph.nodes[0].runtime == 0.5)
        #expect(graph.isFinished)
        #expect(graph.dot.contains("SUCCESS 500 ms"))
        #expect(graph.mermaid.contains(":::success"))
    }

    @Test func recordsRoundTripThroughJSON() throws {
        let r = GraphRecord(
            taskID: "a", name: "t.add", state: .failure, timestamp: 1.5, runtime: 0.25, worker: "w",
            error: "ValueError: x")
        #expect(GraphRecord(json: r.json) == r)
        #expect(throws: CeleriacError.self) { try WorkflowGraph(root: "a", records: [r.json]) }
    }
}
