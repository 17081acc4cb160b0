import CeleriacCore
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The child side of the process pool: reads requests on fd 3, runs each task from the registry, answers on fd 4.
/// Never touches the broker. Exits as soon as its request pipe closes (parent stopped it, or the parent died).
///
/// The parent pipelines: more runs may arrive while one is running. They run one at a time, in the order received,
/// and are answered in that order (the parent relies on it: its oldest unanswered run is the running one). A run
/// arriving when the child is idle starts at once on the reader thread (`Task.immediate`): a task that does not
/// suspend runs and is answered without any thread hand-off. Cancel frames come on fd 5, read by a thread of their
/// own, so they reach a running task whatever it does; a run cancelled before it starts is answered `cancelled`
/// without running.
public enum PoolChild {
    /// Requests come in on this descriptor (the parent dup2s its pipe here).
    public static let requestFD: Int32 = 3
    /// Replies go out on this one.
    public static let replyFD: Int32 = 4
    /// Cancel frames come in on this one.
    public static let cancelFD: Int32 = 5

    /// The runs received and not answered, and the one running.
    final class Current: Sendable {
        /// The Swift task running the current run, for the cancel thread. Held only while that run executes (set
        /// when it starts, cleared before it ends, under the lock), so it never outlives the task.
        struct RunningTask: @unchecked Sendable {
            let task: UnsafeCurrentTask
        }

        struct State {
            var waiting: [(seq: Int64, message: TaskMessage)] = []
            var head = 0
            /// Runs cancelled before they started.
            var cancelled: Set<Int64> = []
            /// The newest run taken from `waiting` (a cancel for an older one that is not running is stale).
            var lastTaken: Int64 = 0
            /// The run under way, and whether it was asked to cancel.
            var running: (seq: Int64, cancelled: Bool)?
            /// The running task's stop reason (what its context reports after a soft time limit).
            var stopReason: StopReason?
            var task: RunningTask?
            /// A runner is working through `waiting` (on the reader thread or, after a suspension, elsewhere).
            var active = false
        }
        let state = Mutex(State())
        let writeLock = Mutex(())

        func send(_ reply: PoolReply) {
            let bytes = PoolFrame.encode(reply.json)
            let ok = writeLock.withLock { _ in FileDescriptors.writeAll(PoolChild.replyFD, bytes) }
            // The parent is gone: nobody can use the result.
            if !ok { _exit(0) }
        }

        /// A run arrived (reader thread). True when no runner is active: the caller starts one.
        func received(seq: Int64, message: TaskMessage) -> Bool {
            state.withLock { s in
                s.waiting.append((seq, message))
                if s.active { return false }
                s.active = true
                return true
            }
        }

        /// A cancel frame arrived (cancel thread): cancel the running task, or remember a run not started yet.
        /// `softTimeLimit`: the soft limit is the reason, recorded for the task's context before it is cancelled.
        func cancel(seq: Int64, softTimeLimit: Double?) {
            state.withLock { s in
                if let running = s.running, running.seq == seq {
                    if let softTimeLimit { s.stopReason?.softTimeLimitPassed(softTimeLimit) }
                    s.running?.cancelled = true
                    s.task?.task.cancel()
                } else if seq > s.lastTaken {
                    s.cancelled.insert(seq)
                }
            }
        }

        /// The next run, or nil (and the runner is no longer active) when none is waiting. `cancelled`: answer it
        /// without running it.
        func take() -> (seq: Int64, message: TaskMessage, cancelled: Bool)? {
            state.withLock { s in
                guard s.head < s.waiting.count else {
                    s.active = false
                    return nil
                }
                let next = s.waiting[s.head]
                s.head += 1
                if s.head == s.waiting.count {
                    s.waiting.removeAll(keepingCapacity: true)
                    s.head = 0
                }
                s.lastTaken = next.seq
                if s.cancelled.remove(next.seq) != nil { return (next.seq, next.message, true) }
                s.running = (next.seq, false)
                return (next.seq, next.message, false)
            }
        }

        /// Run `seq` starts in the current task: cancel threads may cancel it from now on.
        func starting(_ seq: Int64, stopReason: StopReason) {
            withUnsafeCurrentTask { task in
                guard let task else { return }
                let cancelled = state.withLock { s -> Bool in
                    guard s.running?.seq == seq else { return false }
                    if s.running?.cancelled == true { return true }
                    s.task = RunningTask(task: task)
                    s.stopReason = stopReason
                    return false
                }
                // Cancelled between being taken and starting.
                if cancelled { task.cancel() }
            }
        }

        /// Run `seq` ended (answered).
        func finished(_ seq: Int64) {
            state.withLock { s in
                s.task = nil
                s.running = nil
                s.stopReason = nil
            }
        }

