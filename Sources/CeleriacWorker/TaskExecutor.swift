import CeleriacCore
import Logging

/// Where a worker runs task bodies: in its own process (``InProcessExecutor``, the async pool) or in supervised
/// child processes (`CeleriacPool.ProcessPool`, `--pool process`).
///
/// `run` returns the task's JSON result or throws what the worker maps to an outcome: the task's own error
/// (in-process), ``RetryRequest``, `CancellationError` (the run was cancelled: soft time limit, revoke with
/// terminate, cold shutdown), ``ExecutionFailure`` (a failure already reported as a ``TaskFailure``, e.g. by a
/// child process or a hard time limit) or ``WorkerLost`` (the process running the task died).
public protocol TaskExecutor: Sendable {
    /// Prepares the executor (starts child processes). Called once by `Worker.run()` before consuming.
    func start(logger: Logger) async throws(CeleriacError)
    /// Runs one task. `limits` are the resolved time limits in seconds (message, task option, worker default);
    /// an executor that does not ``enforcesTimeLimits`` ignores them (the worker applies a soft limit itself).
    func run(_ message: TaskMessage, task: RegisteredTask, context: TaskContext, limits: TaskMessage.TimeLimit) async throws -> JSONValue
    /// Warm stop after the worker drained: running work has finished; release resources (stop children).
    func stop() async
    /// Cold stop: kill everything now. Synchronous, safe from a cancellation handler.
    func abort()
    /// True when the executor enforces the soft and hard time limits itself, from when the task really starts.
    /// Otherwise the worker cancels the task at its soft limit (or at its hard limit when it has no soft one).
    var enforcesTimeLimits: Bool { get }
    /// Tasks the worker may hand over beyond its concurrency; they wait inside the executor for a free runner
    /// (a process pool overlaps the worker's broker work with the children's task work this way).
    var extraSlots: Int { get }
    /// The `pool` part of the remote-control `stats` reply.
    var statistics: JSONObject { get }
    /// Grows (delta > 0) or shrinks the executor's runners (`pool_grow` / `pool_shrink`); returns the new count.
    func resize(by delta: Int, to concurrency: Int) -> Int
}

extension TaskExecutor {
    public func resize(by delta: Int, to concurrency: Int) -> Int { concurrency }
}

/// Runs task bodies in the worker's own process on Swift's cooperative pool (`--pool async`).
public struct InProcessExecutor: TaskExecutor {
    public init() {}
    public func start(logger: Logger) async throws(CeleriacError) {}
    public func run(_ message: TaskMessage, task: RegisteredTask, context: TaskContext, limits: TaskMessage.TimeLimit) async throws -> JSONValue {
        try await task.run(message, context)
    }
    public func stop() async {}
    public func abort() {}
    public var enforcesTimeLimits: Bool { false }
    public var extraSlots: Int { 0 }
    public var statistics: JSONObject { ["implementation": "celeriac.async"] }
}

/// A task failure that is already in its reported form (it happened in another process, or the executor
/// decided it, like `TimeLimitExceeded`). The worker reports it as is.
public struct ExecutionFailure: Error, Sendable, CustomStringConvertible {
    public var failure: TaskFailure
    /// How the run ended: `.failed`, or `.timedOut` for a hard time limit.
    public var outcome: TaskFinishedOutcome
    public init(_ failure: TaskFailure, outcome: TaskFinishedOutcome = .failed) {
        self.failure = failure
        self.outcome = outcome
    }
    public var description: String { failure.description }
}

/// The process running the task died (trap, SIGKILL, OOM). `failure` is a `WorkerLostError`.
public struct WorkerLost: Error, Sendable, CustomStringConvertible {
    public enum Disposition: Sendable, Equatable {
        /// Report the FAILURE and ack (the default, `reject_on_worker_lost` off).
        case ack
        /// Publish a copy carrying `lostCount` in ``WorkerLost/countHeader`` and ack the original; no result yet.
        case requeue(lostCount: Int)
        /// Too many worker-lost deliveries: FAILURE result and the message goes to the dead-letter queue.
        case deadLetter
    }
    /// Header on a requeued copy: how many times a worker process died running this message.
    public static let countHeader = "x-celeriac-worker-lost"
    public var failure: TaskFailure
    public var disposition: Disposition
    public init(failure: TaskFailure, disposition: Disposition) {
        self.failure = failure
        self.disposition = disposition
    }
    public var description: String { failure.description }
}
