import Testing

@testable import CeleriacWorker

/// ``PrefetchGovernor`` alone: the multiplier it chooses from the worker's pace.
@Suite struct PrefetchGovernorTests {
    /// Floor 1, ceiling 32, 50 ms of reserved work, a pace over the last 32 completions.
    func governor(floor: Int = 1, ceiling: Int = 32) -> PrefetchGovernor {
        PrefetchGovernor(policy: .init(floor: floor, ceiling: ceiling, reservedWork: 0.050))
    }

    /// `count` completions `every` seconds apart from `start` on `concurrency` slots, with `backlog` messages
    /// waiting in the queue whenever a grow asks; returns every change of the multiplier.
    func feed(
        _ g: inout PrefetchGovernor, every interval: Double, times count: Int, from start: Double = 0,
        concurrency: Int = 4, backlog: Int = .max
    ) -> [Int] {
        (0..<count).compactMap { i in
            finish(&g, at: start + Double(i) * interval, concurrency: concurrency, backlog: backlog)
        }
    }

    /// One completion; a proposed grow is answered with `backlog`. Returns the new multiplier, if it changed.
    func finish(_ g: inout PrefetchGovernor, at uptime: Double, concurrency: Int = 4, backlog: Int = .max) -> Int? {
        switch g.finished(at: uptime, concurrency: concurrency) {
        case nil: return nil
        case .shrank(let to): return to
        case .growIfBacklog: return g.backlogChecked(share: backlog, concurrency: concurrency)
        }
    }

    @Test func startsAtTheFloorAndGrowsToTheCeilingAtAFastPaceOnlyOnceTheWindowIsFull() {
        var g = governor()
        #expect(g.multiplier == 1)
        // 10 000 tasks/s on 4 slots: 50 ms of work is 500 tasks, 125 per slot, over the ceiling.
        #expect(feed(&g, every: 0.000_1, times: 31).isEmpty, "no change before 32 completions")
        #expect(g.finished(at: 0.003_1, concurrency: 4) == .growIfBacklog(to: 32, share: 124))
        #expect(g.multiplier == 1, "not before the backlog was counted")
        #expect(g.backlogChecked(share: 124, concurrency: 4) == 32)
        #expect(g.multiplier == 32)
        #expect(feed(&g, every: 0.000_1, times: 100, from: 0.004).isEmpty, "no change while nothing changes")
    }

    @Test func longTasksKeepPrefetchAtTheFloor() {
        var g = governor()
        // 4 slots, 2 s tasks: 2 completions a second hold 0.1 tasks of work.
        #expect(feed(&g, every: 0.5, times: 100).isEmpty)
        #expect(g.multiplier == 1)
        // 4 slots, 50 ms tasks: 80 a second, 4 tasks of work, 1 per slot: still the floor.
        #expect(feed(&g, every: 0.012_5, times: 100, from: 60).isEmpty)
        #expect(g.multiplier == 1)
    }

    @Test func aLongTaskOrAnIdleSpellBringsItDownAtOnce() {
        var g = governor()
        _ = feed(&g, every: 0.000_1, times: 40)
        #expect(g.multiplier == 32)
        // One completion 5 s later: 31 completions in 5 s is a slow pace.
        #expect(g.finished(at: 5, concurrency: 4) == .shrank(to: 1))
        // Then fast again: back up once the window is fast again.
        let changes = feed(&g, every: 0.000_1, times: 40, from: 10)
        #expect(changes.last == 32)
    }

    @Test func aStallOfAFewMillisecondsInAFastDrainChangesNothing() {
        var g = governor()
        _ = feed(&g, every: 0.000_1, times: 40)
        #expect(g.multiplier == 32)
        // 10 000 tasks/s on, with a 5 ms stall every 100 tasks.
        var t = 0.004
        var changes: [Int] = []
        for i in 0..<1000 {
            t += i % 100 == 0 ? 0.005 : 0.000_1
            if let c = finish(&g, at: t) { changes.append(c) }
        }
        #expect(changes.isEmpty)
    }

    @Test func theMultiplierFollowsThePaceBetweenTheBounds() {
        var g = governor()
        // 4 slots at 1 000 tasks/s: 50 tasks of work, 12.5 per slot.
        #expect(feed(&g, every: 0.001, times: 40) == [12])
        // Then 4 000 tasks/s: 200 tasks, 50 per slot, over the ceiling; it gets there as the window fills with the
        // faster pace, each step at least doubling.
        let changes = feed(&g, every: 0.000_25, times: 40, from: 0.040)
        #expect(changes.last == 32)
        #expect(zip([12] + changes, changes).allSatisfy { $1 >= 2 * $0 || $1 == 32 })
    }

