import CeleriacCore
import CeleriacWorker
import FoundationEssentials
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Runs each task in one of N supervised child processes (`--pool process`), Celery's prefork model.
///
/// The worker (parent) keeps the broker connections; children only run task bodies. A child that dies while
/// running a task (trap, SIGKILL, OOM) is replaced at once and the task fails with `WorkerLostError`; a hard time
/// limit SIGKILLs the child and reports `TimeLimitExceeded`; `maxTasksPerChild` / `maxMemoryPerChild` retire a
/// child after its task. Children exit when their request pipe closes, so none outlives the parent.
public final class ProcessPool: TaskExecutor {
    public struct Configuration: Sendable {
        /// The program to start in child mode, e.g. `/proc/self/exe`.
        public var executable: String
        /// Its arguments, e.g. `["pool-child", "--hostname", "w1@host"]`.
        public var arguments: [String]
        /// Children (`-c N`).
        public var processes: Int
        /// Retire a child after this many tasks (`--max-tasks-per-child`).
        public var maxTasksPerChild: Int?
        /// Retire a child whose resident memory exceeds this many bytes after a task (`--max-memory-per-child`).
        public var maxMemoryPerChild: Int64?
        /// With `reject_on_worker_lost`: after this many worker-lost deliveries of one message it goes to the
        /// dead-letter queue instead of being requeued (`--max-worker-lost`).
        public var maxWorkerLost: Int
        /// How long a warm stop waits for idle children to exit before killing them.
        public var stopTimeout: Duration

        public init(executable: String, arguments: [String], processes: Int, maxTasksPerChild: Int? = nil, maxMemoryPerChild: Int64? = nil,
                    maxWorkerLost: Int = 2, stopTimeout: Duration = .seconds(10)) {
            self.executable = executable
            self.arguments = arguments
            self.processes = max(1, processes)
            self.maxTasksPerChild = maxTasksPerChild
            self.maxMemoryPerChild = maxMemoryPerChild
            self.maxWorkerLost = max(1, maxWorkerLost)
            self.stopTimeout = stopTimeout
        }
    }

    struct Waiter {
        let id: Int
        let continuation: CheckedContinuation<ChildProcess?, Never>
    }

    struct State {
        var children: [pid_t: ChildProcess] = [:]
        var idle: [ChildProcess] = []
        var waiters: [Waiter] = []
        var nextWaiter = 0
        var stopping = false
        var readyWaiters: [CheckedContinuation<Void, Never>] = []
        var exitWaiters: [CheckedContinuation<Void, Never>] = []
        var everReady = 0
        var workerLost = 0
        var timeLimitKills = 0
        var restarts: [String: Int] = [:]
        var spawnError: String?
        /// Children to retire as they become idle (`pool_shrink`).
        var retiring = 0
        /// Children wanted now (starts at `configuration.processes`; `pool_grow` / `pool_shrink` change it).
        var target = 0
    }

    public let configuration: Configuration
    private let observer: any WorkerObserver
    private let state = Mutex(State())
    private let logger = Mutex(Logger(label: "celeriac.pool"))

    public init(configuration: Configuration, observer: any WorkerObserver = NoObserver()) {
        self.configuration = configuration
        self.observer = observer
    }

    public var enforcesTimeLimits: Bool { true }
    /// As many tasks again as there are children may wait in the pool for a free child (Celery's parent also
    /// holds prefetched tasks until a process is free). Only matters when prefetch exceeds concurrency.
    public var extraSlots: Int { configuration.processes }

    /// Pids of the live children.
    public var childPIDs: [Int32] { state.withLock { $0.children.keys.sorted() } }

    public var statistics: JSONObject {
        state.withLock { s in
            [
                "implementation": "celeriac.process",
                "processes": .array(s.children.keys.sorted().map { .int(Int64($0)) }),
                "max-tasks-per-child": configuration.maxTasksPerChild.map { .int(Int64($0)) } ?? .null,
                "max-memory-per-child": configuration.maxMemoryPerChild.map { .int($0 / 1024) } ?? .null,
                "worker-lost": .int(Int64(s.workerLost)),
                "time-limit-kills": .int(Int64(s.timeLimitKills)),
                "child-restarts": .int(Int64(s.restarts.values.reduce(0, +))),
                "child-restarts-by-reason": .object(JSONObject(s.restarts.sorted { $0.key < $1.key }.map { ($0.key, .int(Int64($0.value))) })),
            ]
        }
    }

    // MARK: Lifecycle

