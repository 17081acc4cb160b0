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
/// The worker (parent) keeps the broker connections; children only run task bodies. Children exit when their
/// request pipe closes, so none outlives the parent.
///
/// Runs are pipelined: a child may hold up to ``Configuration/pipelineDepth`` runs, so it starts the next one as
/// soon as it answers the last, without waiting for the parent. A new run goes to the least-loaded child (an idle
/// one first), else waits in the pool's backlog, which each answer drains. A child runs its runs one at a time, in
/// order, so the oldest unanswered one is running and the others have not started. Hence:
/// - a child that dies (trap, SIGKILL, OOM) fails its running task with `WorkerLostError` and is replaced at once;
///   the runs queued behind it had not started and run on another child, transparently;
/// - time limits count from when a run becomes the head of its child's queue; a hard limit SIGKILLs the child
///   (`TimeLimitExceeded` for the running task only; the queued ones run elsewhere);
/// - cancelling a queued run (revoke with terminate) sends its cancel frame; the child answers `cancelled` without
///   running it when it reaches the head (a run still in the backlog is just taken out);
/// - `maxTasksPerChild`: a child is never sent more runs than its quota; it is retired after answering the last;
///   `maxMemoryPerChild` and `pool_shrink` retire a child too: it takes no more runs, finishes those it holds,
///   then its pipe closes;
/// - warm stop: the worker has waited for every run it handed over (queued ones included); runs still in the
///   backlog end with `CancellationError`, and each child exits once it answered what it holds.
public final class ProcessPool: TaskExecutor {
    /// How the pool starts and recycles its children; the worker command fills it from its flags.
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
        /// Runs a child may hold at once: the running one and those queued behind it (1: no pipelining).
        public var pipelineDepth: Int

