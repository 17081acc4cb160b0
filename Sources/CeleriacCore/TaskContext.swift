import FoundationEssentials
import Logging
import Synchronization

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

    /// Why this run is being stopped; set by whoever enforces the soft time limit, just before it cancels the task.
    public let stopReason: StopReason
    /// The worker's clock: ``sleep(for:)`` waits on it (a manual clock in tests).
    public let clock: any CeleriacClock
    /// Where `updateState(_:meta:)` goes: the worker's reporter for this run. Nil outside a worker, and when
    /// nobody waits for the result (no reply queue, or the result is ignored): then states go nowhere.
    public let states: TaskStateSink?
    /// True when the worker reports `STARTED` just before the body runs: the task's ``TaskOptions/trackStarted``
    /// or the worker's `--track-started` (Celery's `track_started` and `task_track_started`).
    public let trackStarted: Bool

    /// The context the worker builds for one run of `message`. `stopReason` is shared with whoever enforces the soft
    /// time limit; `clock` is what ``sleep(for:)`` waits on.
    public init(
        message: TaskMessage, logger: Logger, hostname: String, options: TaskOptions,
        stopReason: StopReason = StopReason(),
        clock: any CeleriacClock = SystemClock(), states: TaskStateSink? = nil, trackStarted: Bool = false
    ) {
        self.clock = clock
        self.states = states
        self.trackStarted = trackStarted
        self.message = message
        self.logger = logger
        self.hostname = hostname
        self.options = options
        self.stopReason = stopReason
    }

    /// The soft time limit's error once that limit has passed (the task's Swift `Task` is cancelled at the same
    /// moment), else nil. A task that caught a `CancellationError` can look here to tell a soft limit from a
    /// terminate or a cold shutdown.
    public var softTimeLimitExceeded: SoftTimeLimitExceeded? { stopReason.softTimeLimitExceeded }

    /// Reports an intermediate state to whoever waits for this task's result, as Celery's `update_state` does:
    /// `context.updateState(.progress, meta: ["current": 40, "total": 100])`, or any state name of your own. A
    /// Python caller sees it as `AsyncResult.state` and `.info`; a Swift caller in `AsyncResult.updates()`. It
    /// returns at once (the message is sent in the background, never after the task's final result). Updates come
    /// out at most every 100 ms per task: one that follows sooner waits, and is replaced by any later one meanwhile.
    public func updateState(_ state: TaskState, meta: JSONValue = .null) {
        states?.report(state, meta)
    }

    /// Reports `STARTED` with `{"pid": pid, "hostname": …}` when ``trackStarted`` is on (Celery's `track_started`).
    /// Executors call it just before the body runs, with the pid of the process that runs it.
    public func reportStarted(pid: Int32) {
        guard trackStarted else { return }
        updateState(.started, meta: ["pid": .int(Int64(pid)), "hostname": .string(hostname)])
    }

    /// `updateState(_:meta:)` with any `Encodable` meta (encoded as JSON).
    ///
    /// - Throws: the `EncodingError` when `meta` cannot be encoded as JSON.
    public func updateState<Meta: Encodable>(_ state: TaskState, meta: Meta) throws {
        updateState(state, meta: try JSONBridge.encode(meta))
    }

    /// Reports `PROGRESS` with `{"current": current, "total": total}`, the meta `celeriac call --wait` draws as a
    /// progress bar and most Celery front ends read.
    public func reportProgress(current: Int, total: Int) {
        updateState(.progress, meta: ["current": .int(Int64(current)), "total": .int(Int64(total))])
    }

    /// `Task.checkCancellation()` that names the reason: throws ``SoftTimeLimitExceeded`` once the soft time limit
    /// has passed, and `CancellationError` when the task was cancelled otherwise (terminated, cold shutdown).
    public func checkCancellation() throws {
        if let soft = softTimeLimitExceeded { throw soft }
        try Task.checkCancellation()
    }

    /// `Task.sleep(for:)` that names the reason when it is cut short, as ``checkCancellation()`` does.
    public func sleep(for duration: Duration) async throws {
        do {
            try await clock.sleep(for: duration)
        } catch {
            try checkCancellation()
            throw error
        }
    }

    /// The task id (a UUID string); Celery's `id` header and the result's `task_id`.
    public var id: String { message.id }
    /// Task name as registered, e.g. `demo.add`; Celery's `task` header.
    public var name: String { message.name }
    /// How many times this task was retried before this run.
    public var retries: Int { message.retries }
    /// Id of the first task of the workflow this run belongs to (`root_id`); nil when the sender did not set it.
    public var rootID: String? { message.rootID }
    /// Id of the task that sent this one (`parent_id`); nil for a task sent by a client.
    public var parentID: String? { message.parentID }
    /// Id of the group this task is a member of (`group`); nil outside a group.
    public var groupID: String? { message.groupID }

    /// The error to throw to retry this task: `throw context.retry(countdown: .seconds(5))`.
    ///
    /// Like Celery's `self.retry`, it republishes the message with `retries + 1` and an `eta`, and sends a RETRY
    /// result. When `retries` already reached `maxRetries` (default: the task's ``TaskOptions/maxRetries``) the
    /// task fails instead, with `cause` if given, else `MaxRetriesExceededError`.
    public func retry(countdown: Duration? = nil, maxRetries: Int? = nil, cause: (any Error)? = nil) -> RetryRequest {
        RetryRequest(
            countdown: countdown.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 },
            maxRetries: maxRetries, cause: cause.map(TaskFailure.init(error:)))
    }
}

