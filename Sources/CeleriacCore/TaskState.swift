/// A task's state, named as Celery names it.
public enum TaskState: String, Sendable, Codable, CaseIterable {
    case pending = "PENDING"
    case received = "RECEIVED"
    case started = "STARTED"
    case success = "SUCCESS"
    case failure = "FAILURE"
    case retry = "RETRY"
    case revoked = "REVOKED"
    case rejected = "REJECTED"
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
    public var traceback: String?

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
