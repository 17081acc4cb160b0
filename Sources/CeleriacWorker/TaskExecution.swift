import CeleriacBroker
import CeleriacCore
import FoundationEssentials
import Logging
import Synchronization

/// Runs task bodies for a worker: the slots that bound how many run at once, the table of running tasks, their
/// time limits (the task's, the message's, the worker's, and the `time_limit` control command's), revocation and
/// terminate, and the mapping from what a body throws to a ``TaskOutcome``.
final class TaskExecution: Sendable {
    struct Settings: Sendable {
        var hostname: String
        /// Worker-wide hard and soft time limits in seconds, for tasks and messages that set none.
        var timeLimit: Double?
        var softTimeLimit: Double?
        /// Acks early: a slot is never lent out while its message is acked already (nothing would bound waiters).
        var acksEarly: Bool
        var clock: any CeleriacClock
        /// `--track-started`: every task reports `STARTED` (a task's own option turns it on for that task).
        var trackStarted: Bool = false
    }

    struct RunningTask: Sendable {
        let message: TaskMessage
        let work: Task<JSONValue, any Error>
        let startedAt: Date
        let queue: String
    }

    let settings: Settings
    /// Runs task bodies: in process (async pool) or in child processes (process pool).
    let executor: any TaskExecutor
    /// Tasks started at once: concurrency plus what the executor takes beyond it.
    let slots: Slots
    /// Revoked task ids (remote control, the revocation log).
    let revoked = RevokedSet()
    private let running = Mutex<[String: RunningTask]>([:])
    /// Ids asked to terminate that were not (yet) in `running`: a task that passed its revoked check but has not
    /// registered its Swift Task yet checks this after registering, so a terminate in that window is not lost.
    private let terminateRequests = Mutex<Set<String>>([])
    /// Per-task time limits set at run time (`time_limit` control command); they win over the task's options.
    private let timeLimitOverrides = Mutex<[String: TaskMessage.TimeLimit]>([:])
    /// Tasks run so far, by name (remote control `stats`).
    private let totals = Mutex<[String: Int]>([:])
    private let processed = Atomic<Int>(0)
    /// Concurrency now (`-c`, changed by `pool_grow` / `pool_shrink`).
    private let concurrencyNow: Atomic<Int>

    /// Where a run's intermediate states are published (the publishing connection); nil sends none.
    let statePublisher: (any MessagePublishing)?

    init(
        settings: Settings, executor: any TaskExecutor, concurrency: Int, statePublisher: (any MessagePublishing)? = nil
    ) {
        self.settings = settings
        self.statePublisher = statePublisher
        self.executor = executor
        self.slots = Slots(concurrency + executor.extraSlots)
        self.concurrencyNow = Atomic(concurrency)
    }

    var concurrency: Int { concurrencyNow.load(ordering: .relaxed) }

    /// Grows or shrinks concurrency by `delta` (never below 1); the executor follows (a process pool starts or
    /// retires children; running tasks are never interrupted). Returns the values before and after.
    func resize(by delta: Int) async -> (before: Int, after: Int) {
        let before = concurrency
        let after = max(1, before + delta)
        guard after != before else { return (before, before) }
        concurrencyNow.store(after, ordering: .relaxed)
        await slots.resize(by: after - before)
        _ = executor.resize(by: after - before, to: after)
        return (before, after)
    }

    /// True while fewer tasks run than the concurrency allows (the watchdog's "free slots").
    func hasFreeSlots() async -> Bool { await slots.busy < concurrency }

    /// Tasks executed so far.
    var processedCount: Int { processed.load(ordering: .relaxed) }
    var totalsByTask: [String: Int] { totals.withLock { $0 } }
    var runningCount: Int { running.withLock { $0.count } }
    var runningIDs: [String] { running.withLock { Array($0.keys) } }
    func active() -> [(message: TaskMessage, queue: String, startedAt: Date)] {
        running.withLock { Array($0.values) }.map { ($0.message, $0.queue, $0.startedAt) }
    }

    /// Counts a task whose body ran to an outcome.
    func count(_ name: String) {
        processed.add(1, ordering: .relaxed)
        totals.withLock { $0[name, default: 0] += 1 }
    }

    func setTimeLimit(_ task: String, _ limit: TaskMessage.TimeLimit) {
        timeLimitOverrides.withLock { $0[task] = limit }
    }

    /// Marks a task id revoked; with `terminate`, cancels it if it runs here now.
    func revoke(_ id: String, terminate: Bool) async {
        await revoked.insert(id)
        guard terminate else { return }
        terminateRequests.withLock {
            // Only the short window before a task registers matters, so stale ids (tasks that run elsewhere)
            // are dropped wholesale rather than kept forever.
            if $0.count >= 10_000 { $0.removeAll() }
            $0.insert(id)
        }
        if let task = running.withLock({ $0[id] }) {
            task.work.cancel()
            terminateRequests.withLock { _ = $0.remove(id) }
        }
    }

    /// Runs `wait` (a confirm wait after the task's body has ended) with the task's slot lent out, so the slot runs
    /// other tasks meanwhile: RabbitMQ confirms a persistent message only once it is on disk, several ms that a slot
    /// would otherwise spend idle. The task's message is acked only after `wait` returns, and prefetch bounds how
    /// many tasks wait at once. With acks_early the message is acked already and nothing would bound the waiters,
    /// so there the slot is kept.
    func lendingSlot<T>(_ wait: () async -> T) async -> T {
        guard !settings.acksEarly else { return await wait() }
        await slots.release()
        let value = await wait()
        await slots.forceTake()  // over the limit for a moment: the caller releases it once the delivery is settled
        return value
    }

