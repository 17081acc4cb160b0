import CeleriacCore
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One pool child: its pid, the two pipe ends the parent holds, and a reader thread that turns the child's frames
/// into events and reaps the child when its pipe closes.
final class ChildProcess: Sendable {
    /// What a run waits for.
    enum Event: Sendable {
        case reply(PoolReply.RunResult, rss: Int64)
        case died(ChildExit)
        /// The child was already gone; the task was not sent.
        case gone
    }

    struct State {
        var pending: (seq: Int64, continuation: CheckedContinuation<Event, Never>)?
        var nextSeq: Int64 = 0
        var tasksRun = 0
        /// Why the parent ended this child (time_limit, max_tasks, max_memory, shutdown), if it did.
        var endReason: String?
        var helloReceived = false
        var writeClosed = false
        /// Set once the child is reaped; no run can start after that.
        var exit: ChildExit?
    }

    let pid: pid_t
    private let toChild: Int32
    private let fromChild: Int32
    let state = Mutex(State())
    /// Serializes writes to the child's pipe (frames must not interleave).
    private let writeLock = Mutex(())

    private init(pid: pid_t, toChild: Int32, fromChild: Int32) {
        self.pid = pid
        self.toChild = toChild
        self.fromChild = fromChild
    }

    /// Spawns `executable arguments...` with the request pipe on fd 3 and the reply pipe on fd 4; every other
    /// descriptor of the parent (broker sockets, other children's pipes) is closed in the child.
    static func spawn(executable: String, arguments: [String]) -> Result<ChildProcess, SpawnError> {
        guard let requests = FileDescriptors.pipe() else { return .failure(SpawnError(executable: executable, code: errno)) }
        guard let replies = FileDescriptors.pipe() else {
            FileDescriptors.close(requests.read); FileDescriptors.close(requests.write)
            return .failure(SpawnError(executable: executable, code: errno))
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, requests.read, 3)
        posix_spawn_file_actions_adddup2(&actions, replies.write, 4)
        // Broker sockets and other children's pipes stay out of the child (its pipe must see EOF when we die).
        _ = GNU.addCloseFrom?(&actions, 5)
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
        guard rc == 0 else {
            FileDescriptors.close(requests.write)
            FileDescriptors.close(replies.read)
            return .failure(SpawnError(executable: executable, code: rc))
        }
        return .success(ChildProcess(pid: pid, toChild: requests.write, fromChild: replies.read))
    }

    struct SpawnError: Error, CustomStringConvertible {
        let executable: String
        let code: Int32
        var description: String { "cannot start pool child \(executable): \(String(cString: strerror(code)))" }
    }

    /// Reads frames until the child's pipe closes, then reaps the child. Runs on a thread of its own.
    func startReader(onHello: @escaping @Sendable (ChildProcess, Int64) -> Void, onExit: @escaping @Sendable (ChildProcess, ChildExit) -> Void) {
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
                        let waiting = state.withLock { s -> CheckedContinuation<Event, Never>? in
                            guard let p = s.pending, p.seq == seq else { return nil }
                            s.pending = nil
                            s.tasksRun += 1
                            return p.continuation
                        }
                        waiting?.resume(returning: .reply(result, rss: rss))
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
            let waiting = state.withLock { s -> CheckedContinuation<Event, Never>? in
                s.exit = exit
                defer { s.pending = nil }
                return s.pending?.continuation
            }
            waiting?.resume(returning: .died(exit))
            onExit(self, exit)
        }
    }

    /// Sends a task; the reply (or the child's death) resumes `continuation`. Returns nil without sending when
    /// the child is already gone (it died while idle), so the caller can take another one.
    func begin(_ message: TaskMessage, continuation: CheckedContinuation<Event, Never>) -> Int64? {
        let seq = state.withLock { s -> Int64? in
            guard s.exit == nil else { return nil }
            s.nextSeq += 1
            s.pending = (s.nextSeq, continuation)
            return s.nextSeq
        }
        guard let seq else { return nil }
        // A failed write means the child is gone: the reader sees EOF and resumes the run with `.died`.
        send(PoolRequest.run(seq: seq, message: message).json)
        return seq
    }

    func cancel(seq: Int64) { send(PoolRequest.cancel(seq: seq).json) }

    @discardableResult
    private func send(_ frame: JSONValue) -> Bool {
        let bytes = PoolFrame.encode(frame)
        return writeLock.withLock { _ in
            guard !state.withLock({ $0.writeClosed }) else { return false }
            return FileDescriptors.writeAll(toChild, bytes)
        }
    }

    /// Closes the request pipe: the child sees EOF and exits (graceful retirement or shutdown).
    func closeWrite(reason: String? = nil) {
        writeLock.withLock { _ in
            let wasOpen = state.withLock { s -> Bool in
                if let reason, s.endReason == nil { s.endReason = reason }
                defer { s.writeClosed = true }
                return !s.writeClosed
            }
            if wasOpen { FileDescriptors.close(toChild) }
        }
    }

    /// SIGKILL if run `seq` is still running (a hard time limit must not hit the next task).
    func kill(ifRunning seq: Int64, reason: String) {
        let running = state.withLock { s -> Bool in
            guard s.pending?.seq == seq, s.exit == nil else { return false }
            if s.endReason == nil { s.endReason = reason }
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
