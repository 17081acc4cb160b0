import CeleriacCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One pool child: its pid, the three pipe ends the parent holds (requests, cancels, replies), the runs sent to it,
/// and a reader thread that turns the child's frames into events and reaps the child when its pipe closes.
///
/// Runs are pipelined: up to the pool's depth may be in the child at once. The child runs them one after the other
/// in the order sent and answers in that order, so the oldest unanswered run (the head of ``State/queue``) is the
/// one running and the others have not started. When the child dies the head fails (`.died`); the others come back
/// as `.requeue`, to be run on another child.
final class ChildProcess: Sendable {
    /// What a run waits for.
    enum Event: Sendable {
        case reply(PoolReply.RunResult, rss: Int64)
        /// Child `pid` died while running this task. `timeLimit`: the parent killed it for this run's hard limit.
        case died(ChildExit, pid: pid_t, timeLimit: Bool)
        /// The task never started here (the child was gone, retiring, or died while the task waited behind
        /// another): run it elsewhere.
        case requeue
        /// The pool is stopping: nothing new runs.
        case stopped
    }

    /// A run sent to this child and not answered yet.
    struct Sent {
        let seq: Int64
        let run: PoolRun
    }

    struct State {
        /// Runs sent and not answered, oldest (running) first.
        var queue: [Sent] = []
        /// Places promised to runs by the pool that are not sent yet (see ``ChildProcess/reserve(quota:)``).
        var reserved = 0
        /// Runs promised or sent over the child's life (``ProcessPool/Configuration/maxTasksPerChild``).
        var assigned = 0
        var nextSeq: Int64 = 0
        var tasksRun = 0
        /// Why the parent ended this child (time_limit, max_tasks, max_memory, shrink, shutdown), if it did.
        var endReason: String?
        /// The run a hard time limit killed the child for.
        var killedSeq: Int64?
        /// Why it takes no more runs (max_tasks, max_memory, shrink, shutdown); its pipe closes once the queue is empty.
        var draining: String?
        var helloReceived = false
        var writeClosed = false
        /// The first run whose frame could not be written (the child was gone): it and later ones never started.
        var failedWriteSeq: Int64?
        /// Set once the child is reaped; no run can start after that.
        var exit: ChildExit?

        /// Runs sent or promised: what the pool compares with its pipeline depth.
        var load: Int { queue.count + reserved }
    }

    let pid: pid_t
    private let toChild: Int32
    /// Cancel frames go on a pipe of their own (fd 5 in the child), read by a thread that is never busy running a
    /// task: a cancel reaches the running task even while the child's request reader is running it.
    private let cancelsToChild: Int32
    private let fromChild: Int32
    let state = Mutex(State())
    /// Serializes writes to the child's pipe (frames must not interleave) and keeps runs in `seq` order.
    private let writeLock = Mutex(())

    private init(pid: pid_t, toChild: Int32, cancelsToChild: Int32, fromChild: Int32) {
        self.pid = pid
        self.toChild = toChild
        self.cancelsToChild = cancelsToChild
        self.fromChild = fromChild
    }

    /// Spawns `executable arguments...` with the request pipe on fd 3, the reply pipe on fd 4 and the cancel pipe on
    /// fd 5; every other descriptor of the parent (broker sockets, other children's pipes) is closed in the child.
    static func spawn(executable: String, arguments: [String]) -> Result<ChildProcess, SpawnError> {
        guard let requests = FileDescriptors.pipe() else {
            return .failure(SpawnError(executable: executable, code: errno))
        }
        guard let replies = FileDescriptors.pipe() else {
            FileDescriptors.close(requests.read); FileDescriptors.close(requests.write)
            return .failure(SpawnError(executable: executable, code: errno))
        }
        guard let cancels = FileDescriptors.pipe() else {
            for fd in [requests.read, requests.write, replies.read, replies.write] { FileDescriptors.close(fd) }
            return .failure(SpawnError(executable: executable, code: errno))
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, requests.read, 3)
        posix_spawn_file_actions_adddup2(&actions, replies.write, 4)
        posix_spawn_file_actions_adddup2(&actions, cancels.read, 5)
        // Broker sockets and other children's pipes stay out of the child (its pipe must see EOF when we die).
        _ = GNU.addCloseFrom?(&actions, 6)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Default signal handlers and an empty mask in the child, whatever the parent's threads block or trap.
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        FileDescriptors.close(requests.read)
        FileDescriptors.close(replies.write)
        FileDescriptors.close(cancels.read)
        guard rc == 0 else {
            FileDescriptors.close(requests.write)
            FileDescriptors.close(replies.read)
            FileDescriptors.close(cancels.write)
            return .failure(SpawnError(executable: executable, code: rc))
        }
        return .success(
            ChildProcess(pid: pid, toChild: requests.write, cancelsToChild: cancels.write, fromChild: replies.read))
    }

