import CeleriacBeat
import CeleriacCore
import Foundation
import Logging
import Synchronization
import Testing

/// Catch-up policies and fire decisions, with explicit times (no clock, no sleeping).
@Suite struct SchedulerTests {
    let t0 = instant("2026-06-01T12:00:00Z")

    func scheduler(_ policy: CatchUp, last: Date?) throws -> BeatScheduler {
        let schedule = try BeatSchedule([ScheduleEntry(name: "e", task: "t", schedule: .every(10), catchUp: policy)])
        var state = BeatState()
        if let last { state.record("e", last) }
        return BeatScheduler(schedule: schedule, state: state, start: t0)
    }

    func at(_ seconds: Double) -> Date { t0.addingTimeInterval(seconds) }

    @Test func onTimeRunIsSentOnceAndAnEarlyWakeUpSendsNothing() throws {
        var s = try scheduler(.once, last: t0)
        #expect(s.due(now: at(9.999)).fires.isEmpty)
        let due = s.due(now: at(10.004))
        #expect(due.fires == [Fire(entry: "e", instant: at(10))] && due.dropped.isEmpty)
        s.markSent(due.fires[0])
        #expect(s.due(now: at(10.005)).fires.isEmpty)
        #expect(s.nextDue() == at(20))
    }

    @Test func skipDropsEveryMissedRun() throws {
        var s = try scheduler(.skip, last: t0)
        let due = s.due(now: at(55))
        #expect(due.fires.isEmpty)
        #expect(due.dropped == [Dropped(entry: "e", count: 5, policy: .skip, first: at(10), last: at(50))])
        #expect(s.nextDue() == at(60))
    }

    @Test func onceSendsTheMostRecentMissedRun() throws {
        var s = try scheduler(.once, last: t0)
        let due = s.due(now: at(55))
        #expect(due.fires == [Fire(entry: "e", instant: at(50))])
        #expect(due.dropped.map(\.count) == [4])
    }

    @Test func onceWithAnOnTimeRunSendsOnlyThatOne() throws {
        var s = try scheduler(.once, last: t0)
        let due = s.due(now: at(50.5))
        #expect(due.fires == [Fire(entry: "e", instant: at(50))])
        #expect(due.dropped.map(\.count) == [4])
    }

    @Test func allSendsMissedRunsUpToTheLimitOldestFirst() throws {
        var bounded = try scheduler(.all(limit: 3), last: t0)
        let due = bounded.due(now: at(55))
        #expect(due.fires.map(\.instant) == [at(30), at(40), at(50)])
        #expect(due.dropped == [Dropped(entry: "e", count: 2, policy: .all(limit: 3), first: at(10), last: at(20))])
        var unbounded = try scheduler(.all(limit: 100), last: t0)
        #expect(unbounded.due(now: at(55)).fires.map(\.instant) == [at(10), at(20), at(30), at(40), at(50)])
    }

    @Test func aNewEntryStartsFromItsNextRunWithoutHistory() throws {
        var s = try scheduler(.all(limit: 100), last: nil)
        #expect(s.due(now: at(0)).fires.isEmpty)
        #expect(s.nextDue() == at(10))
    }

    @Test func stateMergeNeverMovesBack() {
        let a = BeatState(lastSent: ["x": 10, "y": 5])
        let b = BeatState(lastSent: ["x": 8, "z": 1])
        #expect(a.merged(with: b).lastSent == ["x": 10, "y": 5, "z": 1])
    }
}

/// Records sends; `sends` yields each one so tests wait on the event.
final class RecordingSender: BeatSender {
    let log = Mutex<[Fire]>([])
    let failNext = Mutex(0)
    let events: AsyncStream<Fire>
    private let sink: AsyncStream<Fire>.Continuation
    init() { (events, sink) = AsyncStream<Fire>.makeStream() }
    func send(_ entry: ScheduleEntry, instant: Date, taskID: String, recording: BeatState) async throws {
        #expect(recording.last(entry.name) == instant)
        if failNext.withLock({ n -> Bool in
            defer { n = max(0, n - 1) }; return n > 0
        }) {
            throw CeleriacError.broker(operation: "test", underlying: "refused on purpose")
        }
        #expect(taskID == entry.taskID(for: instant))
        let f = Fire(entry: entry.name, instant: instant)
        log.withLock { $0.append(f) }
        sink.yield(f)
    }
    var fires: [Fire] { log.withLock { $0 } }
}

