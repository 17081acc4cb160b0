import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import Foundation
import Testing

@Suite(.tags(.integration))
struct WorkerBadInputTests {
    /// Poison messages go to the dead-letter queue with a reason; the worker keeps serving.
    @Test func malformedMessagesAreDeadLetteredAndTheWorkerKeepsServing() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let running = try await startWorker(
            TestTasks.registry(), url: url, queues: [queue], limits: .init(maxBodyBytes: 4096, maxDepth: 32))
        let raw = AMQPConnection(url: url, options: .init(name: "it-poison"))
        try await raw.connect()
        // A private queue that receives this test's dead letters only (the DLX routes by source queue).
        let dead = uniqueName("dead")
        try await raw.declare(QueueSpec(dead, durable: false).expires(milliseconds: 120_000))
        try await raw.bind(BindingSpec(queue: dead, exchange: Topology.deadLetterExchange, routingKey: queue))

        func headers(_ name: String = "it.add") -> FieldTable {
            ["task": .string(name), "id": .string(UUID().uuidString)]
        }
        let json = BasicProperties(contentType: "application/json", headers: headers())
        let poison: [(String, OutgoingMessage)] = [
            ("not JSON", OutgoingMessage(routingKey: queue, body: Array("{nope".utf8), properties: json)),
            ("two-element body", OutgoingMessage(routingKey: queue, body: Array("[[2,3],{}]".utf8), properties: json)),
            (
                "no content type",
                OutgoingMessage(
                    routingKey: queue, body: Array("[[2,3],{},{}]".utf8),
                    properties: BasicProperties(headers: headers()))
            ),
            (
                "text/plain",
                OutgoingMessage(
                    routingKey: queue, body: Array("hi".utf8),
                    properties: BasicProperties(contentType: "text/plain", headers: headers()))
            ),
            (
                "no task header",
                OutgoingMessage(
                    routingKey: queue, body: Array("[[2,3],{},{}]".utf8),
                    properties: BasicProperties(contentType: "application/json", headers: ["id": .string("x")]))
            ),
            (
                "too large",
                OutgoingMessage(
                    routingKey: queue, body: Array(("[[\"" + String(repeating: "a", count: 5000) + "\"],{},{}]").utf8),
                    properties: json)
            ),
            (
                "too deep",
                OutgoingMessage(
                    routingKey: queue,
                    body: Array(
                        ("[[" + String(repeating: "[", count: 40) + String(repeating: "]", count: 40) + "],{},{}]").utf8
                    ), properties: json)
            ),
            (
                "int beyond 64 bits",
                OutgoingMessage(
                    routingKey: queue, body: Array("[[1180591620717411303424, 1],{},{}]".utf8), properties: json)
            ),
            (
                "bad eta",
                OutgoingMessage(
                    routingKey: queue, body: Array("[[1,2],{},{}]".utf8),
                    properties: BasicProperties(
                        contentType: "application/json", headers: headers().merging(["eta": .string("tomorrow")])))
            ),
        ]
        for (_, message) in poison { try await raw.publish(message) }
        let client = try await startClient(url: url, queue: queue)
        #expect(try await client.send("it.add", args: [20, 22]).get(timeout: .seconds(20)) == .int(42))

        let consumer = try await raw.consume(queue: dead, prefetch: 50)
        var reasons: [String] = []
        for await d in consumer.deliveries {
            #expect(d.properties.headers?[HeaderKey.deadQueue] == .string(queue))
            reasons.append(d.properties.headers?[HeaderKey.deadReason]?.stringValue ?? "?")
            await raw.ack(d.tag)
            if reasons.count == poison.count { break }
        }
        #expect(reasons.count == poison.count)
        #expect(reasons.contains { $0.contains("not valid JSON") })
        #expect(reasons.contains { $0.contains("[args, kwargs, embed]") })
        #expect(reasons.contains { $0.contains("no content_type") })
        #expect(reasons.contains { $0.contains("text/plain") })
        #expect(reasons.contains { $0.contains("no 'task' header") })
        #expect(reasons.contains { $0.contains("byte limit") })
        #expect(reasons.contains { $0.contains("nesting deeper") })
        #expect(reasons.contains { $0.contains("64 bits") })
        #expect(reasons.contains { $0.contains("invalid ETA") })
        #expect(running.observer.deadLettered.withLock { $0.count } == poison.count)
        // Nothing is left unacked or requeued in the work queue.
        #expect(try await raw.inspect(queue: queue).messageCount == 0)
        await raw.close()
        await client.close()
        try await running.stop()
        await deleteQueues([queue, dead], url: url)
    }

    @Test func anUndecodableTaskWithAReplyQueueGetsADecodeErrorResult() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue])
        let client = try await startClient(url: url, queue: queue)
        let raw = AMQPConnection(url: url, options: .init(name: "it-bigint"))
        try await raw.connect()
        // What Python's add.delay(2**70, 1) puts on the wire: valid JSON, but no Swift integer holds it.
        let id = UUID().uuidString.lowercased()
        let props = BasicProperties(
            contentType: "application/json", headers: ["task": .string("it.add"), "id": .string(id)],
            correlationID: id, replyTo: client.replyQueue)
        try await raw.publish(
            OutgoingMessage(
                routingKey: queue, body: Array("[[1180591620717411303424, 1],{},{}]".utf8), properties: props))
        await #expect {
            _ = try await client.result(of: id, timeout: .seconds(30))
        } throws: { error in
            guard case .taskFailed(_, let failedID, let f)? = error as? CeleriacError else { return false }
            return failedID == id && f.type == "DecodeError" && f.module == "kombu.exceptions"
                && f.message.contains("64 bits") && f.message.contains(Topology.deadLetterQueue)
        }
        #expect(running.observer.deadLettered.withLock { $0.count } == 1)
        await raw.close()
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func unknownTaskGetsNotRegisteredAndIsDeadLettered() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue])
        let raw = AMQPConnection(url: url, options: .init(name: "it-unknown"))
        try await raw.connect()
        let dead = uniqueName("dead")
        try await raw.declare(QueueSpec(dead, durable: false).expires(milliseconds: 120_000))
        try await raw.bind(BindingSpec(queue: dead, exchange: Topology.deadLetterExchange, routingKey: queue))
        let client = try await startClient(url: url, queue: queue)
        await #expect {
            _ = try await client.send("it.no-such-task", args: [1]).get(timeout: .seconds(20))
        } throws: { error in
            guard case .taskFailed(_, _, let f)? = error as? CeleriacError else { return false }
            return f.type == "NotRegistered" && f.module == "celery.exceptions" && f.message == "it.no-such-task"
        }
        let consumer = try await raw.consume(queue: dead, prefetch: 1)
        let d = try await first(consumer.deliveries, within: .seconds(10), "the dead letter") { _ in true }
        #expect(d.properties.headers?[HeaderKey.deadReason]?.stringValue?.contains("not registered") == true)
        await raw.close()
        await client.close()
        try await running.stop()
        await deleteQueues([queue, dead], url: url)
    }
}

extension FieldTable {
    func merging(_ other: FieldTable) -> FieldTable {
        var copy = self
        for (k, v) in other { copy[k] = v }
        return copy
    }
}
