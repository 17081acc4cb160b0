import CeleriacBeat
import Foundation
import Testing

@Suite struct CrontabParsingTests {
    @Test func fieldsStepsRangesListsAndNames() throws {
        let c = try Crontab(
            minute: "*/7", hour: "1,15,22-23", dayOfWeek: "mon-fri", dayOfMonth: "*/7", monthOfYear: "jan,jun-aug")
        #expect(c.minutes == [0, 7, 14, 21, 28, 35, 42, 49, 56])
        #expect(c.hours == [1, 15, 22, 23])
        #expect(c.daysOfWeek == [1, 2, 3, 4, 5])
        #expect(c.daysOfMonth == [1, 8, 15, 22, 29])
        #expect(c.months == [1, 6, 7, 8])
    }

    @Test func sundayIsZeroAndRangesWrap() throws {
        #expect(try Crontab(dayOfWeek: "sun").daysOfWeek == [0])
        #expect(try Crontab(dayOfWeek: "0").daysOfWeek == [0])
        #expect(try Crontab(dayOfWeek: "fri-mon").daysOfWeek == [5, 6, 0, 1])
        #expect(try Crontab(hour: "22-2").hours == [0, 1, 2, 22, 23])
        #expect(try Crontab(minute: "10-30/10").minutes == [10, 20, 30])
        #expect(try Crontab(minute: "50/5").minutes == [50, 55])
    }

    @Test func unixFiveFieldOrder() throws {
        // minute hour day_of_month month_of_year day_of_week
        let c = try Crontab("0 3 1-7 * mon")
        #expect(
            c.minutes == [0] && c.hours == [3] && c.daysOfMonth == Set(1...7) && c.daysOfWeek == [1]
                && c.months == Set(1...12))
    }

    @Test(arguments: [
        ("60", "minute", "minute"), ("a", "minute", "minute"), ("*/0", "hour", "hour"),
        ("7", "day_of_week", "day_of_week"),
        ("funday", "day_of_week", "day_of_week"), ("0", "day_of_month", "day_of_month"),
        ("13", "month_of_year", "month_of_year"),
        ("", "hour", "hour"),
    ])
    func invalidFieldsNameTheField(value: String, field: String, expected: String) {
        do throws(ScheduleError) {
            switch field {
            case "minute": _ = try Crontab(minute: value)
            case "hour": _ = try Crontab(hour: value)
            case "day_of_week": _ = try Crontab(dayOfWeek: value)
            case "day_of_month": _ = try Crontab(dayOfMonth: value)
            default: _ = try Crontab(monthOfYear: value)
            }
            Issue.record("\(field)=\(value) was accepted")
        } catch {
            #expect(error.field == expected)
            #expect(error.description.contains(expected))
        }
    }

    @Test func wrongFieldCountIsRejected() {
        #expect(throws: ScheduleError.self) { try Crontab("0 3 * *") }
    }
}

