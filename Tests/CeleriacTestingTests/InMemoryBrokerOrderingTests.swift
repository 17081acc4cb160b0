import CeleriacBroker
import CeleriacTesting
import Synchronization
import Testing

/// The order in which the in-memory broker's effects reach clients, where concurrent calls race.
@Suite struct InMemoryBrokerOrderingTests {
    /// Publishes (each delivering at once to a consumer without a prefetch bound) race a cancel of that consumer.
    /// As on RabbitMQ, where deliveries travel ahead of `cancel-ok` on the channel, a delivery the broker made
    /// before the cancel must reach the consumer's stream before the stream ends; one dropped in between would
    /// stay unacked, out of anybody's reach, while the connection lives (a chord that never joined, found when
    /// workers began to re-subscribe for a new prefetch). A race, so many rounds: with the effects ordered it
    /// cannot fail; without, it failed in some runs.
    @Test func everyDeliveryMadeBeforeACancelReachesTheConsumer() async throws {
        for round in 0..<200 {
            let broker = InMemoryBroker()
            let consuming = broker.connection(.init(name: "consuming"))
            let publishing = broker.connection(.init(name: "publishing"))
            try await consuming.connect()
            try await publishing.connect()
            try await publishing.declare(QueueSpec("work"))
            let consumer = try await consuming.consume(queue: "work", prefetch: 0)
            let total = 64
            var received = 0
            try await withThrowingTaskGroup(of: Void.self) { group in
                for lane in 0..<4 {
                    group.addTask {
                        for _ in stride(from: lane, to: total, by: 4) {
                            try await publishing.publish(OutgoingMessage(exchange: "", routingKey: "work", body: [1]))
                        }
                    }
                }
                for await _ in consumer.deliveries {
                    received += 1
                    if received == 1 + round % 32 { group.addTask { try? await consuming.cancel(consumer) } }
                }
                try await group.waitForAll()
            }
            // Whatever the consumer did not receive must still be in the queue, ready: none held unacked.
            #expect(broker.messages(in: "work")?.count == total - received, "round \(round)")
            await consuming.close()
            await publishing.close()
        }
    }
}
