import Foundation

/// A crontab schedule with Celery's five fields and semantics.
///
/// Fields: `minute` (0-59), `hour` (0-23), `day_of_week` (0-6, 0 = Sunday, or `sun`...`sat`), `day_of_month` (1-31),
/// `month_of_year` (1-12 or `jan`...`dec`). Each field is `*`, a number, a name, a range `a-b` (wrapping, e.g.
/// `fri-mon`), a step `*/n` or `a-b/n`, or a comma-separated list of these. As in Celery (and unlike Unix cron),
/// a day must match **both** `day_of_month` and `day_of_week`, so `day_of_month: 1-7, day_of_week: mon` is "the first
/// Monday of the month".
public struct Crontab: Sendable, Hashable, CustomStringConvertible {
    /// Minutes of the hour that fire (0-59), ascending.
    public let minutes: [Int]
    /// Hours of the day that fire (0-23), ascending.
    public let hours: [Int]
    /// Weekdays that fire, 0 = Sunday ... 6 = Saturday.
    public let daysOfWeek: Set<Int>
    /// Days of the month that fire (1-31).
    public let daysOfMonth: Set<Int>
    /// Months that fire, 1 = January ... 12 = December.
    public let months: Set<Int>
    /// The fields as written, for messages and `explain`.
    public let source: (minute: String, hour: String, dayOfWeek: String, dayOfMonth: String, monthOfYear: String)

    /// Equal when the expanded values are equal, whatever the written ``source``: `*/15` equals `0,15,30,45`.
    public static func == (a: Crontab, b: Crontab) -> Bool {
        a.minutes == b.minutes && a.hours == b.hours && a.daysOfWeek == b.daysOfWeek && a.daysOfMonth == b.daysOfMonth
            && a.months == b.months
    }
    /// Hashes the minutes and hours only (enough to be consistent with `==`).
    public func hash(into h: inout Hasher) { h.combine(minutes); h.combine(hours) }

    /// Celery's keyword form: `crontab(minute=, hour=, day_of_week=, day_of_month=, month_of_year=)`.
    ///
    /// - Throws: ``ScheduleError`` naming the field and the bad part.
    public init(
        minute: String = "*", hour: String = "*", dayOfWeek: String = "*", dayOfMonth: String = "*",
        monthOfYear: String = "*"
    ) throws(ScheduleError) {
        minutes = try Self.parse(minute, field: "minute", range: 0...59, names: [:]).sorted()
        hours = try Self.parse(hour, field: "hour", range: 0...23, names: [:]).sorted()
        daysOfWeek = try Self.parse(dayOfWeek, field: "day_of_week", range: 0...6, names: Self.dayNames)
        daysOfMonth = try Self.parse(dayOfMonth, field: "day_of_month", range: 1...31, names: [:])
        months = try Self.parse(monthOfYear, field: "month_of_year", range: 1...12, names: Self.monthNames)
        source = (minute, hour, dayOfWeek, dayOfMonth, monthOfYear)
    }

    /// The Unix five-field string: `"minute hour day_of_month month_of_year day_of_week"` (e.g. `"0 3 * * mon-fri"`).
    public init(_ expression: String) throws(ScheduleError) {
        let parts = expression.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard parts.count == 5 else {
            throw ScheduleError(
                field: "cron",
                message:
                    "'\(expression)' has \(parts.count) fields; expected 5: minute hour day_of_month month_of_year day_of_week"
            )
        }
        try self.init(
            minute: parts[0], hour: parts[1], dayOfWeek: parts[4], dayOfMonth: parts[2], monthOfYear: parts[3])
    }

    /// The fields as written, in Unix order: `minute hour day_of_month month_of_year day_of_week`.
    public var description: String {
        "\(source.minute) \(source.hour) \(source.dayOfMonth) \(source.monthOfYear) \(source.dayOfWeek)"
    }

    static let dayNames: [String: Int] = [
        "sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
        "sunday": 0, "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6,
    ]
    static let monthNames: [String: Int] = [
        "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7,
        "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
    ]

    static func parse(_ text: String, field: String, range: ClosedRange<Int>, names: [String: Int])
        throws(ScheduleError) -> Set<Int>
    {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard !trimmed.isEmpty else { throw ScheduleError(field: field, message: "is empty; use * for every value") }
        var result = Set<Int>()
        for rawPart in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let part = String(rawPart)
            func bad(_ why: String) -> ScheduleError {
                ScheduleError(
                    field: field,
                    message:
                        "'\(part)' in '\(text)' \(why) (allowed \(range.lowerBound)-\(range.upperBound)\(names.isEmpty ? "" : " or names"))"
                )
            }
            func value(_ s: Substring) throws(ScheduleError) -> Int {
                if let n = Int(s) {
                    guard range.contains(n) else { throw bad("is out of range") }
                    return n
                }
                if let n = names[String(s)] { return n }
                throw bad("is not a number\(names.isEmpty ? "" : " or a name")")
            }
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { throw bad("has more than one /") }
            var step = 1
            if pieces.count == 2 {
                guard let s = Int(pieces[1]), s >= 1 else { throw bad("has a step that is not a positive number") }
                step = s
            }
            let base = pieces[0]
            var values: [Int]
            if base == "*" {
                values = Array(range)
            } else if let dash = base.firstIndex(of: "-") {
                let lo = try value(base[..<dash]), hi = try value(base[base.index(after: dash)...])
                if lo <= hi {
                    values = Array(lo...hi)
                } else {  // wraps, e.g. fri-mon or 22-2
                    values = Array(lo...range.upperBound) + Array(range.lowerBound...hi)
                }
            } else {
                let v = try value(base)
                // Celery: "n/step" means from n to the end by step.
                values = pieces.count == 2 ? Array(v...range.upperBound) : [v]
            }
            for (i, v) in values.enumerated() where i % step == 0 { result.insert(v) }
        }
        return result
    }

    /// Whether a local calendar day matches the day fields (`weekday` 0 = Sunday).
    func matches(day: Int, month: Int, weekday: Int) -> Bool {
        months.contains(month) && daysOfMonth.contains(day) && daysOfWeek.contains(weekday)
    }

    /// The first fire instant strictly after `date`, with the wall-clock fields read in `zone`.
    ///
    /// Daylight saving: a wall time that does not exist (spring forward) fires at the first instant after the gap
    /// (the transition itself); a wall time that occurs twice (fall back) fires once, at its first occurrence.
    /// Returns nil when no day in the next 10 years matches (e.g. `day_of_month: 31, month_of_year: feb`).
    public func next(after date: Date, in zone: TimeZone) -> Date? {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let start = calendar.dateComponents([.year, .month, .day], from: date)
        guard
            var day = calendar.date(
                from: DateComponents(year: start.year, month: start.month, day: start.day, hour: 12))
        else { return nil }
        // Start one day early: a gap-shifted or early-offset instant of the previous local day can still be after `date`.
        day = calendar.date(byAdding: .day, value: -1, to: day) ?? day
        for _ in 0..<(366 * 10 + 2) {
            let c = calendar.dateComponents([.year, .month, .day, .weekday], from: day)
            if let y = c.year, let m = c.month, let d = c.day, let wd = c.weekday,
                matches(day: d, month: m, weekday: wd - 1)
            {
                for h in hours {
                    for mi in minutes {
                        let instant = ZonedTime.resolve(year: y, month: m, day: d, hour: h, minute: mi, in: zone)
                        if instant > date { return instant }
                    }
                }
            }
            guard let nextDay = calendar.date(byAdding: .day, value: 1, to: day) else { return nil }
            day = nextDay
        }
        return nil
    }
}