    @Test func aPaceHoveringNearABoundaryDoesNotFlapTheConsumers() {
        var g = governor()
        // Around 160 tasks/s on 4 slots: wanted 2 give or take. One change at most.
        var t = 0.0
        var changes: [Int] = []
        for i in 0..<500 {
            t += i % 2 == 0 ? 0.005 : 0.007_5
            if let c = finish(&g, at: t) { changes.append(c) }
        }
        #expect(changes.count <= 1)
    }

    @Test func completionsAllAtOnceCountAsAFastPaceAndNonFiniteTimesAreIgnored() {
        var g = governor()
        #expect(g.finished(at: .nan, concurrency: 4) == nil)
        #expect(g.pace == nil)
        #expect(feed(&g, every: 0, times: 32) == [32])
        #expect(g.pace == .infinity)
    }

    @Test func moreSlotsNeedAFasterPaceForTheSameMultiplier() {
        var g = governor()
        // 1 000 tasks/s: 50 tasks of work; on 20 slots that is 2.5 per slot.
        #expect(feed(&g, every: 0.001, times: 40, concurrency: 20) == [2])
    }

    @Test func aConfiguredFloorIsKeptAndACeilingBelowItIsRaised() {
        var g = governor(floor: 4, ceiling: 2)
        #expect(g.policy.ceiling == 4)
        #expect(feed(&g, every: 0.000_1, times: 40).isEmpty)
        #expect(g.multiplier == 4)
        var h = governor(floor: 4)
        _ = feed(&h, every: 0.000_1, times: 40)
        #expect(h.multiplier == 32)
        #expect(h.finished(at: 100, concurrency: 4) == .shrank(to: 4), "never below the configured multiplier")
    }

    @Test func itGrowsOnlyIntoABacklogAndAsksAgainAWindowLater() {
        var g = governor()
        // The fastest pace, but this worker's share of the waiting messages is 3: less than one more per slot.
        #expect(feed(&g, every: 0.000_1, times: 32, backlog: 3).isEmpty)
        #expect(g.multiplier == 1)
        // Declined: no new question for the next 31 completions, whatever the pace.
        #expect((0..<31).allSatisfy { i in g.finished(at: 0.01 + Double(i) * 0.000_1, concurrency: 4) == nil })
        // The 32nd asks again, and with a backlog it grows.
        #expect(g.finished(at: 0.02, concurrency: 4) == .growIfBacklog(to: 32, share: 124))
        #expect(g.backlogChecked(share: 124, concurrency: 4) == 32)
    }

    @Test func aGrowTakesNoMoreThanItsShareOfTheBacklog() {
        var g = governor()
        // Wanted 32 on 4 slots (124 more), but the share is 10: 2 more per slot, 1 -> 3.
        #expect(feed(&g, every: 0.000_1, times: 32, backlog: 10) == [3])
        // Later, a share of 20 pays for 3 + 5 = 8: at least double, so it grows; a share of 4 (3 + 1) would not.
        #expect(feed(&g, every: 0.000_1, times: 32, from: 0.01, backlog: 20) == [8])
        var h = governor()
        _ = feed(&h, every: 0.000_1, times: 32, backlog: 10)
        #expect(
            feed(&h, every: 0.000_1, times: 64, from: 0.01, backlog: 4).isEmpty, "3 -> 4 is not worth re-subscribing")
        #expect(h.multiplier == 3)
    }

    @Test func oneQuestionAtATimeAndAShrinkCancelsAnOpenOne() {
        var g = governor()
        #expect(feed(&g, every: 0.000_1, times: 31).isEmpty)
        #expect(g.finished(at: 0.003_1, concurrency: 4) == .growIfBacklog(to: 32, share: 124))
        #expect(g.finished(at: 0.003_2, concurrency: 4) == nil, "no second question while one is open")
        #expect(g.pendingGrow == 32)
        // At 12 (1 000 tasks/s), a faster pace opens a question; a long task before the answer shrinks at once,
        // and the late answer changes nothing.
        var h = governor()
        #expect(feed(&h, every: 0.001, times: 40) == [12])
        var t = 0.039
        var asked: PrefetchGovernor.Proposal?
        for _ in 0..<40 where asked == nil {
            t += 0.000_1
            asked = h.finished(at: t, concurrency: 4)
        }
        guard case .growIfBacklog(let to, _) = asked else {
            Issue.record("a faster pace asked nothing: \(String(describing: asked))")
            return
        }
        #expect(to > 12)
        #expect(h.finished(at: t + 10, concurrency: 4) == .shrank(to: 1))
        #expect(h.backlogChecked(share: .max, concurrency: 4) == nil)
        #expect(h.multiplier == 1)
    }
}
