import AMQPTransport
import CeleriacAMQP
import CeleriacCanvas
import CeleriacCore
import CeleriacMessaging
import Foundation
import Testing

/// `celeriac graph ROOT_ID` on a recorded chord of chains with one failing step: the JSON, DOT and Mermaid outputs
/// are parsed, and must carry the expected nodes, edges and states (the same in all three).
@Suite(.tags(.integration), .serialized)
struct WorkflowGraphTests {
    struct Parsed {
        var nodes: [String: String] = [:]  // node id -> state (as the format shows it)
        var edges: Set<[String]> = []  // [from, to]
    }

    @Test func chordOfChainsWithAFailingStepIsDrawnWithItsStates() async throws {
        guard DemoApp.isBuilt() else { return }
        let url = try TestBroker.shared.url()
        let queue = uniqueName("graph")
        let worker = try await startWorker(CanvasTasks.registry(), url: url, queues: [queue], concurrency: 4)
        let client = try await startClient(url: url, queue: queue)
        let header = group {
            CanvasTasks.add.s(1, 1) | CanvasTasks.mul.s(2)
            CanvasTasks.add.s(2, 2) | CanvasTasks.fail.si("boom")
            CanvasTasks.add.s(3, 3) | CanvasTasks.mul.s(2)
        }
        let recorded = try await client.applyRecorded(chord(header, CanvasTasks.xsum.s()))
        let failed = await failure(of: recorded.result)
        #expect(failed?.contains("ChordError") == true, "the chord fails: \(failed ?? "it succeeded")")

        let broker = TestBroker.shared.urlString
        let jsonRun = await Shell.runOffPoolWithStatus(
            DemoCLITests.demo, ["graph", recorded.rootID, "--format", "json", "--wait", "30", "--broker", broker],
            environment: ProcessInfo.processInfo.environment)
        #expect(jsonRun.ok, "\(jsonRun.output)")
        let graph = try #require(
            jsonRun.output.split(separator: "\n").last.flatMap { try? JSONValue.parse(String($0)) }, "\(jsonRun.output)"
        )
        #expect(graph["root"]?.stringValue == recorded.rootID)
        #expect(graph["finished"] == .bool(true))
        let nodes = try #require(graph["nodes"]?.arrayValue)
        let edges = try #require(graph["edges"]?.arrayValue)
        let clusters = try #require(graph["clusters"]?.arrayValue)

