/// A task's state, named as Celery names it.
public enum TaskState: String, Sendable, Codable, CaseIterable {
    /// No state known yet: not received, or the result is not kept. Never sent by a worker.
    case pending = "PENDING"
    /// A worker has received the task (Celery uses it in events only).
    case received = "RECEIVED"
    /// The task began running (sent when `track_started` is on).
    case started = "STARTED"
    /// The task returned; the result is its return value.
    case success = "SUCCESS"
    /// The task threw, or retries ran out; the result is the exception.
    case failure = "FAILURE"
    /// The task will run again; the result is the cause.
    case retry = "RETRY"
    /// The task was revoked, or expired, before or while it ran.
    case revoked = "REVOKED"
    /// The task was rejected (Celery's `Reject`): dropped or dead-lettered, not run.
    case rejected = "REJECTED"
    /// The task chose not to report a state (Celery's `Ignore`).
    case ignored = "IGNORED"

    /// SUCCESS, FAILURE and REVOKED: no further state follows.
    public var isReady: Bool { self == .success || self == .failure || self == .revoked }
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
