import FoundationEssentials

/// A task's state report in Celery's `rpc://` format, published to the caller's reply queue with the task id as
/// correlation id.
public struct ResultMessage: Sendable, Equatable {
    /// Id of the task this reports on; the body's `task_id` and the message's correlation id.
    public var taskID: String
    /// The state reached; the body's `status`.
    public var status: TaskState
    /// The return value for SUCCESS; the exception dict for FAILURE/RETRY/REVOKED; `{pid, hostname}` for STARTED.
    public var result: JSONValue
    /// Python-style traceback text for FAILURE/RETRY; nil otherwise.
    public var traceback: String?
    /// Tasks this one started (callbacks, chain links), each as Celery's result tuple `[[id, null], null]`.
    public var children: [JSONValue]
    /// When the task reached a ready state (UTC, ISO 8601 on the wire as `date_done`); nil for RETRY and non-ready
    /// states.
    public var dateDone: Date?
    /// The group this task ran in (`group_id`), when it was part of one.
    public var groupID: String?
    /// The task that called this one (`parent_id`), when there is one.
    public var parentID: String?

    /// A report with every field given; ``success(_:_:children:for:)`` and ``failure(_:_:status:for:)`` fill the usual
    /// ones.
    public init(
        taskID: String, status: TaskState, result: JSONValue, traceback: String? = nil, children: [JSONValue] = [],
        dateDone: Date? = nil, groupID: String? = nil, parentID: String? = nil
    ) {
        self.taskID = taskID
        self.status = status
        self.result = result
        self.traceback = traceback
        self.children = children
        self.dateDone = dateDone
        self.groupID = groupID
        self.parentID = parentID
    }

    /// A SUCCESS report for task `id` returning `value`, done now. `message` (the task's own) supplies the group and
    /// parent ids.
    public static func success(
        _ id: String, _ value: JSONValue, children: [JSONValue] = [], for message: TaskMessage? = nil
    ) -> ResultMessage {
        ResultMessage(
            taskID: id, status: .success, result: value, children: children, dateDone: Date(),
            groupID: message?.groupID, parentID: message?.parentID)
    }

    /// A report of `failure` with `status` FAILURE (the default), RETRY or REVOKED, carrying its traceback.
    /// `date_done` is now, except for RETRY, which is not a final state. `message` supplies the group and parent ids.
    public static func failure(
        _ id: String, _ failure: TaskFailure, status: TaskState = .failure, for message: TaskMessage? = nil
    ) -> ResultMessage {
        ResultMessage(
            taskID: id, status: status, result: failure.json, traceback: failure.traceback,
            dateDone: status == .retry ? nil : Date(), groupID: message?.groupID, parentID: message?.parentID)
    }

    /// An intermediate state of a running task (`STARTED`, `PROGRESS`, a task's own name) with its meta, as Celery's
    /// `update_state` sends it: no traceback, no children, no `date_done`. `message` supplies the group and parent ids.
    public static func state(_ id: String, _ state: TaskState, meta: JSONValue, for message: TaskMessage? = nil)
        -> ResultMessage
    {
        ResultMessage(taskID: id, status: state, result: meta, groupID: message?.groupID, parentID: message?.parentID)
    }

    /// The failure carried by a FAILURE/RETRY/REVOKED result.
    public var failure: TaskFailure? { TaskFailure(json: result, traceback: traceback) }

    /// The result body as Celery writes it: `status`, `result`, `traceback`, `children`, `date_done`, `task_id`, plus
    /// `group_id`/`parent_id` when set.
    public var json: JSONValue {
        var o: JSONObject = [
            "status": .string(status.rawValue), "result": result,
            "traceback": traceback.map { .string($0) } ?? .null, "children": .array(children),
            "date_done": dateDone.map { .string(ISOTime.format($0)) } ?? .null, "task_id": .string(taskID),
        ]
        if let groupID { o["group_id"] = .string(groupID) }
        if let parentID { o["parent_id"] = .string(parentID) }
        return .object(o)
    }

    /// Reads a result body. `task_id` is required (Python requires it too); `correlationID` fills it in otherwise.
    public init?(json: JSONValue, correlationID: String? = nil) {
        guard let o = json.objectValue, let s = o["status"]?.stringValue,
            let id = o["task_id"]?.stringValue ?? correlationID
        else { return nil }
        self.taskID = id
        self.status = TaskState(s)
        self.result = o["result"] ?? .null
        self.traceback = o["traceback"]?.stringValue
        self.children = o["children"]?.arrayValue ?? []
        self.dateDone = o["date_done"]?.stringValue.flatMap(ISOTime.parse)
        self.groupID = o["group_id"]?.stringValue
        self.parentID = o["parent_id"]?.stringValue
    }
}
