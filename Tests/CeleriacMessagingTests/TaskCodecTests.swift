import CeleriacBroker
import CeleriacCore
import Foundation
import Testing

@testable import CeleriacMessaging

@Suite struct TaskCodecTests {
    @Test func encodesCeleryProtocolV2HeadersWithTheirWireTypes() throws {
        var m = TaskMessage(
            id: "id-1", name: "proj.add", args: [2, 3], kwargs: ["k": "v"], replyTo: "reply-q", priority: 5)
        m.timeLimit = .init(hard: 30, soft: 20)
        m.eta = ISOTime.parse("2026-11-29T01:31:54.717387+00:00")
        m.expires = Date().addingTimeInterval(60)
        let out = TaskCodec.encode(m, routingKey: "celery")
        let h = try #require(out.properties.headers)
        #expect(h["task"] == .string("proj.add"))
        #expect(h["id"] == .string("id-1"))
        #expect(h["lang"] == .string("swift"))
        #expect(h["retries"] == .int32(0))
        #expect(h["timelimit"] == .array([.double(30), .double(20)]))  // [hard, soft]
        #expect(h["eta"] == .string("2026-11-29T01:31:54.717387+00:00"))
        #expect(h["root_id"] == .string("id-1"))
        #expect(h["parent_id"] == .void)
        #expect(h["group"] == .void)
        #expect(h["ignore_result"] == .bool(false))
        #expect(h["argsrepr"] == .string("(2, 3)"))
        #expect(h["kwargsrepr"] == .string("{'k': 'v'}"))
        #expect(h["stamps"] == .table([:]))
        // Celery's 19 protocol v2 headers, plus the send time for the queue-wait histogram.
        #expect(h.count == 20)
        let sentAt = try #require(h["x-celeriac-sent-at"]?.doubleValue)
        #expect(abs(sentAt - Date().timeIntervalSince1970) < 60)
        #expect(out.properties.contentType == "application/json")
        #expect(out.properties.contentEncoding == "utf-8")
        #expect(out.properties.deliveryMode == 2)
        #expect(out.properties.correlationID == "id-1")
        #expect(out.properties.replyTo == "reply-q")
        #expect(out.properties.priority == 5)
        let ttl = try #require(out.properties.expiration.flatMap(Int.init))
        #expect((58_000...60_000).contains(ttl))
        #expect(out.exchange == "" && out.routingKey == "celery")
        #expect(
            String(decoding: out.body, as: UTF8.self)
                == #"[[2,3],{"k":"v"},{"callbacks":null,"errbacks":null,"chain":null,"chord":null}]"#)
    }

    @Test func decodesWhatItEncodes() throws {
        var m = TaskMessage(name: "proj.mul", args: [.int(Int64.max), "x"], kwargs: ["n": nil], replyTo: "r")
        m.retries = 2
        m.groupID = "g"
        m.groupIndex = 3
        m.extraHeaders = ["custom_header": "hello"]
        let out = TaskCodec.encode(m, routingKey: "q")
        let d = Delivery(
            tag: DeliveryTag(generation: 1, channel: 1, value: 1), consumerTag: "c", redelivered: false, exchange: "",
            routingKey: "q", properties: out.properties, body: out.body, messageCount: nil)
        let back = try TaskCodec.decode(d)
        #expect(back.id == m.id && back.name == m.name && back.args == m.args && back.kwargs == m.kwargs)
        #expect(back.retries == 2 && back.groupID == "g" && back.groupIndex == 3)
        #expect(back.extraHeaders["custom_header"] == "hello")
        #expect(back.replyTo == "r")
    }

    @Test func pyAmqpLargeIntegersAndVoidBooleansAreRead() throws {
        // py-amqp writes big ints as 'L' (rabbitmq-c's U64) and may send ignore_result as void.
        let props = BasicProperties(
            contentType: "application/json",
            headers: [
                "task": .string("t"), "id": .string("i"), "retries": .int64(3), "ignore_result": .void,
                "group_index": .int16(2),
            ])
        let d = Delivery(
            tag: DeliveryTag(generation: 1, channel: 1, value: 1), consumerTag: "", redelivered: false, exchange: "",
            routingKey: "q", properties: props, body: Array("[[],{},{}]".utf8), messageCount: nil)
        let m = try TaskCodec.decode(d)
        #expect(m.retries == 3)
        #expect(m.ignoreResult == nil)
        #expect(m.groupIndex == 2)
    }

    @Test func delayRoutingKeysMatchKombu() {
        #expect(
            Topology.delayRoutingKey(seconds: 5, routingKey: "tasks")
                == "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.1.tasks")
        #expect(Topology.stripDelayPrefix("0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.1.tasks") == "tasks")
        #expect(Topology.stripDelayPrefix("a.b") == "a.b")
        let t = Topology.delayTopology()
        #expect(t.queues.count == 28 && t.exchanges.count == 29)
        #expect(t.queues.first?.arguments["x-message-ttl"] == .int64(134_217_728_000))  // level 27: 2^27 s
        #expect(t.queueBindings.last?.routingKey == String(repeating: "*.", count: 27) + "1.#")
        #expect(t.queues.allSatisfy { $0.arguments["x-queue-type"] == .string("classic") })
        // For clusters every durable queue Celeriac declares can be a quorum queue, the delay levels included.
        #expect(Topology.delayTopology(.quorum).queues.allSatisfy { $0.arguments["x-queue-type"] == .string("quorum") })
        // kombu's arguments for quorum delay levels: at-least-once dead lettering between levels (so Celery and
        // Celeriac can declare the same topology); classic levels have no strategy.
        #expect(
            Topology.delayTopology(.quorum).queues.allSatisfy {
                $0.arguments["x-dead-letter-strategy"] == .string("at-least-once")
            })
        #expect(t.queues.allSatisfy { $0.arguments["x-dead-letter-strategy"] == nil })
        #expect(
            Topology.workQueue("q", maxPriority: 9, type: .quorum).1.arguments == ["x-queue-type": .string("quorum")])
        #expect(Topology.workQueue("q", maxPriority: 9).1.arguments["x-max-priority"] != nil)
        #expect(Topology.deadLetter(.quorum).1.arguments["x-queue-type"] == .string("quorum"))
        let reply = Topology.replyQueue("r")
        #expect(reply.durable && !reply.autoDelete && !reply.exclusive && reply.arguments["x-expires"] != nil)
        #expect(Topology.replyQueue("r", type: .quorum).arguments["x-queue-type"] == .string("quorum"))
    }

    @Test func resultBodiesMatchTheRPCBackend() throws {
        let r = ResultMessage.success("tid", 5)
        let json = r.json
        #expect(json["status"] == "SUCCESS")
        #expect(json["result"] == 5)
        #expect(json["task_id"] == "tid")
        #expect(json["children"] == .array([]))
        #expect(json["traceback"] == .null)
        let failure = TaskFailure(type: "ValueError", arguments: ["boom"], module: "builtins")
        let f = ResultMessage.failure("tid", failure).json
        #expect(f["result"] == ["exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"])
        // A plain-string exc_message is one argument, as Python reads it.
        let parsed = try #require(
            ResultMessage(
                json: try JSONValue.parse(
                    #"{"status":"FAILURE","result":{"exc_type":"KeyError","exc_message":"k","exc_module":"builtins"},"task_id":"x"}"#
                )))
        #expect(parsed.failure?.arguments == ["k"])
    }
}
