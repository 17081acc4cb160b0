/// A task's state, named as Celery names it: one of Celery's own (the constants below) or any name a task reports
/// with `TaskContext.updateState(_:meta:)`, `PROGRESS` by convention. A state with another name is never ready:
/// a custom state is always followed by the task's final state.
public struct TaskState: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    /// The name on the wire (the result's `status`), e.g. `SUCCESS` or `PROGRESS`.
    public let rawValue: String

    /// The state with this name.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// The state with this name, e.g. `TaskState("UPLOADING")`.
    public init(_ name: String) { self.rawValue = name }

    /// No state known yet: not received, or the result is not kept. Never sent by a worker.
    public static let pending = TaskState("PENDING")
    /// A worker has received the task (Celery uses it in events only).
    public static let received = TaskState("RECEIVED")
    /// The task began running (sent when `track_started` is on); its meta is `{"pid", "hostname"}`.
    public static let started = TaskState("STARTED")
    /// The task returned; the result is its return value.
    public static let success = TaskState("SUCCESS")
    /// The task threw, or retries ran out; the result is the exception.
    public static let failure = TaskState("FAILURE")
    /// The task will run again; the result is the cause.
    public static let retry = TaskState("RETRY")
    /// The task was revoked, or expired, before or while it ran.
    public static let revoked = TaskState("REVOKED")
    /// The task was rejected (Celery's `Reject`): dropped or dead-lettered, not run.
    public static let rejected = TaskState("REJECTED")
    /// The task chose not to report a state (Celery's `Ignore`).
    public static let ignored = TaskState("IGNORED")
    /// Not one of Celery's own, but the name its documentation and most tasks use for progress; its meta is
    /// `{"current": i, "total": n}` by convention (``TaskContext/reportProgress(current:total:)``).
    public static let progress = TaskState("PROGRESS")

    /// Celery's own states, in the order above (without ``progress``).
    public static let allCases: [TaskState] = [
        .pending, .received, .started, .success, .failure, .retry, .revoked, .rejected, .ignored,
    ]

    /// SUCCESS, FAILURE and REVOKED: no further state follows.
    public var isReady: Bool { self == .success || self == .failure || self == .revoked }

    /// True for a state Celery itself defines; false for a task's own (`PROGRESS`, `UPLOADING`, …).
    public var isBuiltIn: Bool { Self.allCases.contains(self) }

    /// The name, e.g. `SUCCESS`.
    public var description: String { rawValue }
}

/// A task failure as it travels in a result: Celery's `exc_type`, `exc_message`, `exc_module` and traceback.
public struct TaskFailure: Sendable, Equatable, CustomStringConvertible {
    /// The exception class name, e.g. `ValueError` or `NotRegistered`.
    public var type: String
    /// The exception's arguments (Python's `exc.args`).
    public var arguments: [JSONValue]
    /// `builtins` for Python builtin exceptions, `celery.exceptions` for Celery's, `celeriac` for Swift errors.
    public var module: String
    /// Python-style traceback text, when there is one; the result's `traceback`.
    public var traceback: String?

    /// A failure with every part given; ``init(error:)`` builds one from a thrown Swift error.
    public init(type: String, arguments: [JSONValue], module: String, traceback: String? = nil) {
        self.type = type
        self.arguments = arguments
        self.module = module
        self.traceback = traceback
    }

    /// The first argument as text (the message of most exceptions).
    public var message: String {
        switch arguments.first {
        case .string(let s): s
        case .some(let v): v.jsonString
        case nil: ""
        }
    }

    /// Python's `repr` style, arguments as JSON: `ValueError("bad value")`.
    public var description: String { "\(type)(\(arguments.map(\.jsonString).joined(separator: ", ")))" }

    /// The exception dict of a FAILURE/RETRY/REVOKED result body.
    public var json: JSONValue {
        .object(["exc_type": .string(type), "exc_message": .array(arguments), "exc_module": .string(module)])
    }

    /// Reads the exception dict of a result body; a plain string `exc_message` becomes the single argument.
    public init?(json: JSONValue, traceback: String?) {
        guard let o = json.objectValue, let type = o["exc_type"]?.stringValue else { return nil }
        self.type = type
        switch o["exc_message"] {
        case .array(let a): arguments = a
        case .some(.null), nil: arguments = []
        case .some(let v): arguments = [v]
        }
        module = o["exc_module"]?.stringValue ?? "builtins"
        self.traceback = traceback
    }
}
