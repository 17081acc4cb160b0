import CeleriacCore
import Foundation

/// Reads a schedule file (YAML, read with Yams; see ``ScheduleYAML`` for how scalars are typed):
///
/// ```yaml
/// timezone: Europe/Berlin          # default zone for crontab entries (default UTC)
/// entries:
///   add-every-2s:
///     task: demo.add
///     every: 2s                    # number of seconds, or 500ms / 30s / 5m / 2h / 1d
///     args: [1, 2]
///   nightly-report:
///     task: demo.echo
///     cron: "0 3 * * mon-fri"      # minute hour day_of_month month_of_year day_of_week
///     kwargs: {value: nightly}
///     catch_up: all                # skip | once (default) | all
///     catch_up_limit: 5
///   first-monday:
///     task: demo.noop
///     crontab: {minute: 0, hour: 9, day_of_week: mon, day_of_month: 1-7}
///     timezone: America/New_York
///   launch:
///     task: demo.noop
///     at: "2026-12-01T09:00:00+01:00"
/// ```
public enum ScheduleFile {
    static let entryKeys: Set<String> = [
        "task", "every", "cron", "crontab", "at", "timezone", "args", "kwargs", "queue",
        "routing_key", "exchange", "priority", "expires", "headers", "soft_time_limit",
        "time_limit", "catch_up", "catch_up_limit", "anchor",
    ]

    /// Parses schedule YAML into a validated ``BeatSchedule``. `source` names the text in error messages (the path).
    ///
    /// - Throws: ``ScheduleError`` for YAML outside the subset, an unknown key, a bad value or an invalid entry;
    ///   the error names the entry and the field.
    public static func parse(_ text: String, source: String = "schedule") throws(ScheduleError) -> BeatSchedule {
        let root: JSONValue
        do throws(ScheduleYAML.ParseError) {
            root = try ScheduleYAML.parse(ScheduleFile.checkedIndentation(text))
        } catch {
            throw ScheduleError(field: "yaml", message: "\(source) \(error.description)")
        }
        guard let top = root.objectValue else {
            throw ScheduleError(field: "yaml", message: "\(source): the top level must be a mapping with 'entries:'")
        }
        for key in top.keys where !["timezone", "entries"].contains(key) {
            throw ScheduleError(field: key, message: "unknown top-level key; allowed: timezone, entries")
        }
        let defaultZone = try zone(top["timezone"] ?? .null, entry: nil) ?? TimeZone(identifier: "UTC")!
        guard let entries = top["entries"]?.objectValue else {
            throw ScheduleError(field: "entries", message: "missing or not a mapping of entry name to entry")
        }
        var out: [ScheduleEntry] = []
        for (name, value) in entries {
            do throws(ScheduleError) {
                out.append(try entry(name: name, value, defaultZone: defaultZone))
            } catch {
                throw error.named(name)
            }
        }
        return try BeatSchedule(out)
    }

    static func zone(_ v: JSONValue, entry: String?) throws(ScheduleError) -> TimeZone? {
        if v.isNull { return nil }
        guard let id = v.stringValue, let z = TimeZone(identifier: id) else {
            throw ScheduleError(
                entry: entry, field: "timezone",
                message: "'\(v)' is not an IANA time zone (e.g. Europe/Berlin, America/New_York, UTC)")
        }
        return z
    }

