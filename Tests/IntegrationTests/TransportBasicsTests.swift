import AMQPTransport
import Foundation
import Testing

@Suite(.tags(.integration))
struct TransportBasicsTests {
    func connect(_ options: AMQPConnection.Options = .init(name: "it-basics")) async throws -> AMQPConnection {
        let c = AMQPConnection(url: try TestBroker.shared.url(), options: options)
        try await c.connect()
        return c
    }

    @Test func everyFieldTableTypeRoundTripsExactly() async throws {
        let c = try await connect()
        defer { Task { await c.close() } }
        let queue = uniqueName()
        try await c.declare(QueueSpec(queue, durable: false, autoDelete: false).expires(milliseconds: 60_000))
        let nested: FieldTable = [
            "inner": .table(["deep": .array([.int32(1), .string("x"), .table([:])])]), "empty": .table([:]),
        ]
        let headers: FieldTable = [
            "s": .string("héllo ✓"), "empty-string": .string(""),
            "b-true": .bool(true), "b-false": .bool(false),
            "i8": .int8(-8), "i16": .int16(-1600), "i32": .int32(Int32.min), "i64": .int64(Int64.max),
            "i64-neg": .int64(-1_180_591_620_717), "f32": .float(1.5), "f64": .double(-2.25e100),
            "decimal": .decimal(scale: 2, value: 110), "bytes": .bytes([0, 255, 7]), "empty-bytes": .bytes([]),
            "ts": .timestamp(1_795_916_052), "void": .void,
            "array": .array([.int32(30), .double(20.5), .void, .bool(true)]), "empty-array": .array([]),
            "nested": .table(nested), "empty-table": .table([:]),
            "array-of-tables": .array([.table(["a": .int32(1)]), .table([:]), .array([.array([])])]),
        ]
        let props = BasicProperties(
            contentType: "application/json", contentEncoding: "utf-8", headers: headers, deliveryMode: 2, priority: 7,
            correlationID: "corr-1", replyTo: "reply-q", expiration: "60000", messageID: "mid",
            timestamp: 1_795_916_000,
            type: "t", userID: "guest", appID: "celeriac-tests")
        try await c.publish(OutgoingMessage(routingKey: queue, body: Array("payload".utf8), properties: props))
        let got = try #require(try await c.get(queue: queue, noAck: true))
        #expect(got.body == Array("payload".utf8))
        #expect(got.properties == props)
        #expect(got.properties.headers == headers)
        try await c.deleteQueue(queue)
    }

    @Test func emptyHeadersAndBodyRoundTrip() async throws {
        let c = try await connect()
        defer { Task { await c.close() } }
        let queue = uniqueName()
        try await c.declare(QueueSpec(queue, durable: false).expires(milliseconds: 60_000))
        try await c.publish(OutgoingMessage(routingKey: queue, body: [], properties: BasicProperties(headers: [:])))
        let got = try #require(try await c.get(queue: queue, noAck: true))
        #expect(got.body.isEmpty)
        #expect(got.properties.headers == [:])
        #expect(got.messageCount == 0)
        try await c.deleteQueue(queue)
    }

