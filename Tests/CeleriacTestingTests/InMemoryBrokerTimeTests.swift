import CeleriacBroker
import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import Testing

/// The in-memory broker's timers on a manual clock: what the contract cannot pin in real time on RabbitMQ.
@Suite struct InMemoryBrokerTimeTests {
    @Test(arguments: [1, 9, 30, 3600])
    func aDelayedMessageReachesItsQueueExactlyWhenTheClockPassesItsDelay(_ seconds: Int) async throws {
        let clock = ManualClock()
        let broker = InMemoryBroker(clock: clock)
        let c = broker.connection(.init(name: "delay"))
        try await c.connect()
        try await c.declare(QueueSpec("work"))
        try await DelayTopology.declare(on: c, queues: ["work"])
        try await c.publish(
            OutgoingMessage(
                exchange: Topology.delayLevel(Topology.delayLevels - 1),
                routingKey: Topology.delayRoutingKey(seconds: seconds, routingKey: "work"), body: [1]))
        await clock.advance(by: .seconds(seconds) - .milliseconds(1))
        #expect(broker.messages(in: "work")?.count == 0)
        #expect(broker.delayedMessageCount == 1)
        await clock.advance(by: .milliseconds(1))
        #expect(broker.messages(in: "work")?.count == 1)
        #expect(broker.delayedMessageCount == 0)
        await c.close()
    }

    @Test func theTimerReleasesADelayedMessageToAConsumerWithoutAnyOtherCall() async throws {
        let clock = ManualClock()
        let broker = InMemoryBroker(clock: clock)
        let c = broker.connection(.init(name: "timer"))
        try await c.connect()
        try await c.declare(QueueSpec("work"))
        try await DelayTopology.declare(on: c, queues: ["work"])
        let consumer = try await c.consume(queue: "work", prefetch: 1)
        try await c.publish(
            OutgoingMessage(
                exchange: Topology.delayLevel(Topology.delayLevels - 1),
                routingKey: Topology.delayRoutingKey(seconds: 10, routingKey: "work"), body: [7]))
        for _ in 0..<10 { await clock.advance(by: .seconds(1)) }
        var iterator = consumer.deliveries.makeAsyncIterator()
        let delivery = await iterator.next()
        #expect(delivery?.body == [7])
        await c.close()
    }
}