        /// A configuration; `processes`, `maxWorkerLost` and `pipelineDepth` below 1 are raised to 1. Defaults: no
        /// task or memory quota, 2 worker-lost deliveries, 10 s stop timeout, pipeline depth 2.
        public init(
            executable: String, arguments: [String], processes: Int, maxTasksPerChild: Int? = nil,
            maxMemoryPerChild: Int64? = nil,
            maxWorkerLost: Int = 2, stopTimeout: Duration = .seconds(10), pipelineDepth: Int = 2
        ) {
            self.executable = executable
            self.arguments = arguments
            self.processes = max(1, processes)
            self.maxTasksPerChild = maxTasksPerChild
            self.maxMemoryPerChild = maxMemoryPerChild
            self.maxWorkerLost = max(1, maxWorkerLost)
            self.stopTimeout = stopTimeout
            self.pipelineDepth = max(1, pipelineDepth)
        }
    }

    struct State {
        var children: [pid_t: ChildProcess] = [:]
        /// Children that said hello, in start order: those that take runs.
        var ready: [ChildProcess] = []
        /// Runs waiting for a place in a child, oldest first.
        var backlog: [PoolRun] = []
        var stopping = false
        var readyWaiters: [CheckedContinuation<Void, Never>] = []
        var exitWaiters: [CheckedContinuation<Void, Never>] = []
        var everReady = 0
        var workerLost = 0
        var timeLimitKills = 0
        var restarts: [String: Int] = [:]
        var spawnError: String?
        /// Children that exit without a replacement (`pool_shrink` found fewer children to retire than asked).
        var unreplaced = 0
        /// Children wanted now (starts at `configuration.processes`; `pool_grow` / `pool_shrink` change it).
        var target = 0
    }

    /// The settings this pool was created with (the current child count may differ after `pool_grow`/`pool_shrink`).
    public let configuration: Configuration
    private let observer: any WorkerObserver
    private let state = Mutex(State())
    private let logger = Mutex(Logger(label: "celeriac.pool"))
    /// For tests: called with the task id and the child's pid each time a run is written to a child.
    let sentProbe = Mutex<(@Sendable (String, pid_t) -> Void)?>(nil)

    /// A pool with `configuration`; no child starts before ``start(logger:)``. `observer` gets child restarts and the
    /// live child count.
    public init(configuration: Configuration, observer: any WorkerObserver = NoObserver()) {
        self.configuration = configuration
        self.observer = observer
    }

    /// Always true: the pool enforces soft and hard time limits itself (a hard limit kills the child).
    public var enforcesTimeLimits: Bool { true }
    /// Besides one running task per child: the runs queued in the children (`pipelineDepth - 1` each) and as many
    /// again as there are children waiting in the backlog, so that an answer can send the next run at once
    /// (Celery's parent also holds prefetched tasks until a process is free). Only matters when prefetch exceeds
    /// concurrency.
    public var extraSlots: Int { configuration.processes * configuration.pipelineDepth }

    /// Pids of the live children.
    public var childPIDs: [Int32] { state.withLock { $0.children.keys.sorted() } }

    /// The `pool` part of the remote-control `stats` reply: child pids, pipeline depth, quotas (memory in KiB), and
    /// counts of worker-lost tasks, time-limit kills and child restarts (by reason).
    public var statistics: JSONObject {
        state.withLock { s in
            [
                "implementation": "celeriac.process",
                "processes": .array(s.children.keys.sorted().map { .int(Int64($0)) }),
                "pipeline-depth": .int(Int64(configuration.pipelineDepth)),
                "max-tasks-per-child": configuration.maxTasksPerChild.map { .int(Int64($0)) } ?? .null,
                "max-memory-per-child": configuration.maxMemoryPerChild.map { .int($0 / 1024) } ?? .null,
                "worker-lost": .int(Int64(s.workerLost)),
                "time-limit-kills": .int(Int64(s.timeLimitKills)),
                "child-restarts": .int(Int64(s.restarts.values.reduce(0, +))),
                "child-restarts-by-reason": .object(
                    JSONObject(s.restarts.sorted { $0.key < $1.key }.map { ($0.key, .int(Int64($0.value))) })),
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
            if let error = spawnChild() {
                throw .configuration("\(error). Is \(configuration.executable) the worker's own executable?")
            }
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
            throw .configuration(
                "the process pool's children did not start (\(count) of \(configuration.processes) ready within 30 s; \(error ?? "no error reported")). "
                    + "Run `\(([configuration.executable] + configuration.arguments).joined(separator: " "))` by hand to see why"
            )
        }
        observer.poolProcesses(state.withLock { $0.children.count })
        log.info(
            "process pool started",
            metadata: [
                "processes": .stringConvertible(configuration.processes),
                "pids": .string(childPIDs.map(String.init).joined(separator: ",")),
            ])
    }

    /// Warm stop: the worker already waited for the runs it handed over; each child answers what it still holds,
    /// then its pipe closes and it exits. Runs still in the backlog end with `CancellationError`.
    public func stop() async {
        let children = state.withLock { s -> [ChildProcess] in
            s.stopping = true
            return Array(s.children.values)
        }
        refuseBacklog()
        for child in children { child.retire(reason: "shutdown") }
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
        refuseBacklog()
        for child in children { child.kill(reason: "shutdown") }
    }

    /// The pool is stopping: the runs waiting in the backlog end (`CancellationError`).
    private func refuseBacklog() {
        let runs = state.withLock { s -> [PoolRun] in
            defer { s.backlog = [] }
            return s.backlog
        }
        runs.forEach { $0.resume(.stopped) }
    }

    /// Spawns one child and starts its reader; returns an error text when posix_spawn failed.
    private func spawnChild() -> String? {
        switch ChildProcess.spawn(executable: configuration.executable, arguments: configuration.arguments) {
        case .failure(let error):
            state.withLock { $0.spawnError = error.description }
            return error.description
        case .success(let child):
            state.withLock { $0.children[child.pid] = child }
            child.startReader(
                onHello: { [self] child, version in childSaidHello(child, version: version) },
                onReply: { [self] child, rss in childAnswered(child, rss: rss) },
                onExit: { [self] child, exit in childExited(child, exit) })
            return nil
        }
    }

    private func childSaidHello(_ child: ChildProcess, version: Int64) {
        guard version == PoolFrame.version else {
            logger.withLock { $0 }.error(
                "pool child speaks another protocol version; stopping it",
                metadata: ["pid": .stringConvertible(child.pid), "version": .stringConvertible(version)])
            state.withLock { $0.spawnError = "child protocol version \(version), expected \(PoolFrame.version)" }
            child.kill(reason: "version")
            return
        }
        // Taking runs before `start()` returns: the first tasks find every child, not only the first to say hello.
        let (accepted, ready) = state.withLock { s -> (Bool, [CheckedContinuation<Void, Never>]) in
            let accepted = s.children[child.pid] != nil && !s.stopping
            if accepted { s.ready.append(child) }
            s.everReady += 1
            guard s.everReady >= configuration.processes else { return (accepted, []) }
            defer { s.readyWaiters = [] }
            return (accepted, s.readyWaiters)
        }
        ready.forEach { $0.resume() }
        if accepted { dispatchBacklog() }
    }

    /// After each answer, on the child's reader thread: retire the child if it grew too big, then fill the places
    /// freed with runs from the backlog.
    private func childAnswered(_ child: ChildProcess, rss reported: Int64) {
        if let max = configuration.maxMemoryPerChild {
            // The child's resident memory now (read from /proc only when a limit is set).
            let rss = Swift.max(reported, FileDescriptors.residentBytes(of: child.pid))
            if rss > max, child.state.withLock({ $0.draining == nil }) {
                logger.withLock { $0 }.info(
                    "pool child exceeds the memory limit; retiring it",
                    metadata: [
                        "pid": .stringConvertible(child.pid), "rss": .stringConvertible(rss),
                        "limit": .stringConvertible(max),
                    ])
                child.retire(reason: "max_memory")
            }
        }
        dispatchBacklog()
    }

    /// Runs on the dead child's reader thread: forget it, and start a replacement unless the pool is stopping.
    private func childExited(_ child: ChildProcess, _ exit: ChildExit) {
        let (reason, hadHello, shrunk) = child.state.withLock {
            ($0.endReason, $0.helloReceived, $0.draining == "shrink")
        }
        let (stopping, exitWaiters, live) = state.withLock { s -> (Bool, [CheckedContinuation<Void, Never>], Int) in
            s.children[child.pid] = nil
            s.ready.removeAll { $0 === child }
            var waiters: [CheckedContinuation<Void, Never>] = []
            if s.children.isEmpty {
                waiters = s.exitWaiters
                s.exitWaiters = []
            }
            return (s.stopping, waiters, s.children.count)
        }
        exitWaiters.forEach { $0.resume() }
        observer.poolProcesses(live)
        let replace = state.withLock { s -> Bool in
            guard s.unreplaced > 0, !shrunk else { return true }
            s.unreplaced -= 1
            return false
        }
        guard !stopping, !shrunk, replace else { return }
        let label = reason ?? (hadHello ? "worker_lost" : "spawn_failed")
        state.withLock { $0.restarts[label, default: 0] += 1 }
        observer.poolChildRestarted(reason: label)
        let log = logger.withLock { $0 }
        if label == "max_tasks" || label == "max_memory" {
            log.info(
                "pool child retired; starting a fresh one",
                metadata: ["pid": .stringConvertible(child.pid), "reason": .string(label)])
        } else {
            log.warning(
                "pool child exited; starting a replacement",
                metadata: [
                    "pid": .stringConvertible(child.pid), "exit": .string(exit.description), "reason": .string(label),
                ])
        }
        if !hadHello {
            // It could not even start: do not spin.
            state.withLock { $0.spawnError = "a child exited before it was ready (\(exit))" }
            sleep(1)
        }
        while spawnChild() != nil {
            if state.withLock({ $0.stopping }) { return }
            log.error(
                "cannot start a pool child; retrying in 1 s",
                metadata: ["error": .string(state.withLock { $0.spawnError ?? "" })])
            sleep(1)
        }
        observer.poolProcesses(state.withLock { $0.children.count })
    }

    // MARK: Running tasks

    /// Runs `message` in a child and returns the task's value.
    ///
    /// - Throws: the task's failure (an `ExecutionFailure`, with `TimeLimitExceeded` when the hard limit killed the
    ///   child or ``SoftTimeLimitExceeded`` at the soft limit), a retry request, `WorkerLost` when the child died while
    ///   running it, or `CancellationError` when the run was cancelled or the pool stopped.
    public func run(_ message: TaskMessage, task: RegisteredTask, context: TaskContext, limits: TaskMessage.TimeLimit)
        async throws -> JSONValue
    {
        let run = PoolRun(message: message, limits: limits, context: context)
        while true {
            let event = await withTaskCancellationHandler {
                await withCheckedContinuation { (c: CheckedContinuation<ChildProcess.Event, Never>) in
                    run.wait(c)
                    submit(run)
                }
            } onCancel: {
                cancel(run)
            }
            switch event {
            case .requeue:
                // It had not started (its child died or retired first): send it again, to another child.
                if Task.isCancelled { throw CancellationError() }
                continue
            case .stopped:
                throw CancellationError()
            case .reply(let result, _):
                switch result {
                case .success(let value):
                    return value
                case .failure(let failure):
                    throw ExecutionFailure(failure)
                case .retry(let countdown, let maxRetries, let cause):
                    var request = context.retry(
                        countdown: countdown.map { .milliseconds(Int64($0 * 1000)) }, maxRetries: maxRetries)
                    request.countdown = countdown
                    request.cause = cause
                    throw request
                case .cancelled:
                    if run.softFired, let soft = limits.soft {
                        var failure = TaskFailure(error: SoftTimeLimitExceeded(limit: soft))
                        failure.arguments = []
                        throw ExecutionFailure(failure)
                    }
                    throw CancellationError()
                }
            case .died(let exit, let pid, let timeLimit):
                if timeLimit, let hardTimeLimit = limits.hard {
                    state.withLock { $0.timeLimitKills += 1 }
                    logger.withLock { $0 }.error(
                        "hard time limit exceeded; the child was killed",
                        metadata: [
                            "task.id": .string(message.id), "limit": .stringConvertible(hardTimeLimit),
                            "pid": .stringConvertible(pid),
                        ])
                    throw ExecutionFailure(
                        TaskFailure(
                            type: "TimeLimitExceeded", arguments: [.double(hardTimeLimit)],
                            module: "billiard.exceptions",
                            traceback:
                                "Traceback (most recent call last):\n  (Swift task in pool child \(pid))\nbilliard.exceptions.TimeLimitExceeded: \(hardTimeLimit)"
                        ),
                        outcome: .timedOut)
                }
                if Task.isCancelled { throw CancellationError() }
                state.withLock { $0.workerLost += 1 }
                let text = "Worker exited prematurely: \(exit) Job: \(message.id)."
                let failure = TaskFailure(
                    type: "WorkerLostError", arguments: [.string(text)], module: "billiard.exceptions",
                    traceback:
                        "Traceback (most recent call last):\n  (Swift task in pool child \(pid))\nbilliard.exceptions.WorkerLostError: \(text)"
                )
                let lost = Int(message.extraHeaders[WorkerLost.countHeader]?.intValue ?? 0) + 1
                let disposition: WorkerLost.Disposition =
                    !task.options.rejectOnWorkerLost
                    ? .ack : (lost >= configuration.maxWorkerLost ? .deadLetter : .requeue(lostCount: lost))
                throw WorkerLost(failure: failure, disposition: disposition)
            }
        }
    }

    /// Sends `run` to the least-loaded child with a free place, or queues it in the backlog. Its continuation
    /// (installed by the caller) is resumed with the outcome.
    private func submit(_ run: PoolRun) {
        enum Next {
            case send(ChildProcess)
            case queued, stopped, cancelled
        }
        let next = state.withLock { s -> Next in
            if s.stopping { return .stopped }
            if run.isCancelled { return .cancelled }
            if let child = reserveChild(&s) { return .send(child) }
            s.backlog.append(run)
            return .queued
        }
        switch next {
        case .send(let child):
            send(run, to: child)
        case .stopped:
            run.resume(.stopped)
        case .cancelled:
            run.resume(.reply(.cancelled, rss: 0))
        case .queued:
            break
        }
    }

    /// Sends backlog runs while some child has a free place.
    private func dispatchBacklog() {
        let sends = state.withLock { s -> [(PoolRun, ChildProcess)] in
            var sends: [(PoolRun, ChildProcess)] = []
            while !s.backlog.isEmpty, let child = reserveChild(&s) { sends.append((s.backlog.removeFirst(), child)) }
            return sends
        }
        for (run, child) in sends { send(run, to: child) }
    }

    /// Writes a run to the child reserved for it; a child gone meanwhile sends it back to be run elsewhere.
    private func send(_ run: PoolRun, to child: ChildProcess) {
        guard child.begin(run) else { return run.resume(.requeue) }
        if let probe = sentProbe.withLock({ $0 }) { probe(run.message.id, child.pid) }
    }

    /// The ready child with the fewest runs below the pipeline depth (an idle one first), with a place reserved in
    /// it; nil when all are full. Called under the pool's lock.
    private func reserveChild(_ s: inout State) -> ChildProcess? {
        var best: (child: ChildProcess, load: Int)?
        for child in s.ready {
            let load = child.state.withLock { c -> Int? in
                c.draining == nil && !c.writeClosed && c.exit == nil ? c.load : nil
            }
            guard let load, load < configuration.pipelineDepth else { continue }
            if best.map({ load < $0.load }) ?? true {
                best = (child, load)
                if load == 0 { break }
            }
        }
        best?.child.reserve(quota: configuration.maxTasksPerChild)
        return best?.child
    }

    /// Cancellation of a run (revoke with terminate, cold shutdown): tell its child, or take it out of the backlog.
    private func cancel(_ run: PoolRun) {
        if let (child, seq) = run.cancel() {
            child.cancel(seq: seq)
            return
        }
        // Not sent: in the backlog, or about to be sent (then `begin` sees the flag and sends the cancel frame).
        let withdrawn = state.withLock { s -> Bool in
            guard let i = s.backlog.firstIndex(where: { $0 === run }) else { return false }
            s.backlog.remove(at: i)
            return true
        }
        if withdrawn { run.resume(.reply(.cancelled, rss: 0)) }
    }
}

