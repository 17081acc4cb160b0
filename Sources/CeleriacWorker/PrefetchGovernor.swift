/// Sizes a worker's prefetch from its pace: while it finishes tasks quickly, a deep prefetch (the broker's round
/// trip to refill a slot would otherwise idle it); while it finishes them slowly (long tasks, or little work),
/// exactly the concurrency, so a busy worker never holds long tasks an idle one could run (celery#2788).
///
/// The rule: a worker may hold about ``Policy/reservedWork`` of work at its current pace, that is, prefetch ≈
/// completions per second × reserved work, measured over the last ``Policy/window`` completions. The multiplier
/// (prefetch = concurrency × multiplier) follows, kept within the policy's floor and ceiling. Pace rather than run
/// time, because a process pool's run times include the wait in a child's pipeline, which grows with prefetch. It
/// grows only when the wanted multiplier has doubled and shrinks only when it has halved, so a pace that hovers
/// near a boundary does not make the consumers subscribe again and again; a window of 32 makes a lone stall of a
/// few milliseconds in a fast drain change nothing, while one long task (or an idle spell) brings prefetch back
/// down at once.
///
/// It grows only into its share of a backlog. Prefetch beyond the concurrency pays only while messages wait in the
/// queue (otherwise the broker hands each new message to a consumer with room as it arrives, whatever the depth);
/// without a backlog it would only take work that another worker could start. So a grow is a
/// ``Proposal/growIfBacklog(to:share:)``: the intake counts the messages ready in its queues, each divided by the
/// queue's consumers (this worker's share), and answers ``backlogChecked(share:concurrency:)``. The multiplier then
/// grows by at most that share (so a worker never reserves more than its share of what waits), and only when that
/// still at least doubles it or reaches the wanted value. Declined, no grow is proposed again for a window of
/// completions (one queue count per window at most).
///
/// A pure value: `DeliveryIntake` owns one, feeds it the clock's uptime at each finished task, counts the backlog
/// when asked, and re-subscribes when the multiplier changes.
struct PrefetchGovernor: Sendable, Equatable {
    struct Policy: Sendable, Equatable {
        /// The multiplier at start and the least ever used.
        var floor: Int
        /// The most ever used.
        var ceiling: Int
        /// Work, in seconds of the worker's current pace, that it may hold beyond what it runs.
        var reservedWork: Double
        /// Completions the pace is measured over; nothing changes before this many were seen.
        var window: Int = 32
    }

    /// What a completion asks of the intake.
    enum Proposal: Sendable, Equatable {
        /// The multiplier came down to this (applied): subscribe again with it.
        case shrank(to: Int)
        /// The pace wants this multiplier, which takes `share` more messages: count this worker's share of the
        /// messages waiting and answer with ``PrefetchGovernor/backlogChecked(share:concurrency:)``.
        case growIfBacklog(to: Int, share: Int)
    }

    let policy: Policy
    /// The multiplier in force.
    private(set) var multiplier: Int
    /// A grow proposed and not answered yet.
    private(set) var pendingGrow: Int?
    /// Completions to go before a grow may be proposed again (after one was declined).
    private var growHold = 0
    /// Uptimes (seconds) of the last completions, oldest overwritten first.
    private var times: [Double] = []
    private var next = 0

    init(policy: Policy) {
        var policy = policy
        policy.floor = max(1, policy.floor)
        policy.ceiling = max(policy.floor, policy.ceiling)
        policy.window = max(2, policy.window)
        self.policy = policy
        self.multiplier = policy.floor
        times.reserveCapacity(policy.window)
    }

    /// Completions per second over the window (nil until it is full; infinite when they all came at once).
    var pace: Double? {
        guard times.count == policy.window else { return nil }
        let oldest = times[next], newest = times[(next + policy.window - 1) % policy.window]
        let span = newest - oldest
        return span > 0 ? Double(policy.window - 1) / span : .infinity
    }

    /// A task finished at `uptime` (seconds, monotonic) on a worker of `concurrency` slots; returns what prefetch
    /// should do, or nil to keep it.
    mutating func finished(at uptime: Double, concurrency: Int) -> Proposal? {
        guard uptime.isFinite else { return nil }
        if times.count < policy.window {
            times.append(uptime)
        } else {
            times[next] = uptime
            next = (next + 1) % policy.window
        }
        if growHold > 0 { growHold -= 1 }
        guard let pace else { return nil }
        let raw = pace * policy.reservedWork / Double(max(1, concurrency))
        let grow = multiplier < policy.ceiling && (raw >= Double(2 * multiplier) || raw >= Double(policy.ceiling))
        let shrink = multiplier > policy.floor && raw < Double(multiplier) / 2
        guard grow || shrink else { return nil }
        let wanted = Int(min(raw, Double(policy.ceiling)).rounded(.down))
        let bounded = min(policy.ceiling, max(policy.floor, wanted))
        guard bounded != multiplier else { return nil }
        if shrink {
            pendingGrow = nil
            multiplier = bounded
            return .shrank(to: bounded)
        }
        guard pendingGrow == nil, growHold == 0 else { return nil }
        pendingGrow = bounded
        return .growIfBacklog(to: bounded, share: (bounded - multiplier) * max(1, concurrency))
    }

    /// The intake counted this worker's `share` of the messages waiting in its queues (ready ÷ consumers) for the
    /// pending grow. Returns the new multiplier when it grows: the wanted one, or less when the share pays for less
    /// (at least double the current one). nil when the share is too small (no grow is proposed for the next window
    /// of completions) or nothing is pending any more (a shrink came first).
    mutating func backlogChecked(share: Int, concurrency: Int) -> Int? {
        guard let wanted = pendingGrow else { return nil }
        pendingGrow = nil
        let affordable = multiplier + min(policy.ceiling, max(0, share) / max(1, concurrency))
        let target = min(wanted, affordable)
        guard target == wanted || target >= 2 * multiplier else {
            growHold = policy.window
            return nil
        }
        multiplier = target
        return target
    }
}
