import CeleriacCore
import FoundationEssentials
import Synchronization

/// A clock that moves only when a test says so: both its wall time and its monotonic time advance together.
///
/// Give it to ``InMemoryBroker`` and to the worker (``CeleriacTestApp`` does both) and countdowns, ETAs, retries
/// with backoff, `expires`, time limits and rate limits happen when the test calls ``advance(by:)``, not when a
/// real second has passed:
///
/// ```swift
/// let clock = ManualClock()
/// try await client.delay(Tasks.add, .init(x: 1, y: 2), options: .init(countdown: 10))
/// await clock.advance(by: .seconds(10))       // the broker's delay queues release it now
/// ```
public final class ManualClock: CeleriacClock {
    private struct Sleeper {
        let deadline: Duration
        let continuation: CheckedContinuation<Void, any Error>
    }
    private struct State {
        var uptime: Duration = .zero
        var sleepers: [UInt64: Sleeper] = [:]
        var nextID: UInt64 = 0
        /// Tests waiting for at least `count` sleepers due within `horizon` (any sleeper when nil).
        var watchers: [UInt64: (count: Int, horizon: Duration?, continuation: CheckedContinuation<Void, Never>)] = [:]

        func sleeping(dueWithin horizon: Duration?) -> Int {
            guard let horizon else { return sleepers.count }
            return sleepers.values.filter { $0.deadline <= uptime + horizon }.count
        }

        mutating func dueWatchers() -> [CheckedContinuation<Void, Never>] {
            let ready = watchers.filter { $0.value.count <= sleeping(dueWithin: $0.value.horizon) }
            for key in ready.keys { watchers[key] = nil }
            return ready.values.map(\.continuation)
        }
    }
    private let start: Date
    private let state = Mutex(State())

    /// A clock whose wall time starts at `start` (by default, the real time now, so that messages it stamps look
    /// current to a peer) and whose monotonic time starts at zero.
    public init(start: Date = Date()) {
        self.start = start
    }

    /// `start` plus the time advanced so far.
    public var now: Date { start.addingTimeInterval(Self.seconds(state.withLock { $0.uptime })) }
    /// The time advanced so far with ``advance(by:)``; zero at creation.
    public var uptime: Duration { state.withLock { $0.uptime } }

    /// How many tasks wait on this clock now.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// Returns once the clock has advanced by `duration` from now.
    public func sleep(for duration: Duration) async throws {
        try await sleep(until: uptime + duration)
    }

    /// Returns once the wall time has reached `date`, at once if it has.
    public func sleep(untilWallTime date: Date) async throws {
        let seconds = date.timeIntervalSince(start)
        try await sleep(until: .nanoseconds(Int64((seconds * 1e9).rounded(.up))))
    }

    /// Returns once the clock has reached `deadline`, at once if it has.
    public func sleep(until deadline: Duration) async throws {
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let (resumeNow, watchers) = state.withLock { s -> (Bool, [CheckedContinuation<Void, Never>]) in
                    if deadline <= s.uptime || Task.isCancelled { return (true, []) }
                    s.sleepers[id] = Sleeper(deadline: deadline, continuation: c)
                    return (false, s.dueWatchers())
                }
                if resumeNow { c.resume() }
                watchers.forEach { $0.resume() }
            }
        } onCancel: {
            let sleeper = state.withLock { $0.sleepers.removeValue(forKey: id) }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
        try Task.checkCancellation()
    }

    /// Waits until at least `count` tasks sleep on this clock, at most `limit` of real time, so that an
    /// ``advance(by:)`` that follows wakes a sleeper that measures its time from when it started to sleep.
    ///
    /// A running worker always has a sleeper of its own (its watchdog, due in 30 s): pass `dueWithin` to count only
    /// sleepers due within that much of now, e.g. `waitForSleepers(dueWithin: .seconds(1))` before
    /// `advance(by: .seconds(1))` waits for the task that sleeps one second, not for the watchdog.
    ///
    /// - Throws: ``ContractViolation`` when they did not come within `limit`.
    public func waitForSleepers(
        _ count: Int = 1, dueWithin horizon: Duration? = nil, within limit: Duration = .seconds(10)
    ) async throws {
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let now = self.state.withLock { s -> Bool in
                        if s.sleeping(dueWithin: horizon) >= count { return true }
                        s.watchers[id] = (count, horizon, c)
                        return false
                    }
                    if now { c.resume() }
                }
            }
            group.addTask { try? await Task.sleep(for: limit) }
            _ = await group.next()
            group.cancelAll()
            state.withLock { $0.watchers.removeValue(forKey: id) }?.continuation.resume()
        }
        let sleeping = state.withLock { $0.sleeping(dueWithin: horizon) }
        guard sleeping >= count else {
            throw ContractViolation("waited \(limit) for \(count) sleeper(s) on the manual clock; saw \(sleeping)")
        }
    }

    /// Moves both clocks forward and wakes, in deadline order, every sleeper whose time has come.
    ///
    /// The woken tasks run after this returns; wait for what they do (a result, a delivery), never for time.
    public func advance(by duration: Duration) async {
        let due = state.withLock { s -> [Sleeper] in
            s.uptime += max(.zero, duration)
            let now = s.uptime
            let ready = s.sleepers.filter { $0.value.deadline <= now }
            for key in ready.keys { s.sleepers[key] = nil }
            return ready.values.sorted { $0.deadline < $1.deadline }
        }
        for sleeper in due { sleeper.continuation.resume() }
        // Let the woken tasks take their first step before the caller goes on.
        await Task.yield()
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