    /// Starts the children and waits until each has said hello (or fails when they cannot start).
    public func start(logger: Logger) async throws(CeleriacError) {
        var log = logger
        log[metadataKey: "pool"] = "process"
        self.logger.withLock { $0 = log }
        // A write to a child that just died must fail with EPIPE, not kill the worker.
        signal(SIGPIPE, SIG_IGN)
        state.withLock { $0.target = configuration.processes }
        for _ in 0..<configuration.processes {
            if let error = spawnChild() { throw .configuration("\(error). Is \(configuration.executable) the worker's own executable?") }
        }
        let ready = Task {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let done = state.withLock { s -> Bool in
                    if s.everReady >= configuration.processes { return true }
                    s.readyWaiters.append(c)
                    return false
                }
                if done { c.resume() }
            }
        }
        let timeout = Task {
            try? await Task.sleep(for: .seconds(30))
            let waiting = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                defer { s.readyWaiters = [] }
                return s.readyWaiters
            }
            waiting.forEach { $0.resume() }
        }
        await ready.value
        timeout.cancel()
        let (count, error) = state.withLock { ($0.everReady, $0.spawnError) }
        guard count >= configuration.processes else {
            abort()
            throw .configuration("the process pool's children did not start (\(count) of \(configuration.processes) ready within 30 s; \(error ?? "no error reported")). "
                                 + "Run `\(([configuration.executable] + configuration.arguments).joined(separator: " "))` by hand to see why")
        }
        observer.poolProcesses(state.withLock { $0.children.count })
        log.info("process pool started", metadata: ["processes": .stringConvertible(configuration.processes), "pids": .string(childPIDs.map(String.init).joined(separator: ","))])
    }

    /// Warm stop: children finish (the worker already waited for running tasks), their pipes close and they exit.
    public func stop() async {
        let children = state.withLock { s -> [ChildProcess] in
            s.stopping = true
            return Array(s.children.values)
        }
        wakeWaiters()
        for child in children { child.closeWrite(reason: "shutdown") }
        let exited = Task {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let done = state.withLock { s -> Bool in
                    if s.children.isEmpty { return true }
                    s.exitWaiters.append(c)
                    return false
                }
                if done { c.resume() }
            }
        }
        let deadline = Task {
            try? await Task.sleep(for: configuration.stopTimeout)
            if Task.isCancelled { return }
            // Still running after the timeout (a task ignoring shutdown): kill.
            for child in state.withLock({ Array($0.children.values) }) { child.kill(reason: "shutdown") }
        }
        await exited.value
        deadline.cancel()
        logger.withLock { $0 }.info("process pool stopped")
    }

    /// Cold stop: SIGKILL every child now.
    public func abort() {
        let children = state.withLock { s -> [ChildProcess] in
            s.stopping = true
            return Array(s.children.values)
        }
        wakeWaiters()
        for child in children { child.kill(reason: "shutdown") }
    }

    private func wakeWaiters() {
        let waiters = state.withLock { s -> [Waiter] in
            defer { s.waiters = [] }
            return s.waiters
        }
        waiters.forEach { $0.continuation.resume(returning: nil) }
    }

    /// Spawns one child and starts its reader; returns an error text when posix_spawn failed.
    private func spawnChild() -> String? {
        switch ChildProcess.spawn(executable: configuration.executable, arguments: configuration.arguments) {
        case .failure(let error):
            state.withLock { $0.spawnError = error.description }
            return error.description
        case .success(let child):
            state.withLock { $0.children[child.pid] = child }
            child.startReader(onHello: { [self] child, version in childSaidHello(child, version: version) },
                              onExit: { [self] child, exit in childExited(child, exit) })
            return nil
        }
    }

    private func childSaidHello(_ child: ChildProcess, version: Int64) {
        guard version == PoolFrame.version else {
            logger.withLock { $0 }.error("pool child speaks another protocol version; stopping it",
                                         metadata: ["pid": .stringConvertible(child.pid), "version": .stringConvertible(version)])
            state.withLock { $0.spawnError = "child protocol version \(version), expected \(PoolFrame.version)" }
            child.kill(reason: "version")
            return
        }
        let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.everReady += 1
            guard s.everReady >= configuration.processes else { return [] }
            defer { s.readyWaiters = [] }
            return s.readyWaiters
        }
        ready.forEach { $0.resume() }
        makeAvailable(child)
    }

    /// Hands an idle child to the oldest waiting run, or parks it.
    private func makeAvailable(_ child: ChildProcess) {
        let waiter = state.withLock { s -> Waiter? in
            guard s.children[child.pid] != nil, !s.stopping else { return nil }
            if s.retiring > 0 {
                s.retiring -= 1
                child.closeWrite(reason: "shrink")
                return nil
            }
            if !s.waiters.isEmpty { return s.waiters.removeFirst() }
            s.idle.append(child)
            return nil
        }
        waiter?.continuation.resume(returning: child)
    }

    /// Runs on the dead child's reader thread: forget it, and start a replacement unless the pool is stopping.
    private func childExited(_ child: ChildProcess, _ exit: ChildExit) {
        let (reason, hadHello) = child.state.withLock { ($0.endReason, $0.helloReceived) }
        let (stopping, exitWaiters, live) = state.withLock { s -> (Bool, [CheckedContinuation<Void, Never>], Int) in
            s.children[child.pid] = nil
            s.idle.removeAll { $0 === child }
            var waiters: [CheckedContinuation<Void, Never>] = []
            if s.children.isEmpty {
                waiters = s.exitWaiters
                s.exitWaiters = []
            }
            return (s.stopping, waiters, s.children.count)
        }
        exitWaiters.forEach { $0.resume() }
        observer.poolProcesses(live)
        guard !stopping, reason != "shrink" else { return }
        let label = reason ?? (hadHello ? "worker_lost" : "spawn_failed")
        state.withLock { $0.restarts[label, default: 0] += 1 }
        observer.poolChildRestarted(reason: label)
        let log = logger.withLock { $0 }
        if label == "max_tasks" || label == "max_memory" {
            log.info("pool child retired; starting a fresh one", metadata: ["pid": .stringConvertible(child.pid), "reason": .string(label)])
        } else {
            log.warning("pool child exited; starting a replacement", metadata: ["pid": .stringConvertible(child.pid), "exit": .string(exit.description), "reason": .string(label)])
        }
        if !hadHello {
            // It could not even start: do not spin.
            state.withLock { $0.spawnError = "a child exited before it was ready (\(exit))" }
            sleep(1)
        }
        while spawnChild() != nil {
            if state.withLock({ $0.stopping }) { return }
            log.error("cannot start a pool child; retrying in 1 s", metadata: ["error": .string(state.withLock { $0.spawnError ?? "" })])
            sleep(1)
        }
        observer.poolProcesses(state.withLock { $0.children.count })
    }

    // MARK: Running tasks

    private func acquire() async -> ChildProcess? {
        let id = state.withLock { s -> Int in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<ChildProcess?, Never>) in
                let immediate = state.withLock { s -> (ChildProcess?, Bool) in
                    if s.stopping { return (nil, true) }
                    if let child = s.idle.popLast() { return (child, true) }
                    s.waiters.append(Waiter(id: id, continuation: c))
                    return (nil, false)
                }
                if immediate.1 { c.resume(returning: immediate.0) }
            }
        } onCancel: {
            let waiter = state.withLock { s -> Waiter? in
                guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiters.remove(at: i)
            }
            waiter?.continuation.resume(returning: nil)
        }
    }

    public func run(_ message: TaskMessage, task: RegisteredTask, context: TaskContext, limits: TaskMessage.TimeLimit) async throws -> JSONValue {
        while true {
            guard let child = await acquire() else { throw CancellationError() }
            if let value = try await run(message, task: task, context: context, limits: limits, on: child) { return value }
            // That child had died while idle; its replacement is on the way. Take the next one.
        }
    }

    /// One run on one child; nil when the child was already gone and nothing was sent.
    private func run(_ message: TaskMessage, task: RegisteredTask, context: TaskContext, limits: TaskMessage.TimeLimit,
                     on child: ChildProcess) async throws -> JSONValue? {
        let run = RunState()
        // Both limits count from here, when the task really starts in its child.
        let softTimer: Task<Void, Never>? = limits.soft.map { limit in
            Task {
                try? await Task.sleep(for: .milliseconds(Int64(limit * 1000)))
                if Task.isCancelled { return }
                run.softFired.store(true, ordering: .sequentiallyConsistent)
                let s = run.seq.load(ordering: .sequentiallyConsistent)
                if s > 0 { child.cancel(seq: s) }
            }
        }
        let hardTimer: Task<Void, Never>? = limits.hard.map { limit in
            Task {
                try? await Task.sleep(for: .milliseconds(Int64(limit * 1000)))
                let s = run.seq.load(ordering: .sequentiallyConsistent)
                if !Task.isCancelled, s > 0 { child.kill(ifRunning: s, reason: "time_limit") }
            }
        }
        defer {
            softTimer?.cancel()
            hardTimer?.cancel()
        }
        let event = await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<ChildProcess.Event, Never>) in
                guard let s = child.begin(message, continuation: c) else {
                    c.resume(returning: .gone)
                    return
                }
                run.seq.store(s, ordering: .sequentiallyConsistent)
                if Task.isCancelled || run.softFired.load(ordering: .sequentiallyConsistent) { child.cancel(seq: s) }
            }
        } onCancel: {
            let s = run.seq.load(ordering: .sequentiallyConsistent)
            if s > 0 { child.cancel(seq: s) }
        }
        let hardTimeLimit = limits.hard
        switch event {
        case .gone:
            return nil
        case .reply(let result, let rss):
            afterTask(child, rss: rss)
            switch result {
            case .success(let value):
                return value
            case .failure(let failure):
                throw ExecutionFailure(failure)
            case .retry(let countdown, let maxRetries, let cause):
                var request = context.retry(countdown: countdown.map { .milliseconds(Int64($0 * 1000)) }, maxRetries: maxRetries)
                request.countdown = countdown
                request.cause = cause
                throw request
            case .cancelled:
                if run.softFired.load(ordering: .sequentiallyConsistent), let soft = limits.soft {
                    var failure = TaskFailure(error: SoftTimeLimitExceeded(limit: soft))
                    failure.arguments = []
                    throw ExecutionFailure(failure)
                }
                throw CancellationError()
            }
        case .died(let exit):
            if child.state.withLock({ $0.endReason }) == "time_limit", let hardTimeLimit {
                state.withLock { $0.timeLimitKills += 1 }
                logger.withLock { $0 }.error("hard time limit exceeded; the child was killed", metadata: [
                    "task.id": .string(message.id), "limit": .stringConvertible(hardTimeLimit), "pid": .stringConvertible(child.pid)])
                throw ExecutionFailure(TaskFailure(type: "TimeLimitExceeded", arguments: [.double(hardTimeLimit)], module: "billiard.exceptions",
                                                   traceback: "Traceback (most recent call last):\n  (Swift task in pool child \(child.pid))\nbilliard.exceptions.TimeLimitExceeded: \(hardTimeLimit)"),
                                       label: "timed_out")
            }
            if Task.isCancelled { throw CancellationError() }
            state.withLock { $0.workerLost += 1 }
            let text = "Worker exited prematurely: \(exit) Job: \(message.id)."
            let failure = TaskFailure(type: "WorkerLostError", arguments: [.string(text)], module: "billiard.exceptions",
                                      traceback: "Traceback (most recent call last):\n  (Swift task in pool child \(child.pid))\nbilliard.exceptions.WorkerLostError: \(text)")
            let lost = Int(message.extraHeaders[WorkerLost.countHeader]?.intValue ?? 0) + 1
            let disposition: WorkerLost.Disposition =
                !task.options.rejectOnWorkerLost ? .ack : (lost >= configuration.maxWorkerLost ? .deadLetter : .requeue(lostCount: lost))
            throw WorkerLost(failure: failure, disposition: disposition)
        }
    }

    /// One run's sequence number (0 until sent) and whether its soft limit fired, shared with its timers.
    final class RunState: Sendable {
        let seq = Atomic<Int64>(0)
        let softFired = Atomic<Bool>(false)
    }

    /// After a task: retire the child when it ran its quota or grew too big, else make it available again.
    private func afterTask(_ child: ChildProcess, rss reported: Int64) {
        let ran = child.state.withLock { $0.tasksRun }
        if let max = configuration.maxTasksPerChild, ran >= max {
            child.closeWrite(reason: "max_tasks")
            return
        }
        if let max = configuration.maxMemoryPerChild {
            // The child's resident memory now (read from /proc only when a limit is set).
            let rss = Swift.max(reported, FileDescriptors.residentBytes(of: child.pid))
            if rss > max {
                logger.withLock { $0 }.info("pool child exceeds the memory limit; retiring it", metadata: [
                    "pid": .stringConvertible(child.pid), "rss": .stringConvertible(rss), "limit": .stringConvertible(max)])
                child.closeWrite(reason: "max_memory")
                return
            }
        }
        makeAvailable(child)
    }
}

extension ProcessPool {
    /// `pool_grow` / `pool_shrink`: starts `delta` more children, or retires `-delta` of them as they become idle
    /// (a running task is never interrupted). Returns the number of children wanted now.
    public func resize(by delta: Int, to concurrency: Int) -> Int {
        if delta > 0 {
            state.withLock { $0.target += delta }
            for _ in 0..<delta {
                if let error = spawnChild() {
                    logger.withLock { $0 }.error("pool_grow: cannot start a child", metadata: ["error": .string(error)])
                }
            }
        } else if delta < 0 {
            let idle = state.withLock { s -> [ChildProcess] in
                let n = Swift.min(-delta, s.target - 1)
                guard n > 0 else { return [] }
                s.target -= n
                let now = Array(s.idle.suffix(n))
                s.idle.removeLast(now.count)
                s.retiring += n - now.count
                return now
            }
            for child in idle { child.closeWrite(reason: "shrink") }
        }
        let target = state.withLock { $0.target }
        observer.poolProcesses(state.withLock { $0.children.count })
        logger.withLock { $0 }.info("process pool resized", metadata: ["processes": .stringConvertible(target)])
        return target
    }
}