        // Nodes: 3 adds and 2 muls succeeded with timings, the failing step failed, the body failed without running.
        let named: [(name: String, state: String)] = nodes.map {
            ($0["name"]?.stringValue ?? "?", $0["state"]?.stringValue ?? "?")
        }
        let counts = Dictionary(named.map { ("\($0.name) \($0.state)", 1) }, uniquingKeysWith: +)
        let expectedCounts: [String: Int] = [
            "cv.add SUCCESS": 3, "cv.mul SUCCESS": 2, "cv.fail FAILURE": 1, "cv.xsum FAILURE": 1,
        ]
        #expect(counts == expectedCounts)
        for n in nodes where n["state"]?.stringValue == "SUCCESS" {
            #expect(n["runtime"]?.doubleValue != nil && n["started"]?.doubleValue != nil, "timing of \(n.jsonString)")
        }
        let failStep = try #require(nodes.first { $0["name"]?.stringValue == "cv.fail" })
        #expect(failStep["error"]?.stringValue?.contains("boom") == true)
        let body = try #require(nodes.first { $0["name"]?.stringValue == "cv.xsum" })
        #expect(body["error"]?.stringValue?.hasPrefix("not run") == true)
        #expect(
            nodes.first { $0["id"]?.stringValue == recorded.rootID }?["name"]?.stringValue == "cv.add",
            "the root is the first task")

        // Edges: add → mul/fail inside each chain, every chain's last step → the body.
        let nameOf = Dictionary(
            nodes.map { ($0["id"]?.stringValue ?? "", $0["name"]?.stringValue ?? "") }, uniquingKeysWith: { a, _ in a })
        let namedEdges = edges.map { e in
            "\(nameOf[e["from"]?.stringValue ?? ""] ?? "?") -\(e["kind"]?.stringValue ?? "?")-> \(nameOf[e["to"]?.stringValue ?? ""] ?? "?")"
        }
        let edgeCounts = Dictionary(namedEdges.map { ($0, 1) }, uniquingKeysWith: +)
        let expectedEdges: [String: Int] = [
            "cv.add -chain-> cv.mul": 2, "cv.add -chain-> cv.fail": 1, "cv.mul -chord-> cv.xsum": 2,
            "cv.fail -chord-> cv.xsum": 1,
        ]
        #expect(edgeCounts == expectedEdges)
        // The chord header is a cluster holding the six chain steps; the body is outside it.
        #expect(clusters.count == 1 && clusters.first?["kind"]?.stringValue == "chord")
        let inHeader = nodes.filter { $0["cluster"]?.stringValue == clusters.first?["id"]?.stringValue }.count
        #expect(inHeader == 6)
        #expect(body["cluster"] == .null)

        // DOT and Mermaid (read after the workflow finished) carry the same nodes, edges and states.
        var expected = Parsed()
        for n in nodes { expected.nodes[n["node"]?.stringValue ?? ""] = n["state"]?.stringValue ?? "" }
        let nodeIDOf = Dictionary(
            nodes.map { ($0["id"]?.stringValue ?? "", $0["node"]?.stringValue ?? "") }, uniquingKeysWith: { a, _ in a })
        for e in edges {
            expected.edges.insert([
                nodeIDOf[e["from"]?.stringValue ?? ""] ?? "", nodeIDOf[e["to"]?.stringValue ?? ""] ?? "",
            ])
        }
        let dotRun = await Shell.runOffPoolWithStatus(
            DemoCLITests.demo, ["graph", recorded.rootID, "--format", "dot", "--broker", broker],
            environment: ProcessInfo.processInfo.environment)
        let dot = Self.parseDOT(dotRun.output)
        #expect(dotRun.ok && dot.nodes == expected.nodes, "\(dotRun.output)")
        #expect(dot.edges == expected.edges)
        let mermaidRun = await Shell.runOffPoolWithStatus(
            DemoCLITests.demo, ["graph", recorded.rootID, "--format", "mermaid", "--broker", broker],
            environment: ProcessInfo.processInfo.environment)
        let mermaid = Self.parseMermaid(mermaidRun.output)
        #expect(mermaidRun.ok && mermaid.nodes == expected.nodes, "\(mermaidRun.output)")
        #expect(mermaid.edges == expected.edges)

        let missing = await Shell.runOffPoolWithStatus(
            DemoCLITests.demo, ["graph", "no-such-root", "--broker", broker],
            environment: ProcessInfo.processInfo.environment)
        #expect(!missing.ok && missing.output.contains("no workflow graph recorded"), "\(missing.output)")

        await client.close()
        try await worker.stop()
        await deleteQueues([queue, GraphRecording.queue(root: recorded.rootID)], url: url)
    }

    /// The failure text of a canvas result, nil when it succeeded.
    func failure(of result: CanvasResult<Int>) async -> String? {
        do {
            _ = try await result.get(timeout: .seconds(60))
            return nil
        } catch {
            return String(describing: error)
        }
    }

    /// `t_x [label="name\nSTATE …", …];` nodes and `t_a -> t_b …;` edges.
    static func parseDOT(_ text: String) -> Parsed {
        var p = Parsed()
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("t_"), let arrow = line.range(of: " -> ") {
                let to = line[arrow.upperBound...].prefix { $0 != " " && $0 != ";" }
                p.edges.insert([String(line[..<arrow.lowerBound]), String(to)])
            } else if line.hasPrefix("t_"), let open = line.range(of: " [label=\"") {
                let label = line[open.upperBound...]
                let lines = label.components(separatedBy: "\\n")
                let state = lines.count > 1 ? String(lines[1].prefix { $0 != " " && $0 != "\"" }) : ""
                p.nodes[String(line[..<open.lowerBound])] = state
            }
        }
        return p
    }

    /// `t_x["name<br/>STATE …"]:::state` nodes and `t_a --> t_b` / `t_a -.-> t_b` edges.
    static func parseMermaid(_ text: String) -> Parsed {
        var p = Parsed()
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard line.hasPrefix("t_") else { continue }
            let parts = line.split(separator: " ")
            if parts.count == 3, parts[1] == "-->" || parts[1] == "-.->" {
                p.edges.insert([String(parts[0]), String(parts[2])])
            } else if let open = line.range(of: "[\""), let cls = line.range(of: "\"]:::") {
                let lines = line[open.upperBound..<cls.lowerBound].components(separatedBy: "<br/>")
                let shown = lines.count > 1 ? String(lines[1].prefix { $0 != " " }) : ""
                let state = String(line[cls.upperBound...])
                if shown.lowercased() == state { p.nodes[String(line[..<open.lowerBound])] = shown }
            }
        }
        return p
    }
}
