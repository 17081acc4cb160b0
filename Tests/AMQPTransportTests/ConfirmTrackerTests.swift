import Testing

@testable import AMQPTransport

/// Publisher confirms: each publish ends exactly once, by its ack, nack, return, or a failure of them all.
@Suite struct ConfirmTrackerTests {
    /// What each tracked publish ended with, by sequence number: "ok", or the error code.
    final class Outcomes {
        var ended: [UInt64: [String]] = [:]
        func callback(for seq: UInt64) -> ConfirmTracker.Callback {
            { result in
                let text =
                    switch result {
                    case .success: "ok"
                    case .failure(let e): "\(e.code)"
                    }
                self.ended[seq, default: []].append(text)
            }
        }
        func of(_ seq: UInt64) -> [String] { ended[seq] ?? [] }
    }

    /// A tracker with publishes 1...count sent.
    static func tracker(publishing count: UInt64, into outcomes: Outcomes) -> ConfirmTracker {
        var t = ConfirmTracker()
        for seq in 1...count { t.track(outcomes.callback(for: seq)) }
        return t
    }

    static let nack = AMQPError(.publishNacked, operation: "basic.publish")
    static let unroutable = AMQPError(.unroutable, operation: "basic.publish")

    @Test func publishesAreNumberedFromOneInOrder() {
        let outcomes = Outcomes()
        var t = Self.tracker(publishing: 3, into: outcomes)
        #expect(t.nextSequence == 4 && t.waitingCount == 3)
        t.resolve(upTo: 2, multiple: false, nackError: nil)
        #expect(outcomes.of(2) == ["ok"])
        #expect(outcomes.of(1).isEmpty && outcomes.of(3).isEmpty)
    }

    @Test func singleAcksOutOfOrderEndOnlyTheirPublishAndMoveTheFloorWhenTheOldestEnds() {
        let outcomes = Outcomes()
        var t = Self.tracker(publishing: 4, into: outcomes)
        t.resolve(upTo: 3, multiple: false, nackError: nil)
        t.resolve(upTo: 2, multiple: false, nackError: nil)
        #expect(t.oldestUnconfirmed == 1)
        #expect(outcomes.of(2) == ["ok"] && outcomes.of(3) == ["ok"])
        t.resolve(upTo: 1, multiple: false, nackError: nil)
        #expect(t.oldestUnconfirmed == 4)
        #expect(outcomes.of(1) == ["ok"] && outcomes.of(4).isEmpty)
        #expect(t.waitingCount == 1)
    }

