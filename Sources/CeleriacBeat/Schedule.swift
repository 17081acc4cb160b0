import CeleriacCore
import Foundation

/// A schedule or schedule-file problem, naming the entry and the field, with what to write instead.
public struct ScheduleError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The entry's name, when the problem is in one entry.
    public var entry: String?
    /// The field at fault, as spelled in the schedule file (e.g. `catch_up_limit`, `crontab.hour`).
    public var field: String
    /// What is wrong, and what to write instead.
    public var message: String
    /// An error about `field`, in `entry` when given.
    public init(entry: String? = nil, field: String, message: String) {
        self.entry = entry
        self.field = field
        self.message = message
    }
    /// `schedule entry 'E', field 'F': message`, without the entry part when there is none.
    public var description: String {
        if let entry { return "schedule entry '\(entry)', field '\(field)': \(message)" }
        return "schedule field '\(field)': \(message)"
    }
    func named(_ entry: String) -> ScheduleError { var e = self; e.entry = self.entry ?? entry; return e }
}

/// When an entry fires.
public enum Schedule: Sendable, Hashable {
    /// Every `seconds`, at instants `anchor + k × seconds` (anchor defaults to the Unix epoch), so every beat process
    /// computes the same instants and a restart does not shift them.
    case every(seconds: Double, anchor: Date)
    /// Crontab fields read as wall-clock time in `zone`.
    case crontab(Crontab, zone: TimeZone)
    /// Once, at an instant.
    case at(Date)

    /// Every `seconds`, anchored at the Unix epoch: `every(60)` fires at the start of every minute (UTC).
    public static func every(_ seconds: Double) -> Schedule {
        .every(seconds: seconds, anchor: Date(timeIntervalSince1970: 0))
    }

    /// The first fire instant strictly after `date`, or nil when there is none (an `at` in the past).
    public func next(after date: Date) -> Date? {
        switch self {
        case .every(let seconds, let anchor):
            let k = ((date.timeIntervalSince(anchor)) / seconds).rounded(.down) + 1
            var t = anchor.addingTimeInterval(k * seconds)
            if t <= date { t = t.addingTimeInterval(seconds) }  // rounding
            return t
        case .crontab(let cron, let zone):
            return cron.next(after: date, in: zone)
        case .at(let instant):
            return instant > date ? instant : nil
        }
    }

    /// The zone instants are shown in (UTC for intervals and `at`).
    public var zone: TimeZone {
        if case .crontab(_, let zone) = self { return zone }
        return TimeZone(identifier: "UTC")!
    }

    /// One line for logs and `beat explain`, e.g. `every 30 s` or `crontab '0 3 * * *' in Europe/Berlin`.
    public var summary: String {
        switch self {
        case .every(let s, _): "every \(s.plain) s"
        case .crontab(let c, let z): "crontab '\(c)' in \(z.identifier)"
        case .at(let d): "at \(ZonedTime.format(d, in: TimeZone(identifier: "UTC")!))"
        }
    }
}

extension Double {
    var plain: String { self == rounded() && abs(self) < 1e15 ? String(Int64(self)) : String(self) }
}

/// What beat does with runs it missed while it was down (or not the leader).
public enum CatchUp: Sendable, Hashable, CustomStringConvertible {
    /// Drop missed runs (logged and counted), run again at the next instant.
    case skip
    /// Send one run for all the missed ones (the most recent missed instant). The default.
    case once
    /// Send every missed run, oldest first, but at most `limit` (the most recent ones); older ones are dropped and logged.
    case all(limit: Int)

    /// The policy with its limit, as logged: `skip`, `once` or `all(limit N)`.
    public var description: String {
        switch self {
        case .skip: "skip"
        case .once: "once"
        case .all(let limit): "all(limit \(limit))"
        }
    }
    /// The policy without the limit (`skip`, `once`, `all`): the `policy` label of the missed-runs metric.
    public var label: String {
        switch self {
        case .skip: "skip"
        case .once: "once"
        case .all: "all"
        }
    }
}

/// One periodic task.
public struct ScheduleEntry: Sendable {
    /// Unique within the schedule; the state and the task ids are keyed by it.
    public var name: String
    /// The registered task name to send, e.g. `demo.add`.
    public var task: String
    /// When the entry fires.
    public var schedule: Schedule
    /// Positional arguments of every run.
    public var args: [JSONValue]
    /// Keyword arguments of every run.
    public var kwargs: JSONObject
    /// Queue to send to; nil uses the client's default queue (`celery`).
    public var queue: String?
    /// Routing key to publish with; nil uses the queue name.
    public var routingKey: String?
    /// Exchange to publish to; nil uses the default exchange (`""`).
    public var exchange: String?
    /// Message priority 0-9 (Celery's `priority`; the queue needs `x-max-priority`); nil sends none.
    public var priority: UInt8?
    /// Seconds after the scheduled instant after which a worker drops the task (REVOKED "expired").
    public var expires: Double?
    /// Extra message headers; beat adds `beat_entry` and `beat_instant` to them.
    public var headers: JSONObject
    /// Seconds after which the worker raises the soft time limit in the task (Celery's `soft_time_limit`).
    public var softTimeLimit: Double?
    /// Seconds after which the worker stops the task (Celery's `time_limit`).
    public var hardTimeLimit: Double?
    /// What to do with runs missed while no beat was sending (``CatchUp/once`` by default).
    public var catchUp: CatchUp