@Suite struct CrontabNextFireTests {
    @Test func stepOfSevenMinutesRestartsEachHour() throws {
        let c = try Crontab("*/7 * * * *")
        #expect(
            nextN(c, utc, after: "2026-01-10T10:50:00Z", 3) == [
                "2026-01-10T10:56:00+00:00", "2026-01-10T11:00:00+00:00", "2026-01-10T11:07:00+00:00",
            ])
    }

    @Test func leapDayOnlyInLeapYears() throws {
        let c = try Crontab("0 0 29 2 *")
        #expect(
            nextN(c, utc, after: "2025-03-01T00:00:00Z", 2) == [
                "2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00",
            ])
    }

    @Test func thirtyFirstSkipsShortMonths() throws {
        let c = try Crontab("0 12 31 * *")
        #expect(
            nextN(c, utc, after: "2026-04-01T00:00:00Z", 3) == [
                "2026-05-31T12:00:00+00:00", "2026-07-31T12:00:00+00:00", "2026-08-31T12:00:00+00:00",
            ])
    }

    @Test func dayFieldsAreBothRequiredFirstMondayOfTheMonth() throws {
        let c = try Crontab(minute: "0", hour: "9", dayOfWeek: "mon", dayOfMonth: "1-7")
        #expect(
            nextN(c, zone("America/New_York"), after: "2026-11-29T00:00:00Z", 2) == [
                "2026-12-07T09:00:00-05:00", "2027-01-04T09:00:00-05:00",
            ])
    }

    @Test func neverFiringCrontabHasNoNext() throws {
        #expect(try Crontab("0 0 30 2 *").next(after: instant("2026-01-01T00:00:00Z"), in: utc) == nil)
    }

    // Europe/Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 02:xx does not exist.
    @Test func berlinSpringForwardNonexistentTimeFiresOnceAtTheTransition() throws {
        let c = try Crontab("30 2 * * *")
        #expect(
            nextN(c, zone("Europe/Berlin"), after: "2026-03-28T12:00:00Z", 3) == [
                "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00",
            ])
    }

    @Test func berlinSpringForwardWholeHourOfRunsCollapsesToOne() throws {
        let c = try Crontab("*/15 2,3 * * *")
        #expect(
            nextN(c, zone("Europe/Berlin"), after: "2026-03-29T00:00:00Z", 5) == [
                "2026-03-29T03:00:00+02:00", "2026-03-29T03:15:00+02:00", "2026-03-29T03:30:00+02:00",
                "2026-03-29T03:45:00+02:00",
                "2026-03-30T02:00:00+02:00",
            ])
    }

    // Europe/Berlin 2026-10-25: 03:00 CEST falls back to 02:00 CET, so 02:xx happens twice.
    @Test func berlinFallBackRepeatedTimeFiresOnce() throws {
        let c = try Crontab("30 2 * * *")
        #expect(
            nextN(c, zone("Europe/Berlin"), after: "2026-10-24T12:00:00Z", 2) == [
                "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00",
            ])
    }

    @Test func berlinHourlyAcrossFallBackDoesNotRepeatTheHour() throws {
        let c = try Crontab("0 * * * *")
        #expect(
            nextN(c, zone("Europe/Berlin"), after: "2026-10-24T23:30:00Z", 3) == [
                "2026-10-25T02:00:00+02:00", "2026-10-25T03:00:00+01:00", "2026-10-25T04:00:00+01:00",
            ])
    }

    // America/New_York 2026-03-08: 02:00 EST -> 03:00 EDT; 2026-11-01: 02:00 EDT -> 01:00 EST.
    @Test func newYorkBothTransitions() throws {
        #expect(
            nextN(try Crontab("30 2 * * *"), zone("America/New_York"), after: "2026-03-07T12:00:00Z", 2) == [
                "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00",
            ])
        #expect(
            nextN(try Crontab("30 1 * * *"), zone("America/New_York"), after: "2026-10-31T12:00:00Z", 2) == [
                "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00",
            ])
    }

    @Test func weekdaysInAZone() throws {
        // 2026-11-27 is a Friday: next weekday 08:30 in New York is Monday 2026-11-30.
        let c = try Crontab("30 8 * * mon-fri")
        #expect(
            nextN(c, zone("America/New_York"), after: "2026-11-27T14:00:00Z", 2) == [
                "2026-11-30T08:30:00-05:00", "2026-12-01T08:30:00-05:00",
            ])
    }
}

@Suite struct IntervalAndAtTests {
    @Test func intervalsAreAnchoredSoEveryBeatComputesTheSameInstants() {
        let s = Schedule.every(2)
        #expect(s.next(after: instant("2026-01-01T00:00:01Z")) == instant("2026-01-01T00:00:02Z"))
        #expect(s.next(after: instant("2026-01-01T00:00:02Z")) == instant("2026-01-01T00:00:04Z"))
        let anchored = Schedule.every(seconds: 60, anchor: instant("2026-01-01T00:00:15Z"))
        #expect(anchored.next(after: instant("2026-06-01T10:00:00Z")) == instant("2026-06-01T10:00:15Z"))
    }

    @Test func atFiresOnceThenNever() {
        let s = Schedule.at(instant("2026-12-01T09:00:00+01:00"))
        #expect(s.next(after: instant("2026-11-01T00:00:00Z")) == instant("2026-12-01T08:00:00Z"))
        #expect(s.next(after: instant("2026-12-01T08:00:00Z")) == nil)
    }

    @Test func subSecondInstantsKeepTheirMilliseconds() {
        let t = instant("2026-11-29T07:05:23.5Z")
        #expect(iso(t) == "2026-11-29T07:05:23.500+00:00")
        #expect(instant(iso(t)) == t)
        #expect(iso(instant("2026-11-29T07:05:23Z"), zone("Europe/Berlin")) == "2026-11-29T08:05:23+01:00")
    }

    @Test func taskIDsAreDeterministicPerEntryAndInstant() {
        let a = BeatTaskID.make(entry: "e", instant: instant("2026-01-01T00:00:02Z"))
        #expect(a == BeatTaskID.make(entry: "e", instant: instant("2026-01-01T00:00:02Z")))
        #expect(a != BeatTaskID.make(entry: "e", instant: instant("2026-01-01T00:00:04Z")))
        #expect(a != BeatTaskID.make(entry: "f", instant: instant("2026-01-01T00:00:02Z")))
        #expect(UUID(uuidString: a) != nil)
    }

    @Test func upcomingListsTenInstants() throws {
        let e = ScheduleEntry(
            name: "x", task: "t", schedule: .crontab(try Crontab("0 9 * * *"), zone: zone("Europe/Berlin")))
        let u = e.upcoming(after: instant("2026-03-25T00:00:00Z"))
        #expect(u.count == 10)
        #expect(iso(u[3], zone("Europe/Berlin")) == "2026-03-28T09:00:00+01:00")
        #expect(iso(u[4], zone("Europe/Berlin")) == "2026-03-29T09:00:00+02:00")
    }
}