extension ProcessPool {
    /// `pool_grow` / `pool_shrink`: starts `delta` more children, or retires `-delta` of them, the least loaded:
    /// each takes no more runs, finishes those it holds and exits (a running task is never interrupted). Returns the number of children wanted now.
    public func resize(by delta: Int, to concurrency: Int) -> Int {
        if delta > 0 {
            state.withLock { $0.target += delta }
            for _ in 0..<delta {
                if let error = spawnChild() {
                    logger.withLock { $0 }.error("pool_grow: cannot start a child", metadata: ["error": .string(error)])
                }
            }
        } else if delta < 0 {
            // The least-loaded children retire: each finishes the runs it holds, then exits (none is interrupted).
            let retiring = state.withLock { s -> [ChildProcess] in
                let n = Swift.min(-delta, s.target - 1)
                guard n > 0 else { return [] }
                s.target -= n
                let candidates = s.children.values.compactMap { child -> (ChildProcess, Int)? in
                    child.state.withLock { c in c.draining == nil && !c.writeClosed ? (child, c.load) : nil }
                }
                let chosen = candidates.sorted { $0.1 < $1.1 }.prefix(n).map(\.0)
                s.ready.removeAll { r in chosen.contains { $0 === r } }
                // Fewer candidates (the others are retiring already): their replacements are not started.
                s.unreplaced += n - chosen.count
                return chosen
            }
            for child in retiring { child.retire(reason: "shrink") }
        }
        let target = state.withLock { $0.target }
        observer.poolProcesses(state.withLock { $0.children.count })
        logger.withLock { $0 }.info("process pool resized", metadata: ["processes": .stringConvertible(target)])
        return target
    }
}
