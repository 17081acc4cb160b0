import CeleriacCore
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// Where a worker runs task bodies: in its own process (``InProcessExecutor``, the async pool) or in supervised
/// child processes (`CeleriacPool.ProcessPool`, `--pool process`).
///
/// `run` returns the task's JSON result or throws what the worker maps to an outcome: the task's own error
/// (in-process), `RetryRequest`, `CancellationError` (the run was cancelled: soft time limit, revoke with
/// terminate, cold shutdown), ``ExecutionFailure`` (a failure already reported as a `TaskFailure`, e.g. by a
/// child process or a hard time limit) or ``WorkerLost`` (the process running the task died).
public protocol TaskExecutor: Sendable {
    /// Prepares the executor (starts child processes). Called once by `Worker.run()` before consuming.
    func start(logger: Logger) async throws(CeleriacError)
    /// Runs one task. `limits` are the resolved time limits in seconds (message, task option, worker default);
    /// an executor that does not ``enforcesTimeLimits`` ignores them (the worker applies a soft limit itself).
    func run(_ message: TaskMessage, task: RegisteredTask, context: TaskContext, limits: TaskMessage.TimeLimit)
        async throws -> JSONValue
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
    /// Default for executors with a fixed number of runners: changes nothing and returns `concurrency`, so the
    /// worker's slots alone follow `pool_grow` / `pool_shrink`.
    public func resize(by delta: Int, to concurrency: Int) -> Int { concurrency }
}

/// Runs task bodies in the worker's own process on Swift's cooperative pool (`--pool async`).
public struct InProcessExecutor: TaskExecutor {
    /// The async pool has no settings: its concurrency is the worker's slots (`-c`).
    public init() {}
    /// Nothing to prepare: there are no child processes.
    public func start(logger: Logger) async throws(CeleriacError) {}
    /// Calls the registered task's body directly on the cooperative pool. `limits` are ignored here; the worker
    /// cancels the run at its soft limit, and the body must observe cancellation for that to stop it.
    public func run(_ message: TaskMessage, task: RegisteredTask, context: TaskContext, limits: TaskMessage.TimeLimit)
        async throws -> JSONValue
    {
        context.reportStarted(pid: getpid())
        return try await task.run(message, context)
    }
    /// Nothing to release: by the time the worker calls it, every task body has returned.
    public func stop() async {}
    /// Nothing to kill: a cold stop cancels the worker's tasks, and with them the bodies running here.
    public func abort() {}
    /// Always false: a task body cannot be killed in-process, so the worker cancels it at its soft limit.
    public var enforcesTimeLimits: Bool { false }
    /// Always 0: a delivery is taken only when one of the worker's slots is free.
    public var extraSlots: Int { 0 }
    /// `{"implementation": "celeriac.async"}`, in place of Celery's `celery.concurrency.prefork:TaskPool`.
    public var statistics: JSONObject { ["implementation": "celeriac.async"] }
}

/// A task failure that is already in its reported form (it happened in another process, or the executor
/// decided it, like `TimeLimitExceeded`). The worker reports it as is.
public struct ExecutionFailure: Error, Sendable, CustomStringConvertible {
    /// The exception as it goes into the FAILURE result (type, message, traceback), reported unchanged.
    public var failure: TaskFailure
    /// How the run ended: `.failed`, or `.timedOut` for a hard time limit.
    public var outcome: TaskFinishedOutcome
    /// Wraps a failure in its reported form; `outcome` is `.failed` unless a hard time limit killed the task.
    public init(_ failure: TaskFailure, outcome: TaskFinishedOutcome = .failed) {
        self.failure = failure
        self.outcome = outcome
    }
    /// The wrapped `TaskFailure`'s description, so logs show the exception rather than this wrapper.
    public var description: String { failure.description }
}

/// The process running the task died (trap, SIGKILL, OOM). `failure` is a `WorkerLostError`.
public struct WorkerLost: Error, Sendable, CustomStringConvertible {
    /// What the worker does with the message whose process died: Celery's `task_reject_on_worker_lost`,
    /// bounded so that a message that kills every process it runs in ends up dead-lettered instead of looping.
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
    /// The `WorkerLostError` reported in the FAILURE result (none is published yet for `.requeue`).
    public var failure: TaskFailure
    /// Whether the message is acked with a FAILURE, requeued for another try, or dead-lettered.
    public var disposition: Disposition
    /// Describes a lost run; the executor picks `disposition` from the task's `rejectOnWorkerLost` option and the
    /// message's ``countHeader``.
    public init(failure: TaskFailure, disposition: Disposition) {
        self.failure = failure
        self.disposition = disposition
    }
    /// The `WorkerLostError`'s description (which process died and how).
    public var description: String { failure.description }
}
