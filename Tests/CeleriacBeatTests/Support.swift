import CeleriacBeat
import Foundation

/// `2026-03-29T01:00:00Z` → Date (test inputs and expectations are written as ISO instants).
func instant(_ s: String) -> Date {
    guard let d = ScheduleFile.parseInstant(s) else { fatalError("bad test instant \(s)") }
    return d
}

func zone(_ id: String) -> TimeZone { TimeZone(identifier: id)! }

let utc = zone("UTC")

func iso(_ d: Date, _ z: TimeZone = utc) -> String { ZonedTime.format(d, in: z) }

func nextN(_ cron: Crontab, _ z: TimeZone, after: String, _ n: Int) -> [String] {
    var out: [String] = []
    var t = instant(after)
    for _ in 0..<n {
        guard let x = cron.next(after: t, in: z) else { break }
        out.append(iso(x, z))
        t = x
    }
    return out
}
