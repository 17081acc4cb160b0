import CeleriacCore

/// DOT (Graphviz), Mermaid and JSON renderings of a ``WorkflowGraph``. All three carry the same node ids
/// (`t_` + the task id with `-` as `_`), edges and clusters.
extension WorkflowGraph {
    /// An output format of `celeriac graph`: `dot` (Graphviz), `mermaid` (a Mermaid flowchart) or `json`.
    public enum Format: String, Sendable, CaseIterable {
        case dot, mermaid, json
    }

    /// The graph as text in `format`: ``dot``, ``mermaid``, or ``json`` as compact JSON text.
    public func render(_ format: Format) -> String {
        switch format {
        case .dot: dot
        case .mermaid: mermaid
        case .json: json.jsonString
        }
    }

    /// The node id used in DOT and Mermaid for a task id.
    public static func nodeID(_ taskID: String) -> String {
        "t_" + String(taskID.map { $0.isLetter || $0.isNumber ? $0 : "_" })
    }

    static func clusterID(_ index: Int) -> String { "cluster_\(index)" }

    func label(_ n: Node) -> [String] {
        var timing = n.state.rawValue
        if let runtime = n.runtime { timing += " " + Self.seconds(runtime) }
        var lines = [n.name, timing]
        if let error = n.error { lines.append(String(error.prefix(60))) }
        return lines
    }

    static func seconds(_ s: Double) -> String {
        let ms = (s * 1000).rounded()
        return ms < 1000 ? "\(Int(ms)) ms" : "\((ms / 10).rounded() / 100) s"
    }

    static func color(_ state: TaskState) -> String {
        switch state {
        case .success: "#c8e6c9"
        case .failure: "#ffcdd2"
        case .revoked, .rejected: "#e0e0e0"
        case .started, .received: "#fff9c4"
        case .retry: "#ffe0b2"
        case .pending, .ignored: "#ffffff"
        default: "#fff9c4"  // a task's own state (PROGRESS, …): it is running
        }
    }

    // MARK: - DOT

    /// A Graphviz `digraph`, left to right: one rounded box per task coloured by state, a subgraph per cluster, chord
    /// edges dashed. Render it with `dot -Tsvg`.
    public var dot: String {
        var out = [
            "digraph workflow {", "  rankdir=LR;", "  label=\(Self.dotQuote("workflow \(root)"));",
            "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];",
        ]
        func emit(cluster: String?, indent: String) {
            for n in nodes where n.cluster == cluster {
                let text = label(n).joined(separator: "\n")
                out.append(
                    "\(indent)\(Self.nodeID(n.id)) [label=\(Self.dotQuote(text)), fillcolor=\"\(Self.color(n.state))\"];"
                )
            }
            for (i, c) in clusters.enumerated() where c.parent == cluster {
                out.append("\(indent)subgraph \(Self.clusterID(i)) {")
                out.append("\(indent)  label=\(Self.dotQuote(c.id));")
                emit(cluster: c.id, indent: indent + "  ")
                out.append("\(indent)}")
            }
        }
        emit(cluster: nil, indent: "  ")
        for e in edges {
            out.append(
                "  \(Self.nodeID(e.from)) -> \(Self.nodeID(e.to))" + (e.kind == "chord" ? " [style=dashed];" : ";"))
        }
        out.append("}")
        return out.joined(separator: "\n") + "\n"
    }

    static func dotQuote(_ s: String) -> String {
        "\"" + s.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"").replacing("\n", with: "\\n") + "\""
    }

    // MARK: - Mermaid

    /// A Mermaid `flowchart LR`: one node per task with a class per state, a `subgraph` per cluster, chord edges
    /// dotted.
    public var mermaid: String {
        var out = ["flowchart LR"]
        func emit(cluster: String?, indent: String) {
            for n in nodes where n.cluster == cluster {
                out.append(
                    "\(indent)\(Self.nodeID(n.id))[\"\(label(n).map(Self.mermaidText).joined(separator: "<br/>"))\"]:::\(n.state.rawValue.lowercased())"
                )
            }
            for (i, c) in clusters.enumerated() where c.parent == cluster {
                out.append("\(indent)subgraph \(Self.clusterID(i))[\"\(Self.mermaidText(c.id))\"]")
                emit(cluster: c.id, indent: indent + "  ")
                out.append("\(indent)end")
            }
        }
        emit(cluster: nil, indent: "  ")
        for e in edges {
            out.append("  \(Self.nodeID(e.from)) \(e.kind == "chord" ? "-.->" : "-->") \(Self.nodeID(e.to))")
        }
        for state in TaskState.allCases {
            out.append("  classDef \(state.rawValue.lowercased()) fill:\(Self.color(state))")
        }
        return out.joined(separator: "\n") + "\n"
    }

    static func mermaidText(_ s: String) -> String {
        s.replacing("&", with: "#amp;").replacing("\"", with: "#quot;").replacing("<", with: "#lt;").replacing(
            ">", with: "#gt;")
    }

    // MARK: - JSON

    /// The graph as data: `root`, `finished`, `nodes` (id, DOT/Mermaid node id, name, state, started, runtime, worker,
    /// error, cluster), `edges` and `clusters`.
    public var json: JSONValue {
        .object([
            "root": .string(root),
            "finished": .bool(isFinished),
            "nodes": .array(
                nodes.map { n in
                    var o: JSONObject = [
                        "id": .string(n.id), "node": .string(Self.nodeID(n.id)), "name": .string(n.name),
                        "state": .string(n.state.rawValue),
                    ]
                    o["started"] = n.started.map { .double($0) } ?? .null
                    o["runtime"] = n.runtime.map { .double($0) } ?? .null
                    o["worker"] = n.worker.map { .string($0) } ?? .null
                    o["error"] = n.error.map { .string($0) } ?? .null
                    o["cluster"] = n.cluster.map { .string($0) } ?? .null
                    return .object(o)
                }),
            "edges": .array(
                edges.map { .object(["from": .string($0.from), "to": .string($0.to), "kind": .string($0.kind)]) }),
            "clusters": .array(
                clusters.map {
                    .object([
                        "id": .string($0.id), "kind": .string($0.kind),
                        "parent": $0.parent.map { .string($0) } ?? .null,
                    ])
                }),
        ])
    }
}
