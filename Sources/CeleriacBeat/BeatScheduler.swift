import Foundation

/// One run to send: an entry at a scheduled instant. Fire decisions are keyed by this pair.
public struct Fire: Sendable, Hashable {
    /// Name of the ``ScheduleEntry`` this run belongs to.
    public let entry: String
    /// The scheduled instant of this run (not the time it is sent).
    public let instant: Date
    /// The run of `entry` at `instant`.
    public init(entry: String, instant: Date) {
        self.entry = entry
        self.instant = instant
    }
}

/// Runs dropped by a catch-up policy (never silently: beat logs and counts them).
public struct Dropped: Sendable, Hashable {
    /// Name of the ``ScheduleEntry`` whose runs were dropped.
    public let entry: String
    /// How many runs were dropped.
    public let count: Int
    /// The entry's policy that dropped them.
    public let policy: CatchUp
    /// The scheduled instant of the oldest dropped run.
    public let first: Date
    /// The scheduled instant of the newest dropped run.
    public let last: Date
    /// A record of `count` runs of `entry` dropped by `policy`, scheduled from `first` to `last`.
    public init(entry: String, count: Int, policy: CatchUp, first: Date, last: Date) {
        self.entry = entry
        self.count = count
        self.policy = policy
        self.first = first
        self.last = last
    }
}

/// The pure decision core of beat: given what was sent (the state) and the time, which runs are due.
///
/// Each entry has a cursor: the last scheduled instant that was handled (sent, or dropped by policy). Runs due
/// are the fire instants in `(cursor, now]`. A run at most `grace` seconds late is on time and always sent; older
/// ones were missed (beat was down or not the leader) and the entry's ``CatchUp`` policy decides.
/// Because decisions are keyed by instant, an early wake-up finds nothing due and a repeated evaluation never
/// re-sends: a run is sent only if its instant is after the cursor, and the cursor moves past it when it is sent.
public struct BeatScheduler: Sendable {
    /// The entries decided on.
    public let schedule: BeatSchedule
    /// How many seconds late a run may be and still be on time (always sent, whatever the catch-up policy).
    public let grace: Double
    /// Entry name -> the last scheduled instant handled (sent or dropped); runs after it are still to come.
    public private(set) var cursor: [String: Date]
    /// Places each entry's cursor at its last sent instant in `state`, so runs missed while beat was down are found
    /// by ``due(now:)`` and go to the entry's catch-up policy; an entry never sent starts at `start`, so its first
    /// run is its next instant after `start` and its past is not caught up.
    ///
    /// - Parameters:
    ///   - schedule: the entries to decide on.
    ///   - state: the last sent scheduled instant per entry, as loaded from the ``BeatStateStore``.
    ///   - start: when this scheduler starts deciding (``Beat`` passes its clock's now when it becomes the leader).
    ///   - grace: seconds a run may be late and still be sent on time, whatever the policy; 1 by default.
    public init(schedule: BeatSchedule, state: BeatState, start: Date, grace: Double = 1.0) {
        self.schedule = schedule
        self.grace = grace
        var cursor: [String: Date] = [:]
        for e in schedule.entries {
            // An entry never run before starts now: its first run is the next instant (no catch-up of history).
            cursor[e.name] = state.last(e.name) ?? start
        }
        self.cursor = cursor
    }

    /// The earliest instant at which some entry is due, or nil when nothing will ever fire again.
    public func nextDue() -> Date? {
        schedule.entries.compactMap { e in cursor[e.name].flatMap { e.schedule.next(after: $0) } }.min()
    }

    /// The next fire instant of `entry` after its cursor, or nil for an unknown entry or one that will not fire again.
    public func next(_ entry: String) -> Date? {
        guard let e = schedule[entry], let c = cursor[entry] else { return nil }
        return e.schedule.next(after: c)
    }

    /// The runs to send now, oldest first per entry, and the runs dropped by policy (their cursor has moved past them).
    public mutating func due(now: Date) -> (fires: [Fire], dropped: [Dropped]) {
        var fires: [Fire] = []
        var dropped: [Dropped] = []
        for e in schedule.entries {
            guard var t = cursor[e.name] else { continue }
            var missed: [Date] = []
            var missedCount = 0
            var firstMissed: Date?
            var onTime: [Date] = []
            let keep: Int
            switch e.catchUp {
            case .skip: keep = 0
            case .once: keep = 1
            case .all(let limit): keep = limit
            }
            while let n = e.schedule.next(after: t), n <= now {
                if now.timeIntervalSince(n) <= grace {
                    onTime.append(n)
                } else {
                    missedCount += 1
                    if firstMissed == nil { firstMissed = n }
                    missed.append(n)
                    if missed.count > keep + 1 { missed.removeFirst() }
                }
                t = n
            }
            var send: [Date] = []
            switch e.catchUp {
            case .skip: break
            case .once: if onTime.isEmpty, let last = missed.last { send = [last] }
            case .all(let limit): send = Array(missed.suffix(limit))
            }
            let droppedCount = missedCount - send.count
            if droppedCount > 0, let first = firstMissed, let last = missed.last {
                let lastDropped = send.first.map { s in missed.last { $0 < s } ?? first } ?? last
                dropped.append(
                    Dropped(entry: e.name, count: droppedCount, policy: e.catchUp, first: first, last: lastDropped))
                // Handled: move the cursor past what was dropped (but not past what is still to be sent).
                cursor[e.name] = max(cursor[e.name]!, lastDropped)
            }
            fires += (send + onTime).map { Fire(entry: e.name, instant: $0) }
        }
        return (fires, dropped)
    }

    /// Records that `fire` was sent: its entry's cursor moves to its instant.
    public mutating func markSent(_ fire: Fire) {
        cursor[fire.entry] = max(cursor[fire.entry] ?? fire.instant, fire.instant)
    }
}
