import Testing

@testable import AMQPTransport

/// Coalescing acks: a `multiple` ack only where every tag below it is settled, never over an outstanding tag.
@Suite struct AckTrackerTests {
    @Test func consecutiveAcksLeaveAsOneMultipleAck() {
        var t = AckTracker()
        for tag in [3, 1, 2, 4] as [UInt64] { t.queueAck(tag) }
        let (upTo, singles) = t.flush()
        #expect(upTo == 4 && singles.isEmpty)
        #expect(t.floor == 4)
    }

    @Test func anOutstandingTagIsNeverCovered() {
        var t = AckTracker()
        // Tag 2 is a long task, still running: 1 and 3…5 are acked.
        for tag in [1, 3, 4, 5] as [UInt64] { t.queueAck(tag) }
        let (upTo, singles) = t.flush()
        #expect(upTo == 1)
        #expect(singles == [3, 4, 5])
        #expect(t.floor == 1)
        // When 2 is acked at last, the floor jumps over the tags already sent one by one.
        t.queueAck(2)
        let next = t.flush()
        #expect(next.multipleUpTo == 2 && next.singles.isEmpty)
        #expect(t.floor == 5)
    }

    @Test func nacksRejectsAndNoAckDeliveriesCountAsSettled() {
        var t = AckTracker()
        t.settled(1)  // a no-ack delivery
        t.settled(2)  // a reject
        t.queueAck(3)
        #expect(t.flush().multipleUpTo == 3)
        t.settled(upTo: 6)  // a multiple nack the application sent
        t.queueAck(8)
        let (upTo, singles) = t.flush()
        #expect(upTo == nil && singles == [8])  // 7 is outstanding
        #expect(t.floor == 6)
    }

    @Test func aResetStartsAgainForANewChannel() {
        var t = AckTracker()
        t.queueAck(1)
        _ = t.flush()
        t.queueAck(2)
        t.reset()
        #expect(!t.hasPending && t.floor == 0)
        t.queueAck(1)
        #expect(t.flush().multipleUpTo == 1)
    }
}
