import Logging
import FoundationEssentials

/// What a running task knows about itself, and its way to ask for a retry.
public struct TaskContext: Sendable {
    /// The message being executed (id, name, retries, root/parent ids, eta, headers).
    public let message: TaskMessage
    /// A logger with `task.id` and `task.name` metadata.
    public let logger: Logger
    /// The worker's node name, e.g. `celeriac@host`.
    public let hostname: String
    /// The task's registered options (max retries, default retry delay, ...).
    public let options: TaskOptions

    public init(message: TaskMessage, logger: Logger, hostname: String, options: TaskOptions) {
        self.message = message
        self.logger = logger
        self.hostname = hostname
        self.options = options
    }

    public var id: String { message.id }
    public var name: String { message.name }
    /// How many times this task was retried before this run.
    public var retries: Int { message.retries }
    public var rootID: String? { message.rootID }
    public var parentID: String? { message.parentID }
    public var groupID: String? { message.groupID }

    /// The error to throw to retry this task: `throw context.retry(countdown: .seconds(5))`.
    ///
    /// Like Celery's `self.retry`, it republishes the message with `retries + 1` and an `eta`, and sends a RETRY
    /// result. When `retries` already reached `maxRetries` (default: the task's ``TaskOptions/maxRetries``) the
    /// task fails instead, with `cause` if given, else `MaxRetriesExceededError`.
    public func retry(countdown: Duration? = nil, maxRetries: Int? = nil, cause: (any Error)? = nil) -> RetryRequest {
        RetryRequest(countdown: countdown.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 },
                     maxRetries: maxRetries, cause: cause.map(TaskFailure.init(error:)))
    }
}

/// Thrown by a task (through ``TaskContext/retry(countdown:maxRetries:cause:)``) to be retried.
public struct RetryRequest: Error, Sendable, CustomStringConvertible {
    public var countdown: Double?
    public var maxRetries: Int?
    public var cause: TaskFailure?
    public var description: String {
        "Retry in \(countdown.map { "\($0)s" } ?? "the default delay")" + (cause.map { ": \($0)" } ?? "")
    }
}

/// Thrown into a task whose soft time limit passed (its Swift Task is cancelled too). A task may catch it to
/// clean up; if it lets it escape, the task fails with `SoftTimeLimitExceeded`.
public struct SoftTimeLimitExceeded: PythonException, CustomStringConvertible, Sendable {
    public let limit: Double
    public init(limit: Double) { self.limit = limit }
    public var pythonType: String { "SoftTimeLimitExceeded" }
    public var pythonModule: String { "billiard.exceptions" }
    public var pythonArguments: [JSONValue] { [] }
    public var description: String { "soft time limit (\(limit)s) exceeded" }
}
