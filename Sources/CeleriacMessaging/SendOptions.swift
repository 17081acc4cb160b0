import CeleriacCore
import FoundationEssentials

/// Options of one send, with Celery's `apply_async` names.
public struct SendOptions: Sendable {
    /// Queue to send to (declared on first use); nil uses ``CeleriacClient/Configuration/defaultQueue``.
    public var queue: String?
    /// Routing key to publish with; nil uses the queue name.
    public var routingKey: String?
    /// Exchange to publish to; nil uses the default exchange (`""`), which routes by queue name.
    public var exchange: String?
    /// Seconds from now before the task may run.
    public var countdown: Double?
    /// The earliest time the task may run (Celery's `eta`); overrides ``countdown``. A message due a second or more
    /// later waits in the broker's delay queues.
    public var eta: Date?
    /// Seconds from now, or an absolute date, after which the task is not run (REVOKED "expired").
    public var expiresIn: Double?
    /// The absolute form of ``expiresIn``; overrides it.
    public var expires: Date?
    /// 0...9 (the queue needs `x-max-priority`).
    public var priority: UInt8?
    /// The task id; nil generates a new UUID.
    public var taskID: String?
    /// Asks the worker not to publish a result (Celery's `ignore_result`). nil means false, except on a client that
    /// does not receive results, where it means true.
    public var ignoreResult: Bool?
    /// Extra message headers. Names of protocol v2 headers are ignored: those are set from the other options.
    public var headers: JSONObject
    /// Soft time limit in seconds (Celery's `soft_time_limit`); nil leaves the task's own or the worker's default.
    public var softTimeLimit: Double?
    /// Hard time limit in seconds (Celery's `time_limit`), after which the worker stops the task; nil leaves the task's
    /// own or the worker's default.
    public var hardTimeLimit: Double?
    /// Signatures to run on success (`link`) and on failure (`link_error`), as Celery signature JSON.
    public var link: [JSONValue]?
    /// Signatures to run when the task fails (Celery's `link_error`); see ``link``.
    public var linkError: [JSONValue]?
    /// Another name for the task in logs, events and monitoring (Celery's `shadow`); workers still run it by its name.
    public var shadow: String?
    /// The group this task belongs to (Celery's `group` header); set by the canvas.
    public var groupID: String?
    /// The task's position in its group (`group_index`); set by the canvas.
    public var groupIndex: Int?
    /// The id of the workflow's first task (`root_id`); nil makes the task its own root.
    public var rootID: String?
    /// The id of the task that sent this one (`parent_id`); nil for a send from outside a task.
    public var parentID: String?
    /// Queue the result goes to (`reply_to`); nil uses this client's reply queue, or none when it receives no results.
    public var replyTo: String?
    /// The rest of a chain, next step last (set by the canvas).
    public var chain: [JSONValue]?
    /// Celery's embedded `chord` (the body to run once a chord header completes), as signature JSON; set by the canvas.
    public var chord: JSONValue?

    /// Options for one send. Everything is unset by default, so the task's and the client's defaults apply; the canvas
    /// fields (``chain``, ``chord``, ``groupID``, ...) are set as properties.
    public init(
        queue: String? = nil, routingKey: String? = nil, exchange: String? = nil, countdown: Double? = nil,
        eta: Date? = nil, expiresIn: Double? = nil, expires: Date? = nil, priority: UInt8? = nil,
        taskID: String? = nil, ignoreResult: Bool? = nil, headers: JSONObject = [:], softTimeLimit: Double? = nil,
        hardTimeLimit: Double? = nil, link: [JSONValue]? = nil, linkError: [JSONValue]? = nil, shadow: String? = nil
    ) {
        self.queue = queue
        self.routingKey = routingKey
        self.exchange = exchange
        self.countdown = countdown
        self.eta = eta
        self.expiresIn = expiresIn
        self.expires = expires
        self.priority = priority
        self.taskID = taskID
        self.ignoreResult = ignoreResult
        self.headers = headers
        self.softTimeLimit = softTimeLimit
        self.hardTimeLimit = hardTimeLimit
        self.link = link
        self.linkError = linkError
        self.shadow = shadow
    }