    static func entry(name: String, _ v: JSONValue, defaultZone: TimeZone) throws(ScheduleError) -> ScheduleEntry {
        guard let o = v.objectValue else {
            throw ScheduleError(field: "entry", message: "must be a mapping (task:, every:/cron:/crontab:/at:, ...)")
        }
        for key in o.keys where !entryKeys.contains(key) {
            throw ScheduleError(
                field: key, message: "unknown field; allowed: \(entryKeys.sorted().joined(separator: ", "))")
        }
        guard let task = o["task"]?.stringValue else {
            throw ScheduleError(field: "task", message: "missing; name the task to send, e.g. demo.add")
        }
        let kinds = ["every", "cron", "crontab", "at"].filter { o[$0] != nil }
        guard kinds.count == 1 else {
            throw ScheduleError(
                field: kinds.isEmpty ? "every" : kinds[1],
                message: kinds.isEmpty
                    ? "no schedule; give exactly one of every, cron, crontab, at"
                    : "give exactly one of every, cron, crontab, at (found \(kinds.joined(separator: ", ")))")
        }
        let tz = try zone(o["timezone"] ?? .null, entry: nil) ?? defaultZone
        let schedule: Schedule
        switch kinds[0] {
        case "every":
            let seconds = try duration(o["every"]!, field: "every")
            var anchor = Date(timeIntervalSince1970: 0)
            if let a = o["anchor"] { anchor = try instant(a, field: "anchor") }
            schedule = .every(seconds: seconds, anchor: anchor)
        case "cron":
            guard let s = o["cron"]?.stringValue else {
                throw ScheduleError(field: "cron", message: "must be a string like \"0 3 * * mon-fri\"")
            }
            schedule = .crontab(try Crontab(s), zone: tz)
        case "crontab":
            guard let c = o["crontab"]?.objectValue else {
                throw ScheduleError(
                    field: "crontab",
                    message: "must be a mapping {minute:, hour:, day_of_week:, day_of_month:, month_of_year:}")
            }
            let allowed: Set<String> = ["minute", "hour", "day_of_week", "day_of_month", "month_of_year"]
            for k in c.keys where !allowed.contains(k) {
                throw ScheduleError(
                    field: "crontab.\(k)",
                    message: "unknown crontab field; allowed: \(allowed.sorted().joined(separator: ", "))")
            }
            func f(_ k: String) throws(ScheduleError) -> String {
                guard let x = c[k] else { return "*" }
                switch x {
                case .string(let s): return s
                case .int(let i): return String(i)
                case .array(let a):
                    return a.map { v in v.stringValue ?? v.intValue.map { String($0) } ?? "?" }.joined(separator: ",")
                default: throw ScheduleError(field: "crontab.\(k)", message: "must be a string, a number or a list")
                }
            }
            schedule = .crontab(
                try Crontab(
                    minute: f("minute"), hour: f("hour"), dayOfWeek: f("day_of_week"),
                    dayOfMonth: f("day_of_month"), monthOfYear: f("month_of_year")), zone: tz)
        default:
            schedule = .at(try instant(o["at"]!, field: "at"))
        }
        var e = ScheduleEntry(name: name, task: task, schedule: schedule)
        if let a = o["args"] {
            guard let arr = a.arrayValue else {
                throw ScheduleError(field: "args", message: "must be a list, e.g. [1, 2]")
            }
            e.args = arr
        }
        if let k = o["kwargs"] {
            guard let obj = k.objectValue else {
                throw ScheduleError(field: "kwargs", message: "must be a mapping, e.g. {x: 1}")
            }
            e.kwargs = obj
        }
        if let h = o["headers"] {
            guard let obj = h.objectValue else { throw ScheduleError(field: "headers", message: "must be a mapping") }
            e.headers = obj
        }
        e.queue = try string(o, "queue")
        e.routingKey = try string(o, "routing_key")
        e.exchange = try string(o, "exchange")
        if let p = o["priority"] {
            guard let n = p.intValue, (0...9).contains(n) else {
                throw ScheduleError(field: "priority", message: "must be an integer 0-9, got \(p)")
            }
            e.priority = UInt8(n)
        }
        if let x = o["expires"] { e.expires = try duration(x, field: "expires") }
        if let x = o["soft_time_limit"] { e.softTimeLimit = try duration(x, field: "soft_time_limit") }
        if let x = o["time_limit"] { e.hardTimeLimit = try duration(x, field: "time_limit") }
        let limit: Int? = o["catch_up_limit"]?.intValue.map { Int($0) }
        if o["catch_up_limit"] != nil && limit == nil {
            throw ScheduleError(field: "catch_up_limit", message: "must be an integer")
        }
        switch o["catch_up"]?.stringValue ?? (o["catch_up"] == nil ? "once" : "?") {
        case "skip": e.catchUp = .skip
        case "once": e.catchUp = .once
        case "all": e.catchUp = .all(limit: limit ?? 100)
        default: throw ScheduleError(field: "catch_up", message: "must be skip, once or all, got \(o["catch_up"]!)")
        }
        if limit != nil, case .all = e.catchUp {
        } else if limit != nil {
            throw ScheduleError(field: "catch_up_limit", message: "only applies with catch_up: all")
        }
        return e
    }

    static func string(_ o: JSONObject, _ key: String) throws(ScheduleError) -> String? {
        guard let v = o[key] else { return nil }
        guard let s = v.stringValue, !s.isEmpty else {
            throw ScheduleError(field: key, message: "must be a non-empty string")
        }
        return s
    }

    /// Seconds from a number or a string with a unit: `500ms`, `30s`, `5m`, `2h`, `1d`.
    static func duration(_ v: JSONValue, field: String) throws(ScheduleError) -> Double {
        if let d = v.doubleValue {
            guard d > 0 else { throw ScheduleError(field: field, message: "must be positive, got \(d)") }
            return d
        }
        guard let s = v.stringValue?.trimmingCharacters(in: .whitespaces) else {
            throw ScheduleError(field: field, message: "must be seconds or a duration like 30s, 5m, 2h")
        }
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        for (u, factor) in units where s.hasSuffix(u) {
            if let n = Double(s.dropLast(u.count).trimmingCharacters(in: .whitespaces)), n > 0 { return n * factor }
        }
        throw ScheduleError(
            field: field, message: "'\(s)' is not a duration; write seconds (30) or 500ms, 30s, 5m, 2h, 1d")
    }

    static func instant(_ v: JSONValue, field: String) throws(ScheduleError) -> Date {
        guard let s = v.stringValue, let d = ISOTime.parse(s, requiringOffset: true) else {
            throw ScheduleError(
                field: field,
                message: "'\(v)' is not an ISO 8601 instant with an offset, e.g. 2026-12-01T09:00:00+01:00")
        }
        return d
    }
}

extension ScheduleFile {
    /// `text` unchanged, or a ``ScheduleYAML/ParseError`` for a tab in a line's indentation, which YAML forbids and
    /// libyaml reports only as "a character that cannot start any token".
    static func checkedIndentation(_ text: String) throws(ScheduleYAML.ParseError) -> String {
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where line.prefix(while: { $0 == " " || $0 == "\t" }).contains("\t") {
            throw ScheduleYAML.ParseError(line: i + 1, message: "tabs are not allowed for indentation; use spaces")
        }
        return text
    }

    /// Parses an instant with its offset, `YYYY-MM-DDTHH:MM[:SS][.fff](Z|±HH:MM)` (`ISOTime.parse(_:requiringOffset:)`,
    /// with the offset required).
    public static func parseInstant(_ s: String) -> Date? { ISOTime.parse(s, requiringOffset: true) }
}
