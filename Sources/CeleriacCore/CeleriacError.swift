/// Errors that Celeriac's client and worker APIs throw, each saying what to do next.
public enum CeleriacError: Error, CustomStringConvertible, Sendable {
    /// The task ran and failed; `failure` has the exception type, message, module and traceback.
    case taskFailed(name: String?, id: String, failure: TaskFailure)
    /// The task was revoked (or expired) before it ran.
    case taskRevoked(id: String, reason: String)
    /// No result arrived before the deadline. The task may still run; ask again with `AsyncResult.get(timeout:)`.
    case resultTimeout(id: String, after: Duration)
    /// The arguments do not fit the task's parameters.
    case invalidArguments(task: String, reason: String)
    /// The broker blocks publishers (memory or disk alarm) for longer than the publish deadline.
    case brokerBlocked(reason: String)
    /// The broker could not be reached or refused an operation; `underlying` has the transport's message.
    case broker(operation: String, underlying: String)
    /// The worker or client was misconfigured (duplicate task name, bad flag, ...).
    case configuration(String)
    /// The result was not kept (ignore_result, or the client was created without a result consumer).
    case resultNotAvailable(id: String, reason: String)

    /// One line for logs and the command line; timeouts and broker alarms also say what to check.
    public var description: String {
        switch self {
        case .taskFailed(let name, let id, let failure):
            "task \(name ?? "?")[\(id)] failed: \(failure.type): \(failure.message)"
        case .taskRevoked(let id, let reason):
            "task \(id) was revoked (\(reason)); it did not run"
        case .resultTimeout(let id, let after):
            "no result for task \(id) after \(after). Is a worker consuming its queue? (`celeriac-demo worker -Q <queue>`); the task may still run, so ask again later"
        case .invalidArguments(let task, let reason):
            "invalid arguments for \(task): \(reason)"
        case .brokerBlocked(let reason):
            "the broker blocks publishers (\(reason)); free memory/disk on RabbitMQ or consume faster"
        case .broker(let operation, let underlying):
            "\(operation): \(underlying)"
        case .configuration(let text):
            "configuration error: \(text)"
        case .resultNotAvailable(let id, let reason):
            "no result can arrive for task \(id): \(reason)"
        }
    }
}

/// A Swift error that presents itself to Python callers as a given exception class.
///
/// Errors thrown by tasks that do not conform are reported with their Swift type name and
/// `exc_module: "celeriac"`, which Python turns into a synthesized exception class.
public protocol PythonException: Error {
    /// Exception class name Python raises, e.g. `ValueError`; the result's `exc_type`.
    var pythonType: String { get }
    /// Module the class lives in, e.g. `builtins` or `myapp.errors`; the result's `exc_module`.
    var pythonModule: String { get }
    /// Arguments passed to the exception class; the result's `exc_message`.
    var pythonArguments: [JSONValue] { get }
}

/// Errors a task may throw that Python callers see as the builtin exception of the same name.
public struct BuiltinError: PythonException, CustomStringConvertible, Sendable {
    /// Python builtin exception class name, e.g. `ValueError`; sent as the result's `exc_type`.
    public let pythonType: String
    /// The exception message; Python receives it as the only exception argument (`exc_message`).
    public let message: String
    /// Always `builtins`, so Python raises the real builtin class.
    public var pythonModule: String { "builtins" }
    /// `[message]`: the arguments Python passes to the exception class.
    public var pythonArguments: [JSONValue] { [.string(message)] }
    /// `<pythonType>: <message>`, as Python prints the exception.
    public var description: String { "\(pythonType): \(message)" }

    /// An error Python sees as `builtins.<pythonType>` (e.g. `OverflowError`).
    public init(pythonType: String, message: String) {
        self.pythonType = pythonType
        self.message = message
    }

    /// Python's `ValueError`: the argument has the right type but a bad value.
    public static func valueError(_ message: String) -> BuiltinError {
        BuiltinError(pythonType: "ValueError", message: message)
    }
    /// Python's `TypeError`: the argument has the wrong type.
    public static func typeError(_ message: String) -> BuiltinError {
        BuiltinError(pythonType: "TypeError", message: message)
    }
    /// Python's `KeyError`: a looked-up key is missing.
    public static func keyError(_ message: String) -> BuiltinError {
        BuiltinError(pythonType: "KeyError", message: message)
    }
    /// Python's `RuntimeError`: a failure that fits no other class.
    public static func runtimeError(_ message: String) -> BuiltinError {
        BuiltinError(pythonType: "RuntimeError", message: message)
    }
}

extension TaskFailure {
    /// How an error thrown by a task is reported.
    public init(error: any Error) {
        if let p = error as? any PythonException {
            self.init(
                type: p.pythonType, arguments: p.pythonArguments, module: p.pythonModule,
                traceback:
                    "Traceback (most recent call last):\n  (Swift task)\n\(p.pythonType): \(p.pythonArguments.first?.stringValue ?? "")"
            )
        } else {
            let type = String(describing: Swift.type(of: error))
            let text = String(describing: error)
            self.init(
                type: type, arguments: [.string(text)], module: "celeriac",
                traceback: "Traceback (most recent call last):\n  (Swift task)\nceleriac.\(type): \(text)")
        }
    }
}