    /// Waits for the last sub-second before `eta` with the slot lent out, so a task that is due now does not wait
    /// behind one that is due later.
    func waitForETA(_ eta: Date) async {
        await slots.release()
        try? await settings.clock.sleep(untilWallTime: eta)
        if Task.isCancelled { await slots.forceTake() } else { await slots.reacquire() }
    }

    /// The time limits a run of `message` gets: the message's, then the `time_limit` command's, then the task's
    /// options, then the worker's.
    func limits(for message: TaskMessage, task: RegisteredTask) -> TaskMessage.TimeLimit {
        let changed = timeLimitOverrides.withLock { $0[message.name] }
        return TaskMessage.TimeLimit(
            hard: message.timeLimit.hard ?? changed?.hard ?? task.options.hardTimeLimit ?? settings.timeLimit,
            soft: message.timeLimit.soft ?? changed?.soft ?? task.options.softTimeLimit ?? settings.softTimeLimit)
    }

    /// Runs the task body (through the executor) with its soft time limit; maps what it throws to an outcome.
    func execute(_ message: TaskMessage, task: RegisteredTask, queue: String, log: Logger) async -> TaskOutcome {
        let clock = settings.clock
        // Intermediate states (`update_state`, STARTED) go to the caller while the body runs, and stop before the
        // outcome is published.
        let ignoreResult = message.ignoreResult ?? task.options.ignoreResult
        let reporter = statePublisher.flatMap {
            StateReporter(message: message, ignoreResult: ignoreResult, publisher: $0, clock: clock)
        }
        defer { reporter?.close() }
        let context = TaskContext(
            message: message, logger: log, hostname: settings.hostname, options: task.options, clock: clock,
            states: reporter?.sink, trackStarted: task.options.trackStarted || settings.trackStarted)
        let limits = limits(for: message, task: task)
        let executor = self.executor
        // Unless the executor enforces the limits (process pool), the soft limit cancels the task here, and a hard
        // limit without a soft one acts as a soft one. Its deadline is fixed before the task starts.
        let softLimit = executor.enforcesTimeLimits ? nil : limits.soft ?? limits.hard
        let softDeadline = softLimit.map { clock.uptime + .milliseconds(Int($0 * 1000)) }
        // An unstructured task so that revoke(terminate:) and the soft time limit can cancel just this one. In the
        // async pool it starts at once on this thread and runs until its first suspension: a body that does not
        // suspend runs without a trip through the global queue and a second wake-up to resume here (CPU per task
        // -7 % in interleaved pairs). The process pool's run suspends at once, and there it measured no better.
        let run = { @Sendable () async throws -> JSONValue in
            try await executor.run(message, task: task, context: context, limits: limits)
        }
        let work = executor is InProcessExecutor ? Task.immediate { try await run() } : Task { try await run() }
        running.withLock { $0[message.id] = RunningTask(message: message, work: work, startedAt: Date(), queue: queue) }
        defer { running.withLock { $0[message.id] = nil } }
        // revoke(terminate:) records the id before it looks in `running`; registering before looking here means
        // one of the two sees the other.
        if terminateRequests.withLock({ $0.remove(message.id) }) != nil { work.cancel() }
        let fired = Flag()
        let timer: Task<Void, Never>? = softLimit.map { limit in
            Task {
                try? await clock.sleep(until: softDeadline ?? clock.uptime)
                if !Task.isCancelled {
                    fired.set()
                    context.stopReason.softTimeLimitPassed(limit)
                    work.cancel()
                }
            }
        }
        defer { timer?.cancel() }
        let result = await withTaskCancellationHandler {
            await work.result
        } onCancel: {
            work.cancel()
        }
        switch result {
        case .success(let value):
            return .success(value)
        case .failure(let error):
            if let reported = error as? ExecutionFailure {
                return .reported(reported.failure, outcome: reported.outcome)
            }
            if let lost = error as? WorkerLost {
                return .workerLost(lost)
            }
            if let retry = error as? RetryRequest {
                return Self.retryOutcome(
                    message, task: task, countdown: retry.countdown, maxRetries: retry.maxRetries, cause: retry.cause)
            }
            if work.isCancelled, await revoked.contains(message.id) {
                return .revoked(reason: "terminated")
            }
            if fired.isSet || error is SoftTimeLimitExceeded, let softLimit {
                var failure = TaskFailure(
                    error: error is SoftTimeLimitExceeded ? error : SoftTimeLimitExceeded(limit: softLimit))
                failure.arguments = []
                return .failure(failure)
            }
            if let auto = task.options.autoRetry, auto.matches(error) {
                let delay = auto.backoff.delay(forRetries: message.retries)
                return Self.retryOutcome(
                    message, task: task, countdown: delay, maxRetries: nil, cause: TaskFailure(error: error))
            }
            return .failure(TaskFailure(error: error))
        }
    }

    /// A retry, or the failure that ends the task when it has used its retries (`MaxRetriesExceededError` unless
    /// there is a cause to report).
    static func retryOutcome(
        _ message: TaskMessage, task: RegisteredTask, countdown: Double?, maxRetries: Int?, cause: TaskFailure?
    ) -> TaskOutcome {
        let limit = maxRetries ?? task.options.maxRetries
        if message.retries >= limit {
            return .failure(
                cause
                    ?? TaskFailure(
                        type: "MaxRetriesExceededError",
                        arguments: [
                            .string(
                                "Can't retry \(message.name)[\(message.id)] args:\(message.argsRepr ?? PythonRepr.args(message.args)) kwargs:\(message.kwargsRepr ?? PythonRepr.kwargs(message.kwargs))"
                            )
                        ],
                        module: "celery.exceptions"))
        }
        return .retry(after: countdown ?? task.options.defaultRetryDelay, cause: cause)
    }
}

/// A flag set once from another task.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
