import Synchronization

/// A gate a test task waits on until the test opens it: holds a task "running" for as long as a test needs,
/// without sleeping.
///
/// ```swift
/// let gate = Gate()
/// registry.register(Tasks.report) { _, _ in await gate.wait(); return "done" }
/// // ... look at the worker while the task runs (active, revoke, shutdown), then:
/// gate.open()
/// ```
public final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    /// A closed gate.
    public init() {}

    /// Returns once the gate is open (at once if it is).
    public func wait() async {
        await withCheckedContinuation { c in
            let resume = state.withLock { s -> Bool in
                if s.open { return true }
                s.waiters.append(c)
                return false
            }
            if resume { c.resume() }
        }
    }

    /// Opens the gate for every waiter, now and later.
    public func open() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        waiters.forEach { $0.resume() }
    }
}
