import CeleriacBeat
import Foundation

enum ScheduleExample {
    static func make() throws -> BeatSchedule {
        try BeatSchedule([
            ScheduleEntry(name: "add-every-2s", task: "demo.add", schedule: .every(2), args: [1, 2]),
            ScheduleEntry(
                name: "first-monday", task: "reports.monthly",
                schedule: .crontab(
                    try Crontab(minute: "0", hour: "9", dayOfWeek: "mon", dayOfMonth: "1-7"),
                    zone: TimeZone(identifier: "Europe/Berlin")!),
                queue: "reports", expires: 3600, catchUp: .all(limit: 3)),
        ])
    }
}
