import CeleriacBeat
import Foundation

/// The demo app's built-in beat schedule (`celeriac-demo beat`; `--schedule FILE` replaces it).
enum DemoSchedule {
    static func make() throws -> BeatSchedule {
        try BeatSchedule([
            // demo.add(1, 2) every 2 seconds on the default queue.
            ScheduleEntry(name: "add-every-2s", task: "demo.add", schedule: .every(2), args: [1, 2]),
            // Every minute on the minute, Berlin wall-clock time.
            ScheduleEntry(
                name: "xsum-every-minute", task: "demo.xsum",
                schedule: .crontab(try Crontab("* * * * *"), zone: TimeZone(identifier: "Europe/Berlin")!),
                args: [[1, 2, 3]], expires: 50),
            // 08:30 New York time on weekdays; missed runs (beat down) are all sent, up to 3.
            ScheduleEntry(
                name: "weekday-morning", task: "demo.echo",
                schedule: .crontab(
                    try Crontab(minute: "30", hour: "8", dayOfWeek: "mon-fri"),
                    zone: TimeZone(identifier: "America/New_York")!),
                kwargs: ["value": "good morning"], catchUp: .all(limit: 3)),
        ])
    }
}
