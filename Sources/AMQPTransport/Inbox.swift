import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A unit of work for a connection thread: `run` executes on that thread; `fail` is called instead when the
/// connection is closed before the job runs.
struct ConnectionJob: Sendable {
    let run: @Sendable (ConnectionCore) -> Void
    let fail: @Sendable (AMQPError) -> Void
}

/// The mailbox between async callers and one connection thread.
///
/// Callers append jobs under the mutex; the thread takes them all at once. When the thread is about to block
/// in `poll(2)` it marks itself sleeping, and only then does a submit write a byte to the wake pipe, so a busy
/// thread costs callers no system call.
final class Inbox: Sendable {
    private struct State {
        var jobs: [ConnectionJob] = []
        var sleeping = false
        var closed = false
    }
    private let state = Mutex(State())
    /// The connection thread's pthread id, once it runs (0 before).
    let owner = Atomic<UInt>(0)
    /// The pipe is created once and closed in deinit; the fds are plain integers.
    let wakeReadFD: Int32
    private let wakeWriteFD: Int32

    init() {
        var fds: [Int32] = [0, 0]
        let rc = pipe(&fds)
        precondition(rc == 0, "pipe() failed: cannot create the wake pipe of an AMQP connection thread")
        wakeReadFD = fds[0]
        wakeWriteFD = fds[1]
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
    }

    deinit {
        closeFD(wakeReadFD)
        closeFD(wakeWriteFD)
    }

    /// Queues a job. Returns false (and the job is not queued) when the connection is closed.
    func submit(_ job: ConnectionJob) -> Bool {
        let (accepted, wake) = state.withLock { s -> (Bool, Bool) in
            if s.closed { return (false, false) }
            s.jobs.append(job)
            let wake = s.sleeping
            s.sleeping = false
            return (true, wake)
        }
        if wake {
            var byte: UInt8 = 1
            _ = write(wakeWriteFD, &byte, 1)
        }
        return accepted
    }

    func takeAll() -> [ConnectionJob] {
        state.withLock { s in
            let jobs = s.jobs
            s.jobs.removeAll(keepingCapacity: true)
            return jobs
        }
    }

    var hasJobs: Bool { state.withLock { !$0.jobs.isEmpty } }

    /// Marks the thread as about to sleep. Returns false when jobs are waiting (do not sleep then).
    func prepareToSleep() -> Bool {
        state.withLock { s in
            if !s.jobs.isEmpty { return false }
            s.sleeping = true
            return true
        }
    }

    /// Called by the thread after waking: clears the flag and drains the pipe (only when poll saw it readable: a
    /// wake by the socket costs no extra system call).
    func didWake(drainPipe: Bool) {
        state.withLock { $0.sleeping = false }
        guard drainPipe else { return }
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(wakeReadFD, &buffer, buffer.count) > 0 {}
    }

    /// Refuses further jobs and returns those still queued.
    func close() -> [ConnectionJob] {
        state.withLock { s in
            s.closed = true
            let jobs = s.jobs
            s.jobs = []
            return jobs
        }
    }
}

private func closeFD(_ fd: Int32) {
    #if canImport(Glibc)
        _ = Glibc.close(fd)
    #elseif canImport(Musl)
        _ = Musl.close(fd)
    #else
        _ = Darwin.close(fd)
    #endif
}

/// Starts a detached OS thread running `body`.
///
/// librabbitmq connections are not thread-safe, so each one lives on a thread of its own for its whole life.
func startThread(name: String, _ body: @escaping @Sendable () -> Void) {
    final class Box: Sendable {
        let body: @Sendable () -> Void
        let name: String
        init(_ body: @escaping @Sendable () -> Void, name: String) { self.body = body; self.name = name }
    }
    let box = Unmanaged.passRetained(Box(body, name: name)).toOpaque()
    var tid = pthread_t()
    let rc = pthread_create(
        &tid, nil,
        { arg in
            let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            box.body()
            return nil
        }, box)
    precondition(rc == 0, "pthread_create failed (\(rc)): cannot start the AMQP connection thread '\(name)'")
    pthread_detach(tid)
}