    /// An entry; only `name`, `task` and `schedule` are required. ``BeatSchedule/init(_:)`` validates it.
    public init(
        name: String, task: String, schedule: Schedule, args: [JSONValue] = [], kwargs: JSONObject = [:],
        queue: String? = nil, routingKey: String? = nil, exchange: String? = nil, priority: UInt8? = nil,
        expires: Double? = nil, headers: JSONObject = [:], softTimeLimit: Double? = nil, hardTimeLimit: Double? = nil,
        catchUp: CatchUp = .once
    ) {
        self.name = name
        self.task = task
        self.schedule = schedule
        self.args = args
        self.kwargs = kwargs
        self.queue = queue
        self.routingKey = routingKey
        self.exchange = exchange
        self.priority = priority
        self.expires = expires
        self.headers = headers
        self.softTimeLimit = softTimeLimit
        self.hardTimeLimit = hardTimeLimit
        self.catchUp = catchUp
    }

    /// The next `count` fire instants after `date`.
    public func upcoming(after date: Date, count: Int = 10) -> [Date] {
        var out: [Date] = []
        var t = date
        while out.count < count, let n = schedule.next(after: t) {
            out.append(n)
            t = n
        }
        return out
    }

    /// A deterministic task id for the run of this entry at `instant` (UUID-shaped), so that a duplicate send of the
    /// same run carries the same id and can be recognised.
    public func taskID(for instant: Date) -> String {
        BeatTaskID.make(entry: name, instant: instant)
    }
}

/// Beat's deterministic task ids: the same entry and instant always give the same id, on any host.
public enum BeatTaskID {
    /// Two 64-bit FNV-1a hashes of `entry|milliseconds` formatted as a UUID (version nibble 8: custom).
    public static func make(entry: String, instant: Date) -> String {
        let ms = Int64((instant.timeIntervalSince1970 * 1000).rounded())
        let key = Array("\(entry)|\(ms)".utf8)
        func fnv(_ seed: UInt64) -> UInt64 {
            var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
            for b in key { h ^= UInt64(b); h = h &* 0x100_0000_01b3 }
            return h
        }
        var hi = fnv(0), lo = fnv(0x9e37_79b9_7f4a_7c15)
        hi = (hi & ~0xF000) | 0x8000  // version 8
        lo = (lo & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000  // RFC 4122 variant
        func hex(_ v: UInt64, _ digits: Int) -> String {
            let s = String(v, radix: 16)
            return String(repeating: "0", count: max(0, digits - s.count)) + s
        }
        let h = hex(hi, 16), l = hex(lo, 16)
        return "\(h.prefix(8))-\(h.dropFirst(8).prefix(4))-\(h.suffix(4))-\(l.prefix(4))-\(l.suffix(12))"
    }
}

/// A validated set of entries.
public struct BeatSchedule: Sendable {
    /// The entries, in the order given.
    public private(set) var entries: [ScheduleEntry]

    /// - Throws: ``ScheduleError`` for an empty or duplicate name, an empty task name, a non-positive interval,
    ///   a crontab that never fires, a priority above 9, a negative `expires`, or `all` with a limit below 1.
    public init(_ entries: [ScheduleEntry]) throws(ScheduleError) {
        var seen = Set<String>()
        for e in entries {
            guard !e.name.isEmpty else {
                throw ScheduleError(field: "name", message: "is empty; give each entry a unique name")
            }
            guard seen.insert(e.name).inserted else {
                throw ScheduleError(
                    entry: e.name, field: "name", message: "is used by two entries; entry names must be unique")
            }
            guard !e.task.isEmpty else {
                throw ScheduleError(
                    entry: e.name, field: "task", message: "is empty; name a registered task, e.g. demo.add")
            }
            switch e.schedule {
            case .every(let s, _):
                guard s > 0, s.isFinite else {
                    throw ScheduleError(
                        entry: e.name, field: "every", message: "must be a positive number of seconds, got \(s)")
                }
            case .crontab(let c, let zone):
                if c.next(after: Date(timeIntervalSince1970: 1_700_000_000), in: zone) == nil {
                    throw ScheduleError(
                        entry: e.name, field: "crontab",
                        message:
                            "'\(c)' never fires (no day matches day_of_month, month_of_year and day_of_week together)")
                }
            case .at: break
            }
            if let p = e.priority, p > 9 {
                throw ScheduleError(entry: e.name, field: "priority", message: "must be 0-9, got \(p)")
            }
            if let x = e.expires, !(x > 0) {
                throw ScheduleError(
                    entry: e.name, field: "expires", message: "must be a positive number of seconds, got \(x)")
            }
            if case .all(let limit) = e.catchUp, limit < 1 {
                throw ScheduleError(entry: e.name, field: "catch_up_limit", message: "must be at least 1, got \(limit)")
            }
        }
        self.entries = entries
    }

    /// The entry named `name`, or nil.
    public subscript(name: String) -> ScheduleEntry? { entries.first { $0.name == name } }
}
