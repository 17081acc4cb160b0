import FoundationEssentials

/// The time Celeriac reads: wall time for what travels in messages (ETA, expires, timestamps), monotonic time for
/// what is measured locally (waits, time limits, rate limits, the watchdog).
///
/// The worker, the in-memory broker and the client take one as a dependency, so a test moves time with
/// `ManualClock.advance(by:)` (in `CeleriacTesting`) instead of sleeping: countdowns, retries, expiry and limits
/// then happen when the test says, on both clocks at once.
public protocol CeleriacClock: Sendable {
    /// Wall-clock time now.
    var now: Date { get }
    /// Monotonic time since an arbitrary origin; it never goes back.
    var uptime: Duration { get }
    /// Waits `duration` of monotonic time.
    ///
    /// - Throws: `CancellationError` when the calling task is cancelled.
    func sleep(for duration: Duration) async throws
    /// Waits until monotonic time reaches `deadline` (an ``uptime`` value); returns at once when it has passed.
    ///
    /// Prefer it when the deadline is fixed before the wait begins (a time limit, a timer): the wait then ends at
    /// the same time however late the waiting task starts.
    func sleep(until deadline: Duration) async throws
    /// Waits until wall time reaches `date` (an ETA); returns at once when it has passed.
    func sleep(untilWallTime date: Date) async throws
}

extension CeleriacClock {
    /// Default: converts the wall-time distance to `date` into a monotonic ``sleep(for:)`` (rounded up to the
    /// nanosecond), so a clock that moves wall and monotonic time together (``SystemClock``, `ManualClock`) needs only
    /// ``sleep(for:)``. Returns at once when `date` has passed.
    ///
    /// - Throws: `CancellationError` when the calling task is cancelled, even if no wait was needed.
    public func sleep(untilWallTime date: Date) async throws {
        let seconds = date.timeIntervalSince(now)
        if seconds > 0 { try await sleep(for: .nanoseconds(Int64((seconds * 1e9).rounded(.up)))) }
        try Task.checkCancellation()
    }

    /// Default: sleeps the remaining `deadline - uptime` with ``sleep(for:)``; returns at once when it has passed.
    ///
    /// - Throws: `CancellationError` when the calling task is cancelled, even if no wait was needed.
    public func sleep(until deadline: Duration) async throws {
        let wait = deadline - uptime
        if wait > .zero { try await sleep(for: wait) }
        try Task.checkCancellation()
    }
}

/// The machine's clocks: `Date()` and `ContinuousClock`.
public struct SystemClock: CeleriacClock {
    private static let origin = ContinuousClock.now

    /// The machine's clocks; holds no state, so any number of them agree.
    public init() {}

    /// `Date()`: the system's wall clock, which may jump when it is set.
    public var now: Date { Date() }
    /// `ContinuousClock` time since the first ``SystemClock`` use in this process; keeps counting during sleep.
    public var uptime: Duration { ContinuousClock.now - Self.origin }

    /// `Task.sleep(for:)` on the continuous clock.
    ///
    /// - Throws: `CancellationError` when the calling task is cancelled.
    public func sleep(for duration: Duration) async throws {
        try await Task.sleep(for: duration)
    }
}

extension CeleriacClock where Self == SystemClock {
    /// The machine's clocks.
    public static var system: SystemClock { SystemClock() }
}