/// The beat loop driven by a manual clock: it wakes at due instants, records what it sent, resumes after a restart
/// without re-sending, and applies the catch-up policy to what it missed.
@Suite struct BeatLoopTests {
    let start = instant("2026-06-01T12:00:00Z")
    var logger: Logger { var l = Logger(label: "beat-test"); l.logLevel = .critical; return l }

    func schedule(_ policy: CatchUp = .once) throws -> BeatSchedule {
        try BeatSchedule([
            ScheduleEntry(name: "tick", task: "demo.add", schedule: .every(2), args: [1, 2], catchUp: policy)
        ])
    }

    @Test func sendsWhenDueAndResumesAfterRestartWithoutResending() async throws {
        let clock = ManualBeatClock(start)
        let store = MemoryStateStore()
        let sender = RecordingSender()
        var events = sender.events.makeAsyncIterator()
        let beat = Beat(schedule: try schedule(), sender: sender, store: store, clock: clock, logger: logger)
        let running = Task { try await beat.run() }
        await clock.waitForSleeper()
        #expect(sender.fires.isEmpty)
        clock.advance(to: start.addingTimeInterval(2))
        #expect(await events.next() == Fire(entry: "tick", instant: start.addingTimeInterval(2)))
        await clock.waitForSleeper()
        clock.advance(to: start.addingTimeInterval(4.01))
        #expect(await events.next() == Fire(entry: "tick", instant: start.addingTimeInterval(4)))
        await clock.waitForSleeper()
        running.cancel()
        _ = try? await running.value
        #expect(store.current.last("tick") == start.addingTimeInterval(4))

        // Restart at the same instant: nothing is re-sent; the next run is sent when due.
        let again = Beat(schedule: try schedule(), sender: sender, store: store, clock: clock, logger: logger)
        let running2 = Task { try await again.run() }
        await clock.waitForSleeper()
        #expect(sender.fires.count == 2)
        clock.advance(to: start.addingTimeInterval(6))
        #expect(await events.next() == Fire(entry: "tick", instant: start.addingTimeInterval(6)))
        await clock.waitForSleeper()
        #expect(sender.fires.count == 3)
        running2.cancel()
        _ = try? await running2.value
    }

    @Test func restartAfterDowntimeAppliesCatchUpAll() async throws {
        let clock = ManualBeatClock(start.addingTimeInterval(9.5))
        let store = MemoryStateStore(BeatState(lastSent: ["tick": start.timeIntervalSince1970]))
        let sender = RecordingSender()
        var events = sender.events.makeAsyncIterator()
        let beat = Beat(
            schedule: try schedule(.all(limit: 3)), sender: sender, store: store, clock: clock, logger: logger)
        let running = Task { try await beat.run() }
        // Missed while down: +2, +4, +6, +8; the limit keeps the last 3.
        var got: [Fire] = []
        for _ in 0..<3 { if let f = await events.next() { got.append(f) } }
        #expect(got.map(\.instant) == [6, 4, 8].sorted().map { start.addingTimeInterval($0) })
        await clock.waitForSleeper()
        #expect(store.current.last("tick") == start.addingTimeInterval(8))
        running.cancel()
        _ = try? await running.value
    }

    @Test func aFailedSendIsRetriedNotSkipped() async throws {
        let clock = ManualBeatClock(start)
        let store = MemoryStateStore()
        let sender = RecordingSender()
        sender.failNext.withLock { $0 = 1 }
        var events = sender.events.makeAsyncIterator()
        let beat = Beat(
            schedule: try schedule(), sender: sender, store: store, clock: clock, logger: logger, retryDelay: 0.5)
        let running = Task { try await beat.run() }
        await clock.waitForSleeper()
        clock.advance(to: start.addingTimeInterval(2))
        await clock.waitForSleeper()  // the failed send sleeps for the retry delay
        #expect(sender.fires.isEmpty)
        clock.advance(to: start.addingTimeInterval(2.5))
        #expect(await events.next() == Fire(entry: "tick", instant: start.addingTimeInterval(2)))
        running.cancel()
        _ = try? await running.value
    }
}
