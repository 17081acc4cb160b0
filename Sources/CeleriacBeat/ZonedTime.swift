import CeleriacCore
import Foundation

/// Wall-clock times in an IANA zone, resolved to instants with explicit daylight-saving rules.
public enum ZonedTime {
    /// The instant of a local wall time in `zone`.
    ///
    /// - Exists once: that instant.
    /// - Occurs twice (fall back): the first occurrence (the earlier instant), so it fires once.
    /// - Does not exist (spring forward): the first valid instant after the gap, i.e. the transition itself
    ///   (02:30 on a Europe/Berlin spring-forward day resolves to 03:00 CEST).
    public static func resolve(
        year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int = 0, in zone: TimeZone
    ) -> Date {
        let wall = wallSeconds(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
        // Offsets in force around this wall time (a day either side covers every real zone's transitions).
        let offsets = Set([
            zone.secondsFromGMT(for: Date(timeIntervalSince1970: wall - 86_400)),
            zone.secondsFromGMT(for: Date(timeIntervalSince1970: wall)),
            zone.secondsFromGMT(for: Date(timeIntervalSince1970: wall + 86_400)),
        ])
        let valid = offsets.map { wall - Double($0) }
            .filter { Double(zone.secondsFromGMT(for: Date(timeIntervalSince1970: $0))) == wall - $0 }
        if let first = valid.min() { return Date(timeIntervalSince1970: first) }
        // In a gap: find the transition between the candidate before it and the candidate after it.
        let candidates = offsets.map { wall - Double($0) }
        var lo = candidates.min() ?? wall, hi = candidates.max() ?? wall
        let before = zone.secondsFromGMT(for: Date(timeIntervalSince1970: lo))
        while hi - lo > 1 {
            let mid = ((lo + hi) / 2).rounded(.down)
            if zone.secondsFromGMT(for: Date(timeIntervalSince1970: mid)) == before { lo = mid } else { hi = mid }
        }
        return Date(timeIntervalSince1970: hi)
    }

    /// Seconds since 1970 of a wall time read as if it were UTC (proleptic Gregorian).
    static func wallSeconds(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) -> Double {
        let days = CivilCalendar.days(fromCivil: Int64(year), Int64(month), Int64(day))
        return Double(days * 86_400 + Int64(hour * 3600 + minute * 60 + second))
    }

    /// `2026-03-29T03:00:00+02:00` (or `…:00.500+02:00` with milliseconds): the instant in `zone` with its UTC offset.
    public static func format(_ date: Date, in zone: TimeZone) -> String {
        let offset = zone.secondsFromGMT(for: date)
        let local = date.timeIntervalSince1970 + Double(offset)
        let whole = local.rounded(.down)
        let millis = Int(((local - whole) * 1000).rounded())
        var days = Int((whole / 86_400).rounded(.down))
        var secs = Int(whole - Double(days) * 86_400)
        if secs >= 86_400 { days += 1; secs -= 86_400 }
        let (y64, m64, d64) = CivilCalendar.civil(fromDays: Int64(days))
        let (y, m, d) = (Int(y64), Int(m64), Int(d64))
        let sign = offset < 0 ? "-" : "+"
        let a = abs(offset)
        func p2(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        // Milliseconds only when there are some (sub-second intervals), so whole-second instants stay short.
        let fraction = millis == 0 || millis == 1000 ? "" : "." + String(String(millis + 1000).dropFirst())
        return
            "\(y)-\(p2(m))-\(p2(d))T\(p2(secs / 3600)):\(p2(secs / 60 % 60)):\(p2(secs % 60))\(fraction)\(sign)\(p2(a / 3600)):\(p2(a / 60 % 60))"
    }
}
