import CeleriacCore

/// A recorded workflow as a graph: one node per task of the frozen canvas with its latest state and timing, edges
/// for "runs after" (chain steps, chord header → body), and clusters for groups and chord headers.
/// Built from the records of ``GraphRecording`` (plan first, then state records in arrival order).
public struct WorkflowGraph: Sendable, Equatable {
    /// One task of the workflow.
    public struct Node: Sendable, Equatable {
        /// The task id.
        public var id: String
        /// Task name as registered, e.g. `demo.add`.
        public var name: String
        /// Its latest state; PENDING until a record arrives, and never replaced by a non-final state once final.
        public var state: TaskState
        /// Seconds since 1970 when it started (from the STARTED record, or finish − runtime).
        public var started: Double?
        /// Seconds from start to finish.
        public var runtime: Double?
        /// Node name of the worker that last reported it, e.g. `celeriac@host`.
        public var worker: String?
        /// `Type: message` when it failed.
        public var error: String?
        /// The innermost group or chord header it belongs to.
        public var cluster: String?
    }

    /// "Runs after": `to` runs once `from` has finished (a chain's next step, or a chord's body).
    public struct Edge: Sendable, Hashable {
        /// Id of the task that runs first.
        public var from: String
        /// Id of the task that runs after it.
        public var to: String
        /// `chain` (next step) or `chord` (header member → body).
        public var kind: String
    }

    /// A group or chord header, drawn as a box around its members.
    public struct Cluster: Sendable, Equatable {
        /// `group <group_id>` or `chord <group_id>`.
        public var id: String
        /// `group` or `chord`.
        public var kind: String
        /// The cluster this one is nested in; nil at the top level.
        public var parent: String?
    }

    /// The workflow's root id: its first task's id.
    public var root: String
    /// The workflow's tasks, in canvas order.
    public var nodes: [Node] = []
    /// "Runs after" edges between the tasks.
    public var edges: [Edge] = []
    /// Groups and chord headers, in canvas order (each after the cluster it is nested in).
    public var clusters: [Cluster] = []

    /// True when every task reached SUCCESS, FAILURE or REVOKED.
    public var isFinished: Bool { !nodes.isEmpty && nodes.allSatisfy(\.state.isReady) }

    /// Builds the graph of `canvas` (frozen) and applies the state records in order: each node shows its latest state,
    /// worker, timing and error.
    public init(root: String, canvas: CanvasNode, records: [GraphRecord]) {
        self.root = root
        _ = add(canvas, cluster: nil)
        var index: [String: Int] = [:]
        for (i, n) in nodes.enumerated() { index[n.id] = i }
        for r in records {
            guard let i = index[r.taskID] else { continue }
            var n = nodes[i]
            // A final state is never replaced by a late STARTED or RETRY record.
            if n.state.isReady && !r.state.isReady { continue }
            n.state = r.state
            n.worker = r.worker ?? n.worker
            if r.state == .started || r.state == .retry {
                n.started = r.timestamp
            } else if let runtime = r.runtime {
                n.runtime = runtime
                n.started = n.started ?? (r.timestamp - runtime)
            }
            if let error = r.error { n.error = error }
            nodes[i] = n
        }
    }

    /// Reads the records of a workflow queue (plan first).
    ///
    /// - Throws: `CeleriacError.configuration(_:)` when no plan record is there.
    public init(root: String, records: [JSONValue]) throws(CeleriacError) {
        guard let plan = records.first(where: { $0["kind"]?.stringValue == "plan" }), let canvasJSON = plan["canvas"],
            let canvas = try? CanvasNode(json: canvasJSON)
        else {
            throw .configuration("workflow \(root) has no plan record: was it sent with CeleriacClient.applyRecorded?")
        }
        self.init(root: root, canvas: canvas, records: records.compactMap(GraphRecord.init(json:)))
    }

    /// Adds a canvas node; returns the ids its first and last tasks.
    private mutating func add(_ node: CanvasNode, cluster: String?) -> (entries: [String], exits: [String]) {
        switch node {
        case .task(let t):
            let id = t.options["task_id"]?.stringValue ?? "?"
            nodes.append(Node(id: id, name: t.name, state: .pending, cluster: cluster))
            return ([id], [id])
        case .chain(let steps, _):
            var entries: [String] = []
            var previous: [String] = []
            for (i, step) in steps.enumerated() {
                let (e, x) = add(step, cluster: cluster)
                if i == 0 { entries = e }
                for from in previous { for to in e { edges.append(Edge(from: from, to: to, kind: "chain")) } }
                previous = x
            }
            return (entries, previous)
        case .group(let members, let options):
            let id = "group " + (options["group_id"]?.stringValue ?? "\(clusters.count)")
            clusters.append(Cluster(id: id, kind: "group", parent: cluster))
            var entries: [String] = [], exits: [String] = []
            for m in members {
                let (e, x) = add(m, cluster: id)
                entries += e
                exits += x
            }
            return (entries, exits)
        case .chord(let header, let body, let options):
            let id = "chord " + (options["group_id"]?.stringValue ?? "\(clusters.count)")
            clusters.append(Cluster(id: id, kind: "chord", parent: cluster))
            var entries: [String] = [], exits: [String] = []
            for m in header {
                let (e, x) = add(m, cluster: id)
                entries += e
                exits += x
            }
            let (bodyEntries, bodyExits) = add(body, cluster: cluster)
            for from in exits { for to in bodyEntries { edges.append(Edge(from: from, to: to, kind: "chord")) } }
            return (header.isEmpty ? bodyEntries : entries, bodyExits)
        }
    }
}