    func apply(to m: inout TaskMessage, now: Date) {
        if let countdown { m.eta = now.addingTimeInterval(countdown) }
        if let eta { m.eta = eta }
        if let expiresIn { m.expires = now.addingTimeInterval(expiresIn) }
        if let expires { m.expires = expires }
        if let priority { m.priority = min(priority, 255) }
        m.ignoreResult = ignoreResult ?? false
        for (k, v) in headers { m.extraHeaders[k] = v }
        m.timeLimit = .init(hard: hardTimeLimit, soft: softTimeLimit)
        m.embed.callbacks = link
        m.embed.errbacks = linkError
        m.embed.chain = chain
        m.embed.chord = chord
        m.shadow = shadow
        m.groupID = groupID
        m.groupIndex = groupIndex
        if let rootID { m.rootID = rootID }
        m.parentID = parentID
        if let replyTo { m.replyTo = replyTo }
    }
}

/// The result of a sent task: its id, and a way to wait for or inspect its outcome.
public struct AsyncResult: Sendable {
    /// The task id (Celery's `task_id`).
    public let id: String
    /// The task name, for error messages; nil when not known.
    public let name: String?
    let client: CeleriacClient
    let ignored: Bool

    /// Waits for the final result.
    ///
    /// - Throws: `CeleriacError.resultTimeout(id:after:)` (typed, naming the id) when nothing arrives in time,
    ///   `CeleriacError.taskFailed(name:id:failure:)` with the exception type, message and traceback.
    public func get(timeout: Duration = .seconds(30)) async throws(CeleriacError) -> JSONValue {
        if ignored { throw .resultNotAvailable(id: id, reason: "the task was sent with ignore_result") }
        return try await client.result(of: id, name: name, timeout: timeout)
    }

    /// PENDING until a state arrives.
    public func state() async -> TaskState { await client.state(of: id)?.status ?? .pending }
    /// True once the task reached a final state: SUCCESS, FAILURE or REVOKED.
    public func ready() async -> Bool { await state().isReady }
    /// True when the latest known state is SUCCESS.
    public func successful() async -> Bool { await state() == .success }
    /// True when the latest known state is FAILURE.
    public func failed() async -> Bool { await state() == .failure }
    /// The traceback of the latest known state, if it carries one (a failure); nil before any state arrived.
    public func traceback() async -> String? { await client.state(of: id)?.traceback }
    /// The latest state's meta (`PROGRESS`'s `{"current", "total"}`, `STARTED`'s `{"pid", "hostname"}`), or the
    /// result or exception once the task is final; nil before any state arrived. Celery's `AsyncResult.info`.
    public func info() async -> JSONValue? { await client.state(of: id)?.result }

    /// Every state of the task as it arrives, as Celery's `get(on_message=…)` sees them: `STARTED`, `PROGRESS` or the
    /// task's own states, `RETRY`, and last the final result (SUCCESS, FAILURE or REVOKED), after which the sequence
    /// ends. It starts with the latest state already known. A task that never finishes leaves it open: bound the
    /// wait, as ``get(timeout:)`` does. Empty (ended at once) for a task sent with `ignore_result`.
    ///
    /// ```swift
    /// for await update in await handle.result.updates() where update.status == .progress {
    ///     print(update.result["current"] ?? 0, "of", update.result["total"] ?? 0)
    /// }
    /// ```
    public func updates() async -> AsyncStream<ResultMessage> {
        if ignored { return AsyncStream { $0.finish() } }
        return await client.updates(of: id)
    }
}

/// An ``AsyncResult`` whose value decodes to the task's output type.
public struct TaskHandle<Output: Codable & Sendable>: Sendable {
    /// The untyped result (state, traceback, JSON value).
    public let result: AsyncResult
    /// The task id.
    public var id: String { result.id }
    /// Waits for the result like ``AsyncResult/get(timeout:)`` and decodes it as `Output`.
    ///
    /// - Throws: what ``AsyncResult/get(timeout:)`` throws, or a decoding error when the value does not fit `Output`.
    public func get(timeout: Duration = .seconds(30)) async throws -> Output {
        try JSONBridge.decode(Output.self, from: try await result.get(timeout: timeout))
    }
    /// The task's states as they arrive, ending with its final result: ``AsyncResult/updates()``.
    public func updates() async -> AsyncStream<ResultMessage> { await result.updates() }
    /// The latest known state: ``AsyncResult/state()``.
    public func state() async -> TaskState { await result.state() }
}
