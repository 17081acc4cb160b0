import CeleriacBroker
import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import Logging
import Synchronization
import Testing

@testable import CeleriacWorker

/// ``DeliveryIntake`` alone on the in-memory broker, with a fixed capacity in place of the execution.
@Suite struct DeliveryIntakeTests {
    struct FixedCapacity: IntakeCapacity {
        var concurrency: Int
        func hasFreeSlots() async -> Bool { true }
    }

    /// Counts consumer restarts by reason.
    final class Restarts: WorkerObserver {
        let reasons = EventLog<String>()
        let reserved = Mutex(0)
        let prefetches = EventLog<Int>()
        func prefetchChanged(_ prefetch: Int) { prefetches.append(prefetch) }
        func consumerRestarted(queue: String, reason: String) { reasons.append(reason) }
        func tasksReserved(queue: String, delta: Int) { reserved.withLock { $0 += delta } }
    }

    let clock = ManualClock()
    let broker: InMemoryBroker
    let publishing: any BrokerConnection
    let consuming: any BrokerConnection
    let observer = Restarts()

    init() async throws {
        let rig = try await BrokerRig(clock: clock)
        (broker, publishing, consuming) = (rig.broker, rig.publishing, rig.consuming)
    }

    /// Declarations go to `base`; once `armed`, an exchange declaration opens `entered` and waits for `gate`.
    final class HeldTopology: TopologyDeclaring {
        let base: any TopologyDeclaring
        let armed = Atomic<Bool>(false)
        let entered = Gate()
        let gate = Gate()
        init(base: any TopologyDeclaring) { self.base = base }
        func declare(_ exchange: ExchangeSpec) async throws(BrokerError) {
            if armed.load(ordering: .relaxed) {
                entered.open()
                await gate.wait()
            }
            try await base.declare(exchange)
        }
        func declare(_ queue: QueueSpec, recreateAfterReconnect: Bool) async throws(BrokerError) -> QueueDeclareOK {
            try await base.declare(queue, recreateAfterReconnect: recreateAfterReconnect)
        }
        func bind(_ binding: BindingSpec) async throws(BrokerError) { try await base.bind(binding) }
        func bind(_ binding: ExchangeBindingSpec) async throws(BrokerError) { try await base.bind(binding) }
        func deleteQueue(_ name: String, ifUnused: Bool, ifEmpty: Bool) async throws(BrokerError) -> UInt32 {
            try await base.deleteQueue(name, ifUnused: ifUnused, ifEmpty: ifEmpty)
        }
        func deleteExchange(_ name: String) async throws(BrokerError) { try await base.deleteExchange(name) }
        func purge(queue name: String) async throws(BrokerError) -> UInt32 { try await base.purge(queue: name) }
    }

    func intake(
        queues: [String], concurrency: Int = 1, adaptive: Worker.AdaptivePrefetch? = nil,
        topology: (any TopologyDeclaring)? = nil
    ) async throws -> DeliveryIntake {
        let intake = DeliveryIntake(
            settings: .init(
                hostname: "celeriac@test", queues: queues, prefetchMultiplier: 1, adaptivePrefetch: adaptive,
                watchdogInterval: .seconds(30), maxPriority: nil, queueType: .classic, clock: clock),
            connection: consuming, topology: topology ?? publishing, capacity: FixedCapacity(concurrency: concurrency),
            observer: observer, logger: Logger(label: "test"))
        for queue in queues {
            try await intake.declareWorkQueue(queue)
            try await DelayTopology.declare(on: publishing, queues: [queue])
        }
        return intake
    }

    func send(_ name: String, to queue: String) async throws {
        try await publishing.publish(TaskCodec.encode(TaskMessage(name: name), routingKey: queue))
    }

    @Test func deliveriesOfEveryQueueArriveInOneStreamAndWaitInTheReserve() async throws {
        let intake = try await intake(queues: ["a", "b"], concurrency: 4)
        try await intake.start()
        #expect(intake.prefetch == 4)
        let forwarding = Task { await intake.forwardAll() }
        try await send("t.one", to: "a")
        try await send("t.two", to: "b")
        var seen: [String] = []
        var iterator = intake.deliveries.makeAsyncIterator()
        for _ in 0..<2 {
            let (delivery, queue) = try #require(await iterator.next())
            seen.append(queue)
            #expect(intake.reserved.contains { $0.0.tag == delivery.tag })
            intake.leftReserve(delivery, queue: queue)
        }
        #expect(seen.sorted() == ["a", "b"])
        #expect(intake.reserved.isEmpty)
        #expect(observer.reserved.withLock { $0 } == 0)
        #expect(intake.isReady)
        await intake.stop()
        #expect(!intake.isReady)
        while await iterator.next() != nil {}  // the stream ends once every consumer is cancelled
        await forwarding.value
    }

