import Foundation
import Synchronization

/// Beat's notion of time, injectable so tests move time instead of sleeping.
public protocol BeatClock: Sendable {
    var now: Date { get }
    /// Returns at `deadline` (or later); may return early (beat re-checks what is due). Throws on cancellation.
    func sleep(until deadline: Date) async throws
}

/// Wall-clock time; sleeps exactly until the deadline (no polling tick).
public struct SystemBeatClock: BeatClock {
    /// The wall clock.
    public init() {}
    /// The current time (`Date()`).
    public var now: Date { Date() }
    /// Sleeps until `deadline` with zero timer tolerance; returns at once for a deadline in the past.
    ///
    /// - Throws: `CancellationError` when the task is cancelled.
    public func sleep(until deadline: Date) async throws {
        let seconds = deadline.timeIntervalSinceNow
        if seconds > 0 {
            try await Task.sleep(for: .nanoseconds(Int64((seconds * 1e9).rounded(.up))), tolerance: .zero)
        }
        try Task.checkCancellation()
    }
}

/// A clock that only moves when a test calls ``advance(to:)``. Sleepers wake when the time reaches their deadline.
public final class ManualBeatClock: BeatClock {
    private struct Sleeper { let deadline: Date; let continuation: CheckedContinuation<Void, any Error> }
    private struct State {
        var now: Date; var sleepers: [UInt64: Sleeper] = [:]; var nextID: UInt64 = 0;
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state: Mutex<State>

    /// A clock stopped at `start`.
    public init(_ start: Date) { state = Mutex(State(now: start)) }

    /// The time the test last set (``advance(to:)``), or the start.
    public var now: Date { state.withLock { $0.now } }

    /// How many tasks are sleeping on this clock.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// Suspends until a test advances the clock to `deadline` or past it; returns at once when the time is already
    /// there.
    ///
    /// - Throws: `CancellationError` when the task is cancelled.
    public func sleep(until deadline: Date) async throws {
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1; return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let (resumeNow, waiters) = state.withLock { s -> (Bool, [CheckedContinuation<Void, Never>]) in
                    if s.now >= deadline || Task.isCancelled { return (true, []) }
                    s.sleepers[id] = Sleeper(deadline: deadline, continuation: c)
                    let w = s.waiters
                    s.waiters = []
                    return (false, w)
                }
                waiters.forEach { $0.resume() }
                if resumeNow { c.resume() }
            }
        } onCancel: {
            let s = state.withLock { $0.sleepers.removeValue(forKey: id) }
            s?.continuation.resume(throwing: CancellationError())
        }
        try Task.checkCancellation()
    }

    /// Sets the time and wakes every sleeper whose deadline has come.
    public func advance(to date: Date) {
        let due = state.withLock { s -> [Sleeper] in
            s.now = date
            let ready = s.sleepers.filter { $0.value.deadline <= date }
            for k in ready.keys { s.sleepers[k] = nil }
            return Array(ready.values)
        }
        due.forEach { $0.continuation.resume() }
    }

    /// Moves the time forward by `seconds` and wakes the sleepers that are due (see ``advance(to:)``).
    public func advance(by seconds: Double) { advance(to: now.addingTimeInterval(seconds)) }

    /// Waits until some task sleeps on this clock (the beat loop has caught up with the time).
    public func waitForSleeper() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { s -> Bool in
                if !s.sleepers.isEmpty { return true }
                s.waiters.append(c)
                return false
            }
            if ready { c.resume() }
        }
    }
}