    @Test func aMultipleAckEndsEveryWaitingPublishUpToItsTagAndNoneAbove() {
        let outcomes = Outcomes()
        var t = Self.tracker(publishing: 5, into: outcomes)
        t.resolve(upTo: 2, multiple: false, nackError: nil)
        t.resolve(upTo: 4, multiple: true, nackError: nil)
        for seq: UInt64 in 1...4 { #expect(outcomes.of(seq) == ["ok"], "publish \(seq)") }
        #expect(outcomes.of(5).isEmpty)
        #expect(t.oldestUnconfirmed == 5 && t.waitingCount == 1)
    }

    @Test func aNackFailsExactlyThePublishesItCovers() {
        let outcomes = Outcomes()
        var t = Self.tracker(publishing: 5, into: outcomes)
        t.resolve(upTo: 1, multiple: false, nackError: nil)
        t.resolve(upTo: 3, multiple: true, nackError: Self.nack)
        t.resolve(upTo: 5, multiple: false, nackError: Self.nack)
        #expect(outcomes.of(1) == ["ok"])
        #expect(outcomes.of(2) == ["publishNacked"] && outcomes.of(3) == ["publishNacked"])
        #expect(outcomes.of(4).isEmpty)
        #expect(outcomes.of(5) == ["publishNacked"])
    }

    @Test func aReturnFailsTheNextAckedPublishAsUnroutableAndOnlyThatOne() {
        let outcomes = Outcomes()
        var t = Self.tracker(publishing: 3, into: outcomes)
        t.returned(Self.unroutable)
        t.resolve(upTo: 2, multiple: true, nackError: nil)
        #expect(outcomes.of(1) == ["ok"])
        #expect(outcomes.of(2) == ["unroutable"])
        // The return was used up by that ack.
        t.resolve(upTo: 3, multiple: false, nackError: nil)
        #expect(outcomes.of(3) == ["ok"])
    }

    @Test func aConfirmForAnUnknownOrSettledTagEndsNothingTwice() {
        let outcomes = Outcomes()
        var t = Self.tracker(publishing: 2, into: outcomes)
        t.resolve(upTo: 1, multiple: false, nackError: nil)
        t.resolve(upTo: 1, multiple: false, nackError: Self.nack)
        t.resolve(upTo: 9, multiple: false, nackError: nil)
        #expect(outcomes.of(1) == ["ok"])
        #expect(outcomes.of(2).isEmpty && t.waitingCount == 1)
    }

    @Test func removeAllHandsBackEveryWaitOldestFirstAndForgetsAHeldReturn() {
        let outcomes = Outcomes()
        var t = Self.tracker(publishing: 4, into: outcomes)
        t.resolve(upTo: 2, multiple: false, nackError: nil)
        t.returned(Self.unroutable)
        let waits = t.removeAll()
        #expect(waits.count == 3 && t.waitingCount == 0)
        for callback in waits { callback(.failure(AMQPError(.connectionLost, operation: "read"))) }
        #expect(
            outcomes.of(1) == ["connectionLost"] && outcomes.of(3) == ["connectionLost"]
                && outcomes.of(4) == ["connectionLost"])
        #expect(outcomes.of(2) == ["ok"])
        // After a new channel, the numbering starts again and the old return does not fail the new publish 1.
        t.restartNumbering()
        t.track(outcomes.callback(for: 101))
        t.resolve(upTo: 1, multiple: false, nackError: nil)
        #expect(outcomes.of(101) == ["ok"])
    }

    @Test func removeAllReturnsTheWaitsInSequenceOrder() {
        var t = ConfirmTracker()
        var seen: [UInt64] = []
        for seq: UInt64 in 1...20 { t.track { _ in seen.append(seq) } }
        for callback in t.removeAll() { callback(.success(())) }
        #expect(seen == Array(1...20))
    }

    @Test func restartNumberingStartsAgainAtOne() {
        let outcomes = Outcomes()
        var t = Self.tracker(publishing: 3, into: outcomes)
        _ = t.removeAll()
        t.restartNumbering()
        #expect(t.nextSequence == 1 && t.oldestUnconfirmed == 1)
        t.track(outcomes.callback(for: 7))
        t.resolve(upTo: 1, multiple: true, nackError: nil)
        #expect(outcomes.of(7) == ["ok"])
    }

    @Test func aBlockIsTooLongOnlyOnceItLastsTheTimeoutWithPublishesWaiting() {
        let t0 = ContinuousClock.now
        let timeout = Duration.seconds(30)
        var t = ConfirmTracker()
        t.blocked(at: t0)
        // Nothing waits: never too long.
        #expect(!t.blockedTooLong(now: t0 + .seconds(60), timeout: timeout))
        t.track { _ in }
        #expect(!t.blockedTooLong(now: t0 + .seconds(29), timeout: timeout))
        #expect(t.blockedTooLong(now: t0 + .seconds(30), timeout: timeout))
        t.unblocked()
        #expect(!t.blockedTooLong(now: t0 + .seconds(60), timeout: timeout))
    }

    @Test func theClockIsNotReadUnlessBlockedWithPublishesWaiting() {
        var reads = 0
        func now() -> ContinuousClock.Instant { reads += 1; return ContinuousClock.now }
        var t = ConfirmTracker()
        t.track { _ in }
        _ = t.blockedTooLong(now: now(), timeout: .seconds(1))
        #expect(reads == 0)
        t.blocked(at: .now)
        _ = t.blockedTooLong(now: now(), timeout: .seconds(1))
        #expect(reads == 1)
    }
}
