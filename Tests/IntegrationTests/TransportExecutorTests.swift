import AMQPTransport
import Testing

/// A connection is a TaskExecutor: code that prefers it runs on the connection's thread, including across the
/// awaits of a publish and of a delivery, and a task that prefers a closed connection still runs.
@Suite(.tags(.integration))
struct TransportExecutorTests {
    @Test func codePreferringTheConnectionStaysOnItsThreadThroughPublishAndConsume() async throws {
        let c = AMQPConnection(url: try TestBroker.shared.url(), options: .init(name: "it-executor", confirms: true))
        try await c.connect()
        let queue = uniqueName()
        try await c.declare(QueueSpec(queue, durable: false).expires(milliseconds: 60_000))
        let consumer = try await c.consume(queue: queue, prefetch: 10)
        #expect(!c.isOnConnectionThread)
        let received = try await withTaskExecutorPreference(c) { () async throws -> [String] in
            var it = consumer.deliveries.makeAsyncIterator()
            var bodies: [String] = []
            for i in 0..<200 {
                #expect(c.isOnConnectionThread)
                try await c.publish(OutgoingMessage(routingKey: queue, body: Array("m\(i)".utf8)))
                #expect(c.isOnConnectionThread)
                guard let d = await it.next() else { break }
                #expect(c.isOnConnectionThread)
                bodies.append(String(decoding: d.body, as: UTF8.self))
                c.ackInBackground(d.tag)
            }
            return bodies
        }
        #expect(received == (0..<200).map { "m\($0)" })
        let left = try await c.inspect(queue: queue)
        #expect(left.messageCount == 0)
        try await c.deleteQueue(queue)
        await c.close()
    }

    @Test func aTaskPreferringAClosedConnectionRunsElsewhereAndItsCallsFailTyped() async throws {
        let c = AMQPConnection(url: try TestBroker.shared.url(), options: .init(name: "it-executor-closed"))
        try await c.connect()
        await c.close()
        let ranOnConnection = await Task(executorPreference: c) { c.isOnConnectionThread }.value
        #expect(!ranOnConnection)
        await #expect {
            try await withTaskExecutorPreference(c) {
                try await c.publish(OutgoingMessage(routingKey: "nowhere", body: [1]))
            }
        } throws: { ($0 as? AMQPError)?.code == .closed }
    }
}
