import Testing

@testable import CeleriacWire

/// The queue every delivery travels through: order, finishing, dropping after finish, waking a waiting consumer,
/// and cancellation, as AsyncStream (which it replaces) behaves.
@Suite struct UnboundedChannelTests {
    @Test func elementsComeOutInOrderAcrossTheBufferCompaction() async {
        let channel = UnboundedChannel<Int>()
        // More than the 1 024 consumed elements after which the buffer drops its consumed prefix, interleaved with
        // reads so that compaction happens while elements are still queued.
        var expected = 0
        var it = channel.stream.makeAsyncIterator()
        for round in 0..<5 {
            for i in 0..<1500 { channel.yield(round * 1500 + i) }
            for _ in 0..<1000 {
                #expect(await it.next() == expected)
                expected += 1
            }
        }
        channel.finish()
        while let v = await it.next() {
            #expect(v == expected)
            expected += 1
        }
        #expect(expected == 7500)
    }

    @Test func finishHandsOutWhatIsQueuedThenEnds() async {
        let channel = UnboundedChannel<String>()
        #expect(channel.yield("a"))
        #expect(channel.yield("b"))
        channel.finish()
        #expect(!channel.yield("c"), "a yield after finish is dropped")
        var got: [String] = []
        for await s in channel.stream { got.append(s) }
        #expect(got == ["a", "b"])
        #expect(await channel.next() == nil)
    }

    @Test func aWaitingConsumerIsWokenByAYieldAndByFinish() async {
        let channel = UnboundedChannel<Int>()
        let consumer = Task {
            var got: [Int] = []
            for await v in channel.stream { got.append(v) }
            return got
        }
        #expect(await Self.waiting(channel), "the consumer never suspended in next()")
        channel.yield(1)
        #expect(await Self.waiting(channel), "the consumer did not come back for more after the first element")
        channel.yield(2)
        #expect(await Self.waiting(channel))
        channel.finish()
        #expect(await consumer.value == [1, 2])
    }

    @Test func cancellingTheWaitingTaskEndsItsWaitWithNil() async {
        let channel = UnboundedChannel<Int>()
        let consumer = Task { await channel.next() }
        #expect(await Self.waiting(channel), "the consumer never suspended in next()")
        consumer.cancel()
        #expect(await consumer.value == nil)
        // Cancellation finished the channel, as it finishes an AsyncStream.
        #expect(!channel.yield(1))
    }

    @Test func anElementQueuedBeforeCancellationIsStillHandedOut() async {
        let channel = UnboundedChannel<Int>()
        channel.yield(7)
        let value = await withTaskGroup(of: Int?.self) { group in
            group.addTask { await channel.next() }
            group.cancelAll()
            return await group.next() ?? nil
        }
        // Either the task ran before the cancel (it got 7) or after it (the queued 7 is taken without waiting,
        // as AsyncStream hands out buffered elements to a cancelled task): never nil while an element is queued.
        #expect(value == 7)
    }

    /// Waits (by yielding, not sleeping) until a consumer is suspended in `next()`; false after a bounded number
    /// of turns.
    static func waiting(_ channel: UnboundedChannel<Int>) async -> Bool {
        for _ in 0..<1_000_000 {
            if channel.hasWaiter { return true }
            await Task.yield()
        }
        return false
    }
}
