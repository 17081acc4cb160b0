import CeleriacCore
import FoundationEssentials

/// Recording a workflow so `celeriac graph ROOT_ID` can draw it later (README "Workflow graphs").
///
/// A client that applies a canvas with recording marks every task signature with ``header`` (value: the workflow's
/// root id, also set as every task's `root_id`), declares the durable queue ``queue(root:)`` bound to ``exchange``
/// with the root id as routing key, and stores the frozen canvas there first. Workers send one small record per
/// state change of a marked task to the same exchange; unmarked tasks cost nothing. The queue keeps everything
/// until it expires (`x-expires`, unused), and `graph` reads it without consuming.
public enum GraphRecording {
    /// The durable topic exchange records are published to, with the workflow's root id as routing key.
    public static let exchange = "celeriac.graph"
    /// Task header that marks a recorded task; its value is the workflow's root id.
    public static let header = "celeriac_graph"
    /// The workflow's record queue, `celeriac.graph.<root>`, bound to ``exchange`` with `root` as routing key.
    public static func queue(root: String) -> String { "celeriac.graph.\(root)" }

    /// Marks every task of an unfrozen canvas (body and header alike) and returns the root id: the first task's id,
    /// assigned here when the canvas does not name it.
    public static func mark(_ node: CanvasNode) -> (node: CanvasNode, root: String) {
        var node = node
        let root = assignFirstID(&node)
        return (mark(node, root: root), root)
    }

    static func assignFirstID(_ node: inout CanvasNode) -> String {
        switch node {
        case .task(var t):
            let id = t.options["task_id"]?.stringValue ?? TaskMessage.newID()
            t.options["task_id"] = .string(id)
            node = .task(t)
            return id
        case .chain(var steps, let o):
            guard !steps.isEmpty else { return TaskMessage.newID() }
            let id = assignFirstID(&steps[0])
            node = .chain(steps, options: o)
            return id
        case .group(var members, let o):
            guard !members.isEmpty else { return TaskMessage.newID() }
            let id = assignFirstID(&members[0])
            node = .group(members, options: o)
            return id
        case .chord(var header, var body, let o):
            let id: String
            if header.isEmpty { id = assignFirstID(&body) } else { id = assignFirstID(&header[0]) }
            node = .chord(header: header, body: body, options: o)
            return id
        }
    }

    static func mark(_ node: CanvasNode, root: String) -> CanvasNode {
        switch node {
        case .task(var t):
            var headers = t.options["headers"]?.objectValue ?? [:]
            headers[header] = .string(root)
            t.options["headers"] = .object(headers)
            t.options["root_id"] = .string(root)
            return .task(t)
        case .chain(let steps, let o): return .chain(steps.map { mark($0, root: root) }, options: o)
        case .group(let members, let o): return .group(members.map { mark($0, root: root) }, options: o)
        case .chord(let header, let body, let o):
            return .chord(header: header.map { mark($0, root: root) }, body: mark(body, root: root), options: o)
        }
    }

    /// The first record of a workflow's queue: its frozen canvas.
    public static func planRecord(root: String, frozen: CanvasNode, at date: Date = Date()) -> JSONValue {
        ["kind": "plan", "root": .string(root), "canvas": frozen.json, "ts": .double(date.timeIntervalSince1970)]
    }
}

/// One state change of a task in a recorded workflow, as workers send it.
public struct GraphRecord: Sendable, Equatable {
    /// Id of the task whose state changed.
    public var taskID: String
    /// Task name as registered, e.g. `demo.add`.
    public var name: String
    /// STARTED, SUCCESS, FAILURE, RETRY, REVOKED.
    public var state: TaskState
    /// Seconds since 1970 when this state was reached.
    public var timestamp: Double
    /// Run time in seconds (final states of tasks that ran).
    public var runtime: Double?
    /// Node name of the worker that reported it, e.g. `celeriac@host`.
    public var worker: String?
    /// `Type: message` for failures.
    public var error: String?

    /// A record from its parts; optional fields default to nil.
    public init(
        taskID: String, name: String, state: TaskState, timestamp: Double, runtime: Double? = nil,
        worker: String? = nil, error: String? = nil
    ) {
        self.taskID = taskID
        self.name = name
        self.state = state
        self.timestamp = timestamp
        self.runtime = runtime
        self.worker = worker
        self.error = error
    }

    /// The record as sent: `kind: "state"`, `task_id`, `name`, `state`, `ts`, plus `runtime`, `worker` and `error` when
    /// set.
    public var json: JSONValue {
        var o: JSONObject = [
            "kind": "state", "task_id": .string(taskID), "name": .string(name), "state": .string(state.rawValue),
            "ts": .double(timestamp),
        ]
        if let runtime { o["runtime"] = .double(runtime) }
        if let worker { o["worker"] = .string(worker) }
        if let error { o["error"] = .string(error) }
        return .object(o)
    }

    /// Reads a record written by ``json``; nil for anything else (a plan record, a malformed one).
    public init?(json: JSONValue) {
        guard json["kind"]?.stringValue == "state", let id = json["task_id"]?.stringValue,
            let name = json["name"]?.stringValue,
            let state = json["state"]?.stringValue.flatMap(TaskState.init(rawValue:))
        else { return nil }
        self.init(
            taskID: id, name: name, state: state, timestamp: json["ts"]?.doubleValue ?? 0,
            runtime: json["runtime"]?.doubleValue,
            worker: json["worker"]?.stringValue, error: json["error"]?.stringValue)
    }
}
