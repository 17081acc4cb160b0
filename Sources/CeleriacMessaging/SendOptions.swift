import CeleriacCore
import FoundationEssentials

/// Options of one send, with Celery's `apply_async` names.
public struct SendOptions: Sendable {
    public var queue: String?
    public var routingKey: String?
    public var exchange: String?
    /// Seconds from now before the task may run.
    public var countdown: Double?
    public var eta: Date?
    /// Seconds from now, or an absolute date, after which the task is not run (REVOKED "expired").
    public var expiresIn: Double?
    public var expires: Date?
    /// 0...9 (the queue needs `x-max-priority`).
    public var priority: UInt8?
    public var taskID: String?
    public var ignoreResult: Bool?
    public var headers: JSONObject
    public var softTimeLimit: Double?
    public var hardTimeLimit: Double?
    /// Signatures to run on success (`link`) and on failure (`link_error`), as Celery signature JSON.
    public var link: [JSONValue]?
    public var linkError: [JSONValue]?
    public var shadow: String?
    public var groupID: String?
    public var groupIndex: Int?
    public var rootID: String?
    public var parentID: String?
    public var replyTo: String?
    /// The rest of a chain, next step last (set by the canvas).
    public var chain: [JSONValue]?
    public var chord: JSONValue?

    public init(queue: String? = nil, routingKey: String? = nil, exchange: String? = nil, countdown: Double? = nil,
                eta: Date? = nil, expiresIn: Double? = nil, expires: Date? = nil, priority: UInt8? = nil,
                taskID: String? = nil, ignoreResult: Bool? = nil, headers: JSONObject = [:], softTimeLimit: Double? = nil,
                hardTimeLimit: Double? = nil, link: [JSONValue]? = nil, linkError: [JSONValue]? = nil, shadow: String? = nil) {
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
    public let id: String
    public let name: String?
    let client: CeleriacClient
    let ignored: Bool

    /// Waits for the final result.
    ///
    /// - Throws: ``CeleriacError/resultTimeout(id:after:)`` (typed, naming the id) when nothing arrives in time,
    ///   ``CeleriacError/taskFailed(name:id:failure:)`` with the exception type, message and traceback.
    public func get(timeout: Duration = .seconds(30)) async throws(CeleriacError) -> JSONValue {
        if ignored { throw .resultNotAvailable(id: id, reason: "the task was sent with ignore_result") }
        return try await client.result(of: id, name: name, timeout: timeout)
    }

    /// PENDING until a state arrives.
    public func state() async -> TaskState { await client.state(of: id)?.status ?? .pending }
    public func ready() async -> Bool { await state().isReady }
    public func successful() async -> Bool { await state() == .success }
    public func failed() async -> Bool { await state() == .failure }
    public func traceback() async -> String? { await client.state(of: id)?.traceback }
}

/// An ``AsyncResult`` whose value decodes to the task's output type.
public struct TaskHandle<Output: Codable & Sendable>: Sendable {
    public let result: AsyncResult
    public var id: String { result.id }
    public func get(timeout: Duration = .seconds(30)) async throws -> Output {
        try JSONBridge.decode(Output.self, from: try await result.get(timeout: timeout))
    }
}
