import CeleriacCore
import Synchronization

/// One task handed to the process pool, from ``ProcessPool/run(_:task:context:limits:)`` until it ends: the
/// message, where it was sent, whether it was cancelled, and the timers of its time limits.
///
/// A run may be sent more than once (it comes back as `.requeue` when the child it waited in died before starting
/// it); each attempt waits on a fresh continuation. The timers start when the run becomes the head of its child's
/// queue, i.e. when the child really starts it, not when it was written to the pipe.
final class PoolRun: Sendable {
    struct State {
        /// The current attempt's waiter; resumed exactly once.
        var continuation: CheckedContinuation<ChildProcess.Event, Never>?
        /// Where the current attempt was sent (nil while it waits in the pool's backlog).
        var child: ChildProcess?
        var seq: Int64 = 0
        /// Cancellation was requested (revoke with terminate, cold shutdown).
        var cancelled = false
        var softFired = false
        var timers: [Task<Void, Never>] = []
        /// Answered or failed: no timer may start any more.
        var finished = false
    }

    let message: TaskMessage
    let limits: TaskMessage.TimeLimit
    /// The worker's context for this run: states the child reports, and STARTED, go through it.
    let context: TaskContext?
    let state = Mutex(State())

    init(message: TaskMessage, limits: TaskMessage.TimeLimit, context: TaskContext? = nil) {
        self.message = message
        self.limits = limits
        self.context = context
    }

    var isCancelled: Bool { state.withLock { $0.cancelled } }
    var softFired: Bool { state.withLock { $0.softFired } }

    /// Installs the waiter of the next attempt.
    func wait(_ continuation: CheckedContinuation<ChildProcess.Event, Never>) {
        state.withLock { $0.continuation = continuation }
    }

    /// Ends the current attempt and stops its timers. After `.requeue` the run will be sent again; other events
    /// end it.
    func resume(_ event: ChildProcess.Event) {
        let (continuation, timers) = state.withLock {
            s -> (CheckedContinuation<ChildProcess.Event, Never>?, [Task<Void, Never>]) in
            defer { s.continuation = nil }
            defer { s.timers = [] }
            s.child = nil
            s.seq = 0
            if case .requeue = event {} else { s.finished = true }
            return (s.continuation, s.timers)
        }
        timers.forEach { $0.cancel() }
        continuation?.resume(returning: event)
    }

    /// The child is about to write the run frame (under its write lock). Returns true when the run was cancelled
    /// meanwhile: the caller sends the cancel frame right after.
    func sent(to child: ChildProcess, seq: Int64) -> Bool {
        state.withLock { s in
            s.child = child
            s.seq = seq
            return s.cancelled
        }
    }

    /// Marks the run cancelled; returns where it was sent (the caller tells that child), or nil when it was not
    /// sent (the caller takes it out of the backlog).
    func cancel() -> (child: ChildProcess, seq: Int64)? {
        state.withLock { s in
            s.cancelled = true
            guard let child = s.child, s.seq > 0 else { return nil }
            return (child, s.seq)
        }
    }

    /// The run became the head of `child`'s queue: it is running now, so its time limits start counting.
    func started(on child: ChildProcess, seq: Int64) {
        context?.reportStarted(pid: child.pid)
        guard limits.soft != nil || limits.hard != nil else { return }
        var timers: [Task<Void, Never>] = []
        if let soft = limits.soft {
            timers.append(
                Task { [self] in
                    try? await Task.sleep(for: .milliseconds(Int64(soft * 1000)))
                    if Task.isCancelled { return }
                    state.withLock { $0.softFired = true }
                    child.cancel(seq: seq, softTimeLimit: soft)
                })
        }
        if let hard = limits.hard {
            timers.append(
                Task {
                    try? await Task.sleep(for: .milliseconds(Int64(hard * 1000)))
                    if !Task.isCancelled { child.kill(ifRunning: seq, reason: "time_limit") }
                })
        }
        let late = state.withLock { s -> Bool in
            if s.finished { return true }
            s.timers += timers
            return false
        }
        // Answered before its timers existed (a fast task): they must not fire.
        if late { timers.forEach { $0.cancel() } }
    }
}