    @Test func mandatoryUnroutablePublishIsReportedAsAnError() async throws {
        let c = try await connect()
        defer { Task { await c.close() } }
        await #expect {
            try await c.publish(OutgoingMessage(routingKey: uniqueName("nowhere"), body: [1], mandatory: true))
        } throws: { ($0 as? AMQPError)?.code == .unroutable && ($0 as? AMQPError)?.replyCode == 312 }
        // The connection stays usable.
        let q = uniqueName()
        try await c.declare(QueueSpec(q, durable: false).expires(milliseconds: 60_000))
        try await c.publish(OutgoingMessage(routingKey: q, body: [2], mandatory: true))
        #expect(try await c.inspect(queue: q).messageCount == 1)
        try await c.deleteQueue(q)
    }

    @Test func inequivalentRedeclareClosesOnlyTheAdminChannel() async throws {
        let c = try await connect()
        defer { Task { await c.close() } }
        let q = uniqueName()
        try await c.declare(QueueSpec(q, durable: false).expires(milliseconds: 60_000))
        let consumer = try await c.consume(queue: q, prefetch: 10)
        await #expect {
            try await c.declare(QueueSpec(q, durable: true))
        } throws: { error in
            guard let e = error as? AMQPError else { return false }
            return e.code == .channelClosed && e.replyCode == 406 && e.description.contains("PRECONDITION_FAILED")
        }
        await #expect {
            _ = try await c.inspect(queue: uniqueName("missing"))
        } throws: { ($0 as? AMQPError)?.replyCode == 404 }
        // The consumer on the main channel still receives.
        try await c.publish(OutgoingMessage(routingKey: q, body: [42]))
        let d = try await first(consumer.deliveries, within: .seconds(10), "the delivery after a 406") { _ in true }
        #expect(d.body == [42])
        #expect(await c.ack(d.tag))
        try await c.deleteQueue(q)
    }

    @Test func nackAndRejectWithoutRequeueDeadLetter() async throws {
        let c = try await connect()
        defer { Task { await c.close() } }
        let dlx = uniqueName("dlx"), dlq = uniqueName("dlq"), q = uniqueName()
        try await c.declare(ExchangeSpec(dlx, kind: .fanout, durable: false, autoDelete: true))
        try await c.declare(QueueSpec(dlq, durable: false).expires(milliseconds: 60_000))
        try await c.bind(BindingSpec(queue: dlq, exchange: dlx, routingKey: ""))
        try await c.declare(QueueSpec(q, durable: false).expires(milliseconds: 60_000).deadLetterExchange(dlx))
        try await c.publish([
            OutgoingMessage(routingKey: q, body: [1]), OutgoingMessage(routingKey: q, body: [2]),
            OutgoingMessage(routingKey: q, body: [3]),
        ])
        let consumer = try await c.consume(queue: q, prefetch: 3)
        var it = consumer.deliveries.makeAsyncIterator()
        let d1 = try #require(await it.next()), d2 = try #require(await it.next()), d3 = try #require(await it.next())
        #expect(await c.nack(d1.tag, requeue: false))
        #expect(await c.reject(d2.tag, requeue: false))
        #expect(await c.nack(d3.tag, requeue: true))
        let again = try #require(await it.next())
        #expect(again.redelivered && again.body == [3])
        #expect(await c.ack(again.tag))
        let dead1 = try #require(try await c.get(queue: dlq, noAck: true))
        let dead2 = try #require(try await c.get(queue: dlq, noAck: true))
        #expect(Set([dead1.body, dead2.body]) == Set([[1], [2]]))
        #expect(dead1.properties.headers?["x-death"] != nil)
        try await c.cancel(consumer)
        try await c.deleteQueue(q)
        try await c.deleteQueue(dlq)
    }

    @Test func purgeDeleteAndGet() async throws {
        let c = try await connect()
        defer { Task { await c.close() } }
        let q = uniqueName()
        try await c.declare(QueueSpec(q, durable: true).maxPriority(9).messageTTL(milliseconds: 600_000))
        try await c.publish(
            (0..<5).map {
                OutgoingMessage(
                    routingKey: q, body: [UInt8($0)], properties: .init(deliveryMode: 2, priority: UInt8($0)))
            })
        // Highest priority first.
        let top = try #require(try await c.get(queue: q))
        #expect(top.body == [4])
        #expect(top.messageCount == 4)
        #expect(await c.ack(top.tag))
        #expect(try await c.purge(queue: q) == 4)
        #expect(try await c.get(queue: q) == nil)
        #expect(try await c.deleteQueue(q) == 0)
    }

    @Test func quorumAndSingleActiveConsumerArguments() async throws {
        let c = try await connect()
        defer { Task { await c.close() } }
        let q = uniqueName()
        let ok = try await c.declare(QueueSpec(q).quorum().singleActiveConsumer())
        #expect(ok.queue == q)
        let consumer = try await c.consume(queue: q, prefetch: 5)
        try await c.publish(OutgoingMessage(routingKey: q, body: [9], properties: .init(deliveryMode: 2)))
        let d = try await first(consumer.deliveries, within: .seconds(10), "a quorum delivery") { _ in true }
        #expect(await c.ack(d.tag))
        try await c.deleteQueue(q)
    }

    @Test func consumerIsCancelledWhenItsQueueIsDeleted() async throws {
        let c = try await connect()
        defer { Task { await c.close() } }
        let other = try await connect()
        defer { Task { await other.close() } }
        let q = uniqueName()
        try await c.declare(QueueSpec(q, durable: false).expires(milliseconds: 60_000))
        let events = c.events()
        let consumer = try await c.consume(queue: q, prefetch: 1)
        try await other.deleteQueue(q)
        let e = try await first(events, within: .seconds(10), "consumerCancelled") {
            if case .consumerCancelled = $0 { return true }; return false
        }
        #expect(e == .consumerCancelled(tag: consumer.tag))
        for await _ in consumer.deliveries {}  // the stream finishes
    }

    @Test func hundredThousandConfirmedMessagesNoneLost() async throws {
        let publisher = try await connect(.init(name: "it-100k-pub", confirms: true))
        let consumerConnection = try await connect(.init(name: "it-100k-con", confirms: false))
        defer {
            Task {
                await publisher.close(); await consumerConnection.close()
            }
        }
        let q = uniqueName()
        try await publisher.declare(QueueSpec(q, durable: true))
        let total = 100_000
        let consumer = try await consumerConnection.consume(queue: q, prefetch: 500)
        let received = Task { () -> Set<UInt32> in
            var seen = Set<UInt32>()
            var count = 0
            for await d in consumer.deliveries {
                let id = d.body.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                seen.insert(id)
                count += 1
                if count % 50 == 0 { await consumerConnection.ack(d.tag, multiple: true) }
                if seen.count == total {
                    await consumerConnection.ack(d.tag, multiple: true)
                    break
                }
            }
            return seen
        }
        let padding = [UInt8](repeating: 0x2E, count: 296)
        for batchStart in stride(from: 0, to: total, by: 1000) {
            let batch = (batchStart..<batchStart + 1000).map { i -> OutgoingMessage in
                let id = UInt32(i)
                let body =
                    [UInt8(id >> 24 & 0xFF), UInt8(id >> 16 & 0xFF), UInt8(id >> 8 & 0xFF), UInt8(id & 0xFF)] + padding
                return OutgoingMessage(routingKey: q, body: body, properties: .init(deliveryMode: 2))
            }
            try await publisher.publish(batch)
        }
        let seen = try await within(.seconds(120), "100k deliveries") { await received.value }
        #expect(seen.count == total)
        #expect(try await publisher.inspect(queue: q).messageCount == 0)
        try await publisher.deleteQueue(q)
    }
}
