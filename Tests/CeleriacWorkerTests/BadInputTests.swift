import CeleriacBroker
import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import CeleriacWorker
import FoundationEssentials
import Testing

/// Every class of bad input ends in the dead-letter queue with its reason, counted, and the worker keeps serving.
@Suite struct BadInputTests {
    struct Poison: Sendable, CustomStringConvertible {
        let description: String
        let message: @Sendable (String) -> OutgoingMessage
        let reason: String
    }

    static func headers(_ name: String = "t.add") -> FieldTable {
        ["task": .string(name), "id": .string(UUID().uuidString)]
    }
    static let json = BasicProperties(contentType: "application/json")

    static let poisons: [Poison] = [
        Poison(
            description: "not JSON",
            message: { OutgoingMessage(routingKey: $0, body: Array("{nope".utf8), properties: with(json, headers())) },
            reason: "not valid JSON"),
        Poison(
            description: "a two-element body",
            message: {
                OutgoingMessage(routingKey: $0, body: Array("[[2,3],{}]".utf8), properties: with(json, headers()))
            },
            reason: "[args, kwargs, embed]"),
        Poison(
            description: "no content type",
            message: {
                OutgoingMessage(
                    routingKey: $0, body: Array("[[2,3],{},{}]".utf8), properties: BasicProperties(headers: headers()))
            },
            reason: "no content_type"),
        Poison(
            description: "text/plain",
            message: {
                OutgoingMessage(
                    routingKey: $0, body: Array("hi".utf8),
                    properties: BasicProperties(contentType: "text/plain", headers: headers()))
            },
            reason: "text/plain"),
        Poison(
            description: "no task header",
            message: {
                OutgoingMessage(
                    routingKey: $0, body: Array("[[2,3],{},{}]".utf8), properties: with(json, ["id": .string("x")]))
            },
            reason: "no 'task' header"),
        Poison(
            description: "too large",
            message: {
                OutgoingMessage(
                    routingKey: $0, body: Array(("[[\"" + String(repeating: "a", count: 5000) + "\"],{},{}]").utf8),
                    properties: with(json, headers()))
            },
            reason: "byte limit"),
        Poison(
            description: "too deep",
            message: {
                OutgoingMessage(
                    routingKey: $0,
                    body: Array(
                        ("[[" + String(repeating: "[", count: 40) + String(repeating: "]", count: 40) + "],{},{}]").utf8
                    ), properties: with(json, headers()))
            },
            reason: "nesting deeper"),
        Poison(
            description: "an integer beyond 64 bits",
            message: {
                OutgoingMessage(
                    routingKey: $0, body: Array("[[1180591620717411303424, 1],{},{}]".utf8),
                    properties: with(json, headers()))
            },
            reason: "64 bits"),
        Poison(
            description: "a bad ETA",
            message: {
                var h = headers()
                h["eta"] = .string("tomorrow")
                return OutgoingMessage(routingKey: $0, body: Array("[[1,2],{},{}]".utf8), properties: with(json, h))
            }, reason: "invalid ETA"),
        Poison(
            description: "an unknown task",
            message: {
                OutgoingMessage(
                    routingKey: $0, body: Array("[[1],{},{}]".utf8), properties: with(json, headers("t.no-such-task")))
            },
            reason: "not registered"),
    ]

    static func with(_ properties: BasicProperties, _ headers: FieldTable) -> BasicProperties {
        var p = properties
        p.headers = headers
        return p
    }

    @Test(arguments: poisons)
    func aBadMessageIsDeadLetteredWithItsReasonAndTheWorkerKeepsServing(_ poison: Poison) async throws {
        let recorder = Recorder()
        try await withApp(
            configuration: .init(hostname: "celeriac@test", limits: .init(maxBodyBytes: 4096, maxDepth: 32)),
            observer: recorder
        ) { app in
            let raw = app.broker.connection(.init(name: "poisoner"))
            try await raw.connect()
            try await raw.publish(poison.message("celery"))
            try await recorder.deadLetters.wait("the dead letter") { _ in true }
            // Counted before its copy is published (so whoever finds it already sees it in /metrics): wait for the
            // copy itself too.
            try await app.broker.waitForMessages(in: Topology.deadLetterQueue)
            let dead = try #require(app.broker.messages(in: Topology.deadLetterQueue))
            #expect(dead.count == 1)
            let reason = dead.first?.properties.headers?[HeaderKey.deadReason]?.stringValue ?? ""
            #expect(reason.contains(poison.reason), "reason: \(reason)")
            #expect(dead.first?.properties.headers?[HeaderKey.deadQueue] == .string("celery"))
            #expect(app.broker.messages(in: "celery")?.isEmpty == true, "the bad message stayed in the work queue")
            let got1 = try await app.client.delay(Tasks.add, .init(x: 20, y: 22)).get(timeout: .seconds(10))
            #expect(got1 == 42)
            await raw.close()
        }
    }

    @Test func anUnknownTaskSentByAClientFailsWithNotRegistered() async throws {
        try await withApp { app in
            await #expect {
                _ = try await app.client.send("t.no-such-task", args: [1]).get(timeout: .seconds(10))
            } throws: { error in
                guard case .taskFailed(_, _, let f)? = error as? CeleriacError else { return false }
                return f.type == "NotRegistered" && f.module == "celery.exceptions" && f.message == "t.no-such-task"
            }
        }
    }

    @Test func wrongArgumentTypesFailTheTaskWithATypeError() async throws {
        try await withApp { app in
            await #expect {
                _ = try await app.client.send("t.add", args: ["two", 3]).get(timeout: .seconds(10))
            } throws: { error in
                guard case .taskFailed(_, _, let f)? = error as? CeleriacError else { return false }
                return f.type == "TypeError"
            }
            let got2 = try await app.client.delay(Tasks.add, .init(x: 1, y: 1)).get(timeout: .seconds(10))
            #expect(got2 == 2)
        }
    }

    @Test func anUndecodableTaskWithAReplyQueueGetsADecodeErrorResult() async throws {
        try await withApp { app in
            let raw = app.broker.connection(.init(name: "bigint"))
            try await raw.connect()
            let id = UUID().uuidString.lowercased()
            let props = BasicProperties(
                contentType: "application/json", headers: ["task": .string("t.add"), "id": .string(id)],
                correlationID: id, replyTo: app.client.replyQueue)
            try await raw.publish(
                OutgoingMessage(
                    routingKey: "celery", body: Array("[[1180591620717411303424, 1],{},{}]".utf8), properties: props))
            await #expect {
                _ = try await app.client.result(of: id, timeout: .seconds(10))
            } throws: { error in
                guard case .taskFailed(_, let failedID, let f)? = error as? CeleriacError else { return false }
                return failedID == id && f.type == "DecodeError" && f.module == "kombu.exceptions"
                    && f.message.contains(Topology.deadLetterQueue)
            }
            await raw.close()
        }
    }
}