        func wasCancelled(_ seq: Int64) -> Bool {
            state.withLock { $0.running?.seq == seq && $0.running?.cancelled == true }
        }
    }

    /// Runs the child loop; never returns.
    public static func run(registry: TaskRegistry, hostname: String, logger: Logger) async -> Never {
        // Ctrl-C, SIGQUIT and a SIGTERM to the whole process group (`kill -TERM -- -PGID`, a supervisor that signals
        // every process) reach the children too: the parent decides what happens to running tasks. It ends a child
        // by closing its pipe (the child exits at EOF) or with SIGKILL.
        signal(SIGINT, SIG_IGN)
        signal(SIGQUIT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let current = Current()
        current.send(.hello(version: PoolFrame.version, pid: getpid()))
        let runner = Runner(registry: registry, hostname: hostname, logger: logger, current: current)
        FileDescriptors.startThread {
            readFrames(requestFD, logger: logger) { request in
                switch request {
                case .run(let seq, let message):
                    // Idle: run it here and now, until it suspends (a quick task is answered before the next read).
                    if current.received(seq: seq, message: message) { Task.immediate { await runner.drain() } }
                case .cancel(let seq, let soft):
                    current.cancel(seq: seq, softTimeLimit: soft)
                }
            }
        }
        FileDescriptors.startThread {
            readFrames(cancelFD, logger: logger) { request in
                if case .cancel(let seq, let soft) = request { current.cancel(seq: seq, softTimeLimit: soft) }
            }
        }
        while true { try? await Task.sleep(for: .seconds(3600)) }
    }

    /// Reads frames from `fd` until EOF, then exits the process: the parent closed our pipes (retire, shutdown) or
    /// died. Either way: leave now.
    private static func readFrames(_ fd: Int32, logger: Logger, _ handle: (PoolRequest) -> Void) -> Never {
        var decoder = PoolFrameDecoder()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = FileDescriptors.readSome(fd, into: &buffer)
            if n == 0 { _exit(0) }
            decoder.append(buffer[0..<n])
            while let frame = try? decoder.next() {
                guard let request = PoolRequest(json: frame) else {
                    logger.error(
                        "pool child ignored a frame it does not understand",
                        metadata: ["frame": .string(frame.jsonString)])
                    continue
                }
                handle(request)
            }
        }
    }

    /// Works through the waiting runs one at a time, answering each, until none is left.
    struct Runner: Sendable {
        let registry: TaskRegistry
        let hostname: String
        let logger: Logger
        let current: Current

        func drain() async {
            while let next = current.take() {
                if next.cancelled {
                    current.send(.done(seq: next.seq, result: .cancelled, rss: 0))
                    continue
                }
                let seq = next.seq
                let stopReason = StopReason()
                current.starting(seq, stopReason: stopReason)
                let result = await execute(
                    next.message, registry: registry, hostname: hostname, logger: logger,
                    stopReason: stopReason, wasCancelled: { current.wasCancelled(seq) },
                    states: TaskStateSink { state, meta in
                        current.send(.state(seq: seq, state: state.rawValue, meta: meta))
                    })
                current.finished(seq)
                // Answer after `finished`: no cancel for this run can reach the next one.
                current.send(.done(seq: seq, result: result, rss: 0))
                if Task.isCancelled {
                    // This task was cancelled for that run; the next ones run in a fresh one.
                    let runner = self
                    Task { await runner.drain() }
                    return
                }
            }
        }
    }

    /// Runs one task and maps what it throws, as the async pool would (retry requests, autoretry, cancellation).
    static func execute(
        _ message: TaskMessage, registry: TaskRegistry, hostname: String, logger: Logger,
        stopReason: StopReason = StopReason(), wasCancelled: @Sendable () -> Bool, states: TaskStateSink? = nil
    ) async -> PoolReply.RunResult {
        guard let task = registry[message.name] else {
            return .failure(
                TaskFailure(type: "NotRegistered", arguments: [.string(message.name)], module: "celery.exceptions"))
        }
        var log = logger
        log[metadataKey: "task.id"] = .string(message.id)
        log[metadataKey: "task.name"] = .string(message.name)
        // The parent reports STARTED (it knows when the run starts); states the task reports go to the parent.
        let context = TaskContext(
            message: message, logger: log, hostname: hostname, options: task.options, stopReason: stopReason,
            states: states)
        do {
            return .success(try await task.run(message, context))
        } catch let retry as RetryRequest {
            return .retry(countdown: retry.countdown, maxRetries: retry.maxRetries, cause: retry.cause)
        } catch {
            if wasCancelled() { return .cancelled }
            if let auto = task.options.autoRetry, auto.matches(error) {
                return .retry(
                    countdown: auto.backoff.delay(forRetries: message.retries), maxRetries: nil,
                    cause: TaskFailure(error: error))
            }
            return .failure(TaskFailure(error: error))
        }
    }
}
