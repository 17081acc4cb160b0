import CeleriacBroker
import Testing

@testable import CeleriacTesting

/// The in-memory broker's rules as a pure value, for what the contract does not reach on both brokers.
@Suite struct MemoryBrokerStateTests {
    func state() -> (MemoryBrokerState, Int) {
        var s = MemoryBrokerState()
        let c = s.openConnection()
        return (s, c)
    }

    @Test func aFullDropHeadQueueDeadLettersItsOldestAsMaxlen() throws {
        var (s, c) = state()
        var outbox = MemoryBrokerState.Outbox()
        _ = try s.declare(QueueSpec("dead"), connection: c, now: .zero)
        _ = try s.declare(
            QueueSpec(
                "q",
                arguments: [
                    "x-max-length": .int(2), "x-dead-letter-exchange": .string(""),
                    "x-dead-letter-routing-key": .string("dead"),
                ]), connection: c, now: .zero)
        for body in ["1", "2", "3"] {
            _ = try s.publish(
                OutgoingMessage(routingKey: "q", body: Array(body.utf8)), connection: c, now: .zero, outbox: &outbox)
        }
        #expect(s.queues["q"]?.ready.map { String(decoding: $0.body, as: UTF8.self) } == ["2", "3"])
        let dead = try #require(s.queues["dead"]?.ready.first)
        #expect(String(decoding: dead.body, as: UTF8.self) == "1")
        #expect(dead.properties.headers?["x-first-death-reason"] == .string("maxlen"))
    }

    @Test func aMessageDeadLetteredTwiceFromOneQueueCountsTwiceInOneXDeathEntry() throws {
        var (s, c) = state()
        var outbox = MemoryBrokerState.Outbox()
        // q dead-letters into back, which dead-letters (on TTL 0) straight back into q.
        _ = try s.declare(
            QueueSpec(
                "q", arguments: ["x-dead-letter-exchange": .string(""), "x-dead-letter-routing-key": .string("back")]),
            connection: c, now: .zero)
        _ = try s.declare(
            QueueSpec(
                "back",
                arguments: [
                    "x-message-ttl": .int(0), "x-dead-letter-exchange": .string(""),
                    "x-dead-letter-routing-key": .string("q"),
                ]), connection: c, now: .zero)
        _ = try s.publish(OutgoingMessage(routingKey: "q", body: [1]), connection: c, now: .zero, outbox: &outbox)
        for round in 1...2 {
            let d = try #require(
                try s.get(queue: "q", noAck: false, connection: c, now: .seconds(round), outbox: &outbox))
            #expect(
                s.settle(d.tag, multiple: false, how: .discard, connection: c, now: .seconds(round), outbox: &outbox))
            s.advance(to: .seconds(round), outbox: &outbox)
        }
        let back = try #require(s.queues["q"]?.ready.first)
        guard case .array(let deaths)? = back.properties.headers?["x-death"] else { Issue.record("no x-death"); return }
        let fromQ = deaths.compactMap { v -> FieldTable? in
            if case .table(let t) = v { return t }; return nil
        }
        .first { $0["queue"] == .string("q") && $0["reason"] == .string("rejected") }
        #expect(fromQ?["count"]?.intValue == 2)
        #expect(back.properties.headers?["x-first-death-queue"] == .string("q"))
    }

    @Test func prioritiesAboveTheQueuesMaximumCountAsTheMaximum() throws {
        var (s, c) = state()
        var outbox = MemoryBrokerState.Outbox()
        _ = try s.declare(QueueSpec("p").maxPriority(5), connection: c, now: .zero)
        for (body, priority) in [("five", 5), ("nine", 9), ("one", 1)] as [(String, UInt8)] {
            _ = try s.publish(
                OutgoingMessage(
                    routingKey: "p", body: Array(body.utf8), properties: BasicProperties(priority: priority)),
                connection: c, now: .zero, outbox: &outbox)
        }
        // 9 is capped to 5: it ranks with "five", after it by publish order.
        #expect(s.queues["p"]?.ready.map { String(decoding: $0.body, as: UTF8.self) } == ["five", "nine", "one"])
    }

    @Test func closingAConnectionRequeuesItsUnsettledInOrderAndDropsItsExclusiveQueues() throws {
        var (s, c) = state()
        var outbox = MemoryBrokerState.Outbox()
        _ = try s.declare(QueueSpec("q"), connection: c, now: .zero)
        _ = try s.declare(QueueSpec("mine", exclusive: true), connection: c, now: .zero)
        for b in [1, 2, 3] as [UInt8] {
            _ = try s.publish(OutgoingMessage(routingKey: "q", body: [b]), connection: c, now: .zero, outbox: &outbox)
        }
        _ = try s.get(queue: "q", noAck: false, connection: c, now: .zero, outbox: &outbox)
        _ = try s.get(queue: "q", noAck: false, connection: c, now: .zero, outbox: &outbox)
        s.close(c, now: .zero, outbox: &outbox)
        #expect(s.queues["q"]?.ready.map(\.body) == [[1], [2], [3]])
        #expect(s.queues["q"]?.ready.map(\.redelivered) == [true, true, false])
        #expect(s.queues["mine"] == nil)
    }
}