    @Test func aQueueDeletedUnderTheConsumerIsDeclaredAndConsumedAgain() async throws {
        let intake = try await intake(queues: ["work"])
        try await intake.start()
        let forwarding = Task { await intake.forwardAll() }
        try await publishing.deleteQueue("work")
        try await observer.reasons.wait("the re-subscribe") { $0 == "resubscribed" }
        try await send("t.after", to: "work")
        var iterator = intake.deliveries.makeAsyncIterator()
        let (delivery, queue) = try #require(await iterator.next())
        #expect(queue == "work")
        #expect(try TaskCodec.decode(delivery).name == "t.after")
        await intake.stop()
        while await iterator.next() != nil {}
        await forwarding.value
    }

    @Test func adaptivePrefetchSubscribesAgainWithTheMultiplierShortTasksEarnAndBackForLongOnes() async throws {
        let intake = try await intake(
            queues: ["work"], concurrency: 1,
            adaptive: .init(maxMultiplier: 8, reservedWork: .milliseconds(50)))
        for i in 0..<20 { try await send("t.\(i)", to: "work") }
        try await intake.start()
        #expect(intake.prefetch == 1)
        let forwarding = Task { await intake.forwardAll() }
        var iterator = intake.deliveries.makeAsyncIterator()
        let first = try #require(await iterator.next())
        #expect(try await publishing.inspect(queue: "work").messageCount == 19)
        // 32 completions while the manual clock stands still: the fastest pace, so the multiplier goes to 8.
        for _ in 0..<32 { await intake.taskFinished() }
        #expect(intake.prefetchMultiplier == 8)
        #expect(intake.prefetch == 8)
        // The new consumer takes eight more while the first delivery is still unacked (it stays with the channel).
        var more: [Delivery] = []
        for _ in 0..<8 { more.append(try #require(await iterator.next()).0) }
        #expect(Set(more.map(\.tag)).count == 8)
        #expect(!more.contains { $0.tag == first.0.tag })
        // A completion 2 s later (a long task) brings it back to the floor.
        await clock.advance(by: .seconds(2))
        await intake.taskFinished()
        #expect(intake.prefetch == 1)
        #expect(observer.prefetches.items == [1, 8, 1])
        // Re-subscribing for a new prefetch is not a stall.
        #expect(!observer.reasons.items.contains("resubscribed"))
        await intake.stop()
        while await iterator.next() != nil {}
        await forwarding.value
    }

    typealias Intake = (
        intake: DeliveryIntake, forwarding: Task<Void, Never>,
        iterator: UnboundedChannel<(Delivery, String)>.Stream.Iterator
    )

    /// An adaptive intake of one slot on "work" (multiplier up to 8), started, holding the one message queued.
    func adaptiveIntakeHoldingOne() async throws -> Intake {
        let intake = try await intake(
            queues: ["work"], concurrency: 1,
            adaptive: .init(maxMultiplier: 8, reservedWork: .milliseconds(50)))
        try await send("t.0", to: "work")
        try await intake.start()
        let forwarding = Task { await intake.forwardAll() }
        var iterator = intake.deliveries.makeAsyncIterator()
        _ = try #require(await iterator.next())
        return (intake, forwarding, iterator)
    }

    /// Stops the intake and waits for its stream and forwarders to end.
    func stop(_ running: Intake) async {
        var iterator = running.iterator
        await running.intake.stop()
        while await iterator.next() != nil {}
        await running.forwarding.value
    }

    @Test func adaptivePrefetchGrowsOnlyWhenMessagesWaitInTheQueue() async throws {
        let running = try await adaptiveIntakeHoldingOne()
        let intake = running.intake
        // The fastest pace, but no message waits (the only one was delivered): prefetch stays.
        for _ in 0..<32 { await intake.taskFinished() }
        #expect(intake.prefetch == 1)
        #expect(observer.prefetches.items == [1])
        // A backlog builds; the governor asks again a window of completions later, and then it grows.
        for i in 0..<20 { try await send("t.more.\(i)", to: "work") }
        for _ in 0..<31 { await intake.taskFinished() }
        #expect(intake.prefetch == 1, "not asked again within the window")
        await intake.taskFinished()
        #expect(intake.prefetch == 8)
        #expect(observer.prefetches.items == [1, 8])
        await stop(running)
    }

    @Test func adaptivePrefetchGrowsByNoMoreThanItsShareOfTheBacklog() async throws {
        let running = try await adaptiveIntakeHoldingOne()
        let intake = running.intake
        // Another worker consumes the queue too (prefetch 1, busy with the one it holds).
        let other = try await publishing.consume(queue: "work", prefetch: 1)
        for i in 0..<12 { try await send("t.more.\(i)", to: "work") }
        var others = other.deliveries.makeAsyncIterator()
        _ = try #require(await others.next())
        #expect(try await publishing.inspect(queue: "work").messageCount == 11)
        // The pace wants 8 (7 more), but this worker's share of the 11 waiting is 5: 1 + 5 = 6.
        for _ in 0..<32 { await intake.taskFinished() }
        #expect(intake.prefetch == 6)
        #expect(observer.prefetches.items == [1, 6])
        try await publishing.cancel(other)
        await stop(running)
    }

    @Test(.timeLimit(.minutes(1)))
    func aWarmShutdownDuringAResubscriptionStillEndsTheStream() async throws {
        let held = HeldTopology(base: publishing)
        let intake = try await intake(queues: ["work"], topology: held)
        try await intake.start()
        let forwarding = Task { await intake.forwardAll() }
        held.armed.store(true, ordering: .relaxed)
        // A new prefetch: the consumer is cancelled and the forwarder, declaring the queue again, waits at the gate.
        await intake.resubscribeAll()
        await held.entered.wait()
        // The warm shutdown cancels the consumers it knows of now: only the old one.
        await intake.stop()
        held.gate.open()
        // The forwarder subscribes afresh, finds the worker stopping and cancels that consumer too: its stream ends.
        var iterator = intake.deliveries.makeAsyncIterator()
        #expect(await iterator.next() == nil)
        await forwarding.value
    }

    @Test func queuesAreAddedAndCancelledAtRunTimeButNotTheLastOne() async throws {
        let intake = try await intake(queues: ["a"])
        await #expect(throws: CeleriacError.self) { _ = try await intake.add(queue: "b") }  // not started yet
        try await intake.start()
        let forwarding = Task { await intake.forwardAll() }
        #expect(try await intake.add(queue: "b"))
        #expect(!(try await intake.add(queue: "b")), "already consumed")
        #expect(intake.queues == ["a", "b"])
        try await send("t.b", to: "b")
        var iterator = intake.deliveries.makeAsyncIterator()
        #expect(try #require(await iterator.next()).1 == "b")
        #expect(try await intake.cancel(queue: "a"))
        #expect(!(try await intake.cancel(queue: "a")), "not consumed any more")
        await #expect(throws: CeleriacError.self) { _ = try await intake.cancel(queue: "b") }
        #expect(intake.queues == ["b"])
        await intake.stop()
        while await iterator.next() != nil {}
        await forwarding.value
    }

    @Test func theWatchdogResubscribesAQueueWhoseMessagesWaitWhileSlotsAreFree() async throws {
        // Prefetch 1 and the first delivery never settled: the second message waits although a slot is free, the
        // stall of celery#8030. A fresh consumer gets it.
        let intake = try await intake(queues: ["work"], concurrency: 1)
        try await intake.start()
        let forwarding = Task { await intake.forwardAll() }
        let watchdog = Task { await intake.watchdog() }
        try await send("t.first", to: "work")
        try await send("t.second", to: "work")
        var iterator = intake.deliveries.makeAsyncIterator()
        _ = try #require(await iterator.next())
        intake.took()
        try await clock.waitForSleepers(1)
        await clock.advance(by: .seconds(30))
        try await observer.reasons.wait("the watchdog's re-subscribe") { $0 == "watchdog" }
        #expect(intake.isStalled)
        #expect(!intake.isReady)
        let (second, _) = try #require(await iterator.next())
        #expect(try TaskCodec.decode(second).name == "t.second")
        intake.took()
        #expect(!intake.isStalled, "a delivery ends the stall")
        watchdog.cancel()
        await intake.stop()
        while await iterator.next() != nil {}
        await forwarding.value
    }
}