/// Thrown by a task (through ``TaskContext/retry(countdown:maxRetries:cause:)``) to be retried.
public struct RetryRequest: Error, Sendable, CustomStringConvertible {
    /// Seconds to wait before the next run; nil means the task's ``TaskOptions/defaultRetryDelay``.
    public var countdown: Double?
    /// Retry limit for this request; nil means the task's ``TaskOptions/maxRetries``.
    public var maxRetries: Int?
    /// The error that caused the retry; it is the RETRY result, and the failure when no retry is left.
    public var cause: TaskFailure?
    /// `Retry in <countdown>s`, plus the cause when there is one.
    public var description: String {
        "Retry in \(countdown.map { "\($0)s" } ?? "the default delay")" + (cause.map { ": \($0)" } ?? "")
    }
}

/// Where a task's intermediate states go (`TaskContext.updateState(_:meta:)`). The worker gives each run one
/// that publishes to the caller's reply queue; a process-pool child gives one that sends the state to its parent.
public struct TaskStateSink: Sendable {
    private let sink: @Sendable (TaskState, JSONValue) -> Void

    /// A sink that calls `report` for each state. `report` must return quickly and must not block.
    public init(_ report: @escaping @Sendable (TaskState, JSONValue) -> Void) { self.sink = report }

    /// Hands one state on.
    public func report(_ state: TaskState, _ meta: JSONValue) { sink(state, meta) }
}

/// Why a running task is being stopped, shared between the task's ``TaskContext`` and the worker (or pool child)
/// that enforces its soft time limit.
public final class StopReason: Sendable {
    private let soft = Mutex<SoftTimeLimitExceeded?>(nil)
    /// A reason with nothing recorded yet.
    public init() {}
    /// Records that the soft time limit passed; the caller cancels the task's Swift `Task` right after.
    public func softTimeLimitPassed(_ limit: Double) { soft.withLock { $0 = SoftTimeLimitExceeded(limit: limit) } }
    /// The soft time limit's error once ``softTimeLimitPassed(_:)`` was called, else nil.
    public var softTimeLimitExceeded: SoftTimeLimitExceeded? { soft.withLock { $0 } }
}

/// What a task sees when its soft time limit passes: its Swift `Task` is cancelled, and
/// ``TaskContext/checkCancellation()`` and ``TaskContext/sleep(for:)`` throw this error (a bare `Task.sleep` throws
/// `CancellationError`; ``TaskContext/softTimeLimitExceeded`` then tells why). A task may catch it to clean up and
/// even return a result; if it lets it (or the cancellation) escape, the task fails with `SoftTimeLimitExceeded`.
public struct SoftTimeLimitExceeded: PythonException, CustomStringConvertible, Sendable {
    /// The soft time limit that passed, in seconds.
    public let limit: Double
    /// The error for a soft time limit of `limit` seconds.
    public init(limit: Double) { self.limit = limit }
    /// `SoftTimeLimitExceeded`, as Celery's worker raises it.
    public var pythonType: String { "SoftTimeLimitExceeded" }
    /// `billiard.exceptions`, the module Celery's exception comes from.
    public var pythonModule: String { "billiard.exceptions" }
    /// No arguments, as billiard raises it.
    public var pythonArguments: [JSONValue] { [] }
    /// `soft time limit (<limit>s) exceeded`.
    public var description: String { "soft time limit (\(limit)s) exceeded" }
}