    struct SpawnError: Error, CustomStringConvertible {
        let executable: String
        let code: Int32
        var description: String { "cannot start pool child \(executable): \(String(cString: strerror(code)))" }
    }

    /// Reads frames until the child's pipe closes, then reaps the child. Runs on a thread of its own.
    /// `onReply` runs after each answer, before the answered run resumes (the pool sends the next run from here).
    func startReader(
        onHello: @escaping @Sendable (ChildProcess, Int64) -> Void,
        onReply: @escaping @Sendable (ChildProcess, Int64) -> Void,
        onExit: @escaping @Sendable (ChildProcess, ChildExit) -> Void
    ) {
        FileDescriptors.startThread { [self] in
            var decoder = PoolFrameDecoder()
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            reading: while true {
                let n = FileDescriptors.readSome(fromChild, into: &buffer)
                if n == 0 { break }
                decoder.append(buffer[0..<n])
                while true {
                    let frame: JSONValue?
                    do { frame = try decoder.next() } catch {
                        // Not our protocol: stop the child; it is reaped below.
                        _ = Glibc.kill(pid, SIGKILL)
                        break reading
                    }
                    guard let frame else { break }
                    switch PoolReply(json: frame) {
                    case .hello(let version, _):
                        state.withLock { $0.helloReceived = true }
                        onHello(self, version)
                    case .done(let seq, let result, let rss):
                        answered(seq: seq, result: result, rss: rss, onReply: onReply)
                    case .state(let seq, let state, let meta):
                        // Frames come in order: a run's states before its `done`, so it is still in the queue.
                        let run = self.state.withLock { s in s.queue.first(where: { $0.seq == seq })?.run }
                        run?.context?.updateState(TaskState(state), meta: meta)
                    case nil:
                        break
                    }
                }
            }
            FileDescriptors.close(fromChild)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            let exit = ChildExit(status: status)
            closeWrite()
            let (sent, killed, unsentFrom) = state.withLock { s -> ([Sent], Int64?, Int64?) in
                s.exit = exit
                defer { s.queue = [] }
                return (s.queue, s.killedSeq, s.failedWriteSeq)
            }
            // The head was running (unless its frame never got through); the others had not started.
            for (i, entry) in sent.enumerated() {
                if i == 0, unsentFrom.map({ entry.seq < $0 }) ?? true {
                    entry.run.resume(.died(exit, pid: pid, timeLimit: killed == entry.seq))
                } else {
                    entry.run.resume(.requeue)
                }
            }
            onExit(self, exit)
        }
    }

    /// Run `seq` answered: it leaves the queue and the next one, which the child starts now, becomes the head.
    private func answered(
        seq: Int64, result: PoolReply.RunResult, rss: Int64, onReply: @Sendable (ChildProcess, Int64) -> Void
    ) {
        let (done, next, close) = state.withLock { s -> (PoolRun?, Sent?, String?) in
            // Always the head: the child answers in order.
            guard let i = s.queue.firstIndex(where: { $0.seq == seq }) else { return (nil, nil, nil) }
            let done = s.queue.remove(at: i)
            s.tasksRun += 1
            return (done.run, i == 0 ? s.queue.first : nil, s.load == 0 ? s.draining : nil)
        }
        guard let done else { return }
        if let next { next.run.started(on: self, seq: next.seq) }
        if let close { closeWrite(reason: close) }
        onReply(self, rss)
        done.resume(.reply(result, rss: rss))
    }

    /// Promises a run a place in this child (called under the pool's lock, which chose the child); the run is sent
    /// with ``begin(_:)``. `quota` (max tasks per child): the child takes no more once it is reached.
    func reserve(quota: Int?) {
        state.withLock { s in
            s.reserved += 1
            s.assigned += 1
            if let quota, s.assigned >= quota, s.draining == nil { s.draining = "max_tasks" }
        }
    }

    /// Sends a run that has a place reserved. False, with nothing sent, when the child is already gone or closed
    /// (it died or retired meanwhile): the caller runs it elsewhere.
    func begin(_ run: PoolRun) -> Bool {
        let (sent, head, close) = writeLock.withLock { _ -> (Int64?, Bool, String?) in
            let slot = state.withLock { s -> (seq: Int64, head: Bool)? in
                s.reserved -= 1
                guard s.exit == nil, !s.writeClosed else { return nil }
                s.nextSeq += 1
                s.queue.append(Sent(seq: s.nextSeq, run: run))
                return (s.nextSeq, s.queue.count == 1)
            }
            guard let slot else { return (nil, false, state.withLock { $0.load == 0 ? $0.draining : nil }) }
            let cancelled = run.sent(to: self, seq: slot.seq)
            if !write(PoolRequest.run(seq: slot.seq, message: run.message).json) {
                // The child is gone (EPIPE): it never saw this run; the reader requeues it after reaping.
                state.withLock { s in if s.failedWriteSeq == nil { s.failedWriteSeq = slot.seq } }
            } else if cancelled {
                _ = write(PoolRequest.cancel(seq: slot.seq).json, to: cancelsToChild)
            }
            return (slot.seq, slot.head, nil)
        }
        if let close { closeWrite(reason: close) }
        guard let sent else { return false }
        // First in the queue: the child starts it as soon as it reads it.
        if head { run.started(on: self, seq: sent) }
        return true
    }

    /// Cancels run `seq`: the child cancels it if running, or answers `cancelled` without running it when it
    /// reaches the head (the cancel may arrive before the run: the child remembers it).
    func cancel(seq: Int64, softTimeLimit: Double? = nil) {
        writeLock.withLock { _ in
            _ = write(PoolRequest.cancel(seq: seq, softTimeLimit: softTimeLimit).json, to: cancelsToChild)
        }
    }

    /// Writes one frame; the caller holds the write lock (frames must not interleave, and runs go out in `seq` order).
    private func write(_ frame: JSONValue, to fd: Int32? = nil) -> Bool {
        guard !state.withLock({ $0.writeClosed }) else { return false }
        return FileDescriptors.writeAll(fd ?? toChild, PoolFrame.encode(frame))
    }

    /// Takes no more runs and closes the request pipe once the runs already sent are answered: the child finishes
    /// them, sees EOF and exits (max tasks, max memory, pool_shrink, warm stop).
    func retire(reason: String) {
        let close = state.withLock { s -> Bool in
            if s.draining == nil { s.draining = reason }
            return s.load == 0
        }
        if close { closeWrite(reason: reason) }
    }

    /// Closes the request and cancel pipes: the child sees EOF and exits at once.
    func closeWrite(reason: String? = nil) {
        writeLock.withLock { _ in
            let wasOpen = state.withLock { s -> Bool in
                if let reason, s.endReason == nil { s.endReason = reason }
                defer { s.writeClosed = true }
                return !s.writeClosed
            }
            if wasOpen {
                FileDescriptors.close(toChild)
                FileDescriptors.close(cancelsToChild)
            }
        }
    }

    /// SIGKILL if run `seq` is the one running (a hard time limit must not hit the next task). If its answer is
    /// already on the way, the kill hits the next run, which then fails with `WorkerLostError` (it may have started),
    /// not with `TimeLimitExceeded`: `killedSeq` names the run the kill was meant for.
    func kill(ifRunning seq: Int64, reason: String) {
        let running = state.withLock { s -> Bool in
            guard s.queue.first?.seq == seq, s.exit == nil else { return false }
            if s.endReason == nil { s.endReason = reason }
            s.killedSeq = seq
            return true
        }
        if running { _ = Glibc.kill(pid, SIGKILL) }
    }

    /// SIGKILL, remembering why (the reader reports the exit).
    func kill(reason: String) {
        state.withLock { if $0.endReason == nil { $0.endReason = reason } }
        _ = Glibc.kill(pid, SIGKILL)
    }
}
