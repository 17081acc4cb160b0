import CeleriacBroker
import CeleriacCore
import FoundationEssentials
import Testing

@testable import CeleriacMessaging

/// Celeriac's compact message form: the same task as Celery's form, no protocol headers, and what a Celery worker
/// does with it (rejects it).
@Suite struct CompactFormTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    /// A task with every field set, so a field either form dropped would show.
    static func richTask() -> TaskMessage {
        var t = TaskMessage(
            id: "7d3bd07c-5d4f-4a6f-9a29-2c5fbb0f3b0e", name: "proj.add", args: [2, "x", nil, [1.5]],
            kwargs: ["z": 1, "nested": ["a": true]], replyTo: "reply-q", priority: 3)
        t.embed = .init(
            callbacks: [["task": "proj.log", "args": [], "kwargs": [:], "options": [:]]],
            errbacks: [["task": "proj.oops", "args": [], "kwargs": [:], "options": [:]]],
            chain: [["task": "proj.mul", "args": [4], "kwargs": [:], "options": ["task_id": "c-1"]]],
            chord: ["task": "proj.sum", "args": [], "kwargs": [:], "options": [:]])
        t.eta = now.addingTimeInterval(30)
        t.expires = now.addingTimeInterval(600)
        t.retries = 4
        t.timeLimit = .init(hard: 30, soft: 20.5)
        t.rootID = "root-1"
        t.parentID = "parent-1"
        t.groupID = "group-1"
        t.groupIndex = 2
        t.shadow = "shown"
        t.origin = "gen1@host"
        t.ignoreResult = false
        t.replacedTaskNesting = 1
        t.stampedHeaders = ["stamp"]
        t.stamps = ["stamp": "v"]
        t.extraHeaders = ["traceparent": "00-abc-def-01", "x-celeriac-replays": 2]
        return t
    }

    static func delivery(_ m: OutgoingMessage) -> Delivery {
        Delivery(
            tag: DeliveryTag(generation: 1, channel: 1, value: 1), consumerTag: "c", redelivered: false,
            exchange: m.exchange, routingKey: m.routingKey, properties: m.properties, body: m.body, messageCount: nil)
    }

    static func compact(_ body: String, headers: FieldTable = [:], contentType: String? = "application/json")
        -> Delivery
    {
        var props = BasicProperties(contentType: contentType, headers: headers, correlationID: "cid")
        props.type = TaskCodec.compactType
        return Delivery(
            tag: DeliveryTag(generation: 1, channel: 1, value: 1), consumerTag: "c", redelivered: false, exchange: "",
            routingKey: "q", properties: props, body: Array(body.utf8), messageCount: nil)
    }

    static func rejection(_ d: Delivery, limits: TaskCodec.Limits = .init()) -> MessageRejection? {
        do {
            _ = try TaskCodec.decode(d, limits: limits)
            return nil
        } catch {
            return error
        }
    }

    @Test func bothFormsCarryTheSameTask() throws {
        let task = Self.richTask()
        let celery = try TaskCodec.decode(Self.delivery(TaskCodec.encode(task, routingKey: "q", now: Self.now)))
        let compact = try TaskCodec.decode(
            Self.delivery(TaskCodec.encode(task, routingKey: "q", now: Self.now, form: .compact)))
        var expected = celery
        // The reprs are for monitors; the compact form leaves them out and they are computed when an event asks.
        expected.argsRepr = nil
        expected.kwargsRepr = nil
        #expect(compact == expected)
        #expect(compact.sentAt == Self.now)
        #expect(compact.extraHeaders["traceparent"] == "00-abc-def-01")
    }

    @Test func aPlainTaskSurvivesTheCompactFormWithItsDefaults() throws {
        let task = TaskMessage(name: "demo.noop", ignoreResult: nil)
        let back = try TaskCodec.decode(Self.delivery(TaskCodec.encode(task, routingKey: "q", form: .compact)))
        #expect(back.id == task.id && back.name == "demo.noop" && back.rootID == task.id)
        #expect(back.retries == 0 && back.ignoreResult == nil && back.replyTo == nil && back.eta == nil)
        #expect(back.embed == TaskMessage.Embed() && back.stamps == .object([:]) && back.stampedHeaders == .null)
    }

    /// What a Celery 5 worker does with a message (celery/worker/consumer/consumer.py, `on_task_received`): no
    /// `task` header, so it decodes the body (JSON, an accepted content type: a decode error would make it ack and
    /// lose the message) and indexes it with 'task'; a list raises TypeError, and `on_unknown_message` rejects
    /// without requeue. The integration test `CompactFormCeleryTests` runs this against a real Celery worker.
    @Test func aCompactMessageIsOneCeleryRejectsAndNeverAcks() throws {
        let m = TaskCodec.encode(Self.richTask(), routingKey: "q", form: .compact)
        #expect(m.properties.headers?[HeaderKey.task] == nil)
        #expect(m.properties.headers?.entries.allSatisfy { $0.key.hasPrefix("x-") } ?? true)
        #expect(m.properties.contentType == "application/json")
        #expect(m.properties.type == TaskCodec.compactType)
        guard case .array(let parts) = try JSONValue.parse(m.body) else {
            Issue.record("the body is not a JSON list")
            return
        }
        #expect(parts.count == 4)
        #expect(m.properties.correlationID == Self.richTask().id)
    }

    @Test func compactMessagesAreSignedAndTamperingIsDetected() throws {
        let signer = try MessageSigner(keys: [SigningKey(id: "k1", secret: Array("0123456789abcdef0123".utf8))])
        let signed = signer.sign(TaskCodec.encode(Self.richTask(), routingKey: "q", form: .compact))
        #expect(signed.properties.headers?[MessageSigner.signatureHeader] != nil)
        try signer.verify(Self.delivery(signed))
        var tampered = signed
        tampered.body = Array(String(decoding: signed.body, as: UTF8.self).replacing("proj.add", with: "proj.rm").utf8)
        #expect(throws: MessageRejection.self) { try signer.verify(Self.delivery(tampered)) }
        // Without its marker the message is not a task in either form: rejected, never run.
        var unmarked = signed
        unmarked.properties.type = nil
        #expect(Self.rejection(Self.delivery(unmarked))?.reason.contains("no 'task' header") == true)
    }

    @Test func hostileCompactMessagesAreRejectedWithAReasonNamingWhatIsWrong() throws {
        let ok = #"{"task":"t.add","id":"i-1"}"#
        let cases: [(Delivery, String)] = [
            (Self.compact(#"[[],{},{}]"#), "four elements"),
            (Self.compact(#"{"task":"t.add","id":"i-1"}"#), "four elements"),
            (Self.compact(#"[[],{},{},[]]"#), "body[3] (fields) must be an object"),
            (Self.compact(#"[[],{},{},{"id":"i-1"}]"#), "no 'task' field"),
            (Self.compact(#"[[],{},{},{"task":"t.add"}]"#), "no 'id' field"),
            (Self.compact(#"[[],{},{},{"task":"t.add","id":7}]"#), "field 'id' must be a string"),
            (Self.compact(#"[{},{},{},\#(ok)]"#), "body[0] (args) must be a list"),
            (Self.compact(#"[[],[],{},\#(ok)]"#), "body[1] (kwargs) must be an object"),
            (Self.compact(#"[[],{},[],\#(ok)]"#), "body[2] (embed) must be an object"),
            (Self.compact(#"[[],{},{"chain":{}},\#(ok)]"#), "embed 'chain' must be a list"),
            (Self.compact(#"[[],{},{},{"task":"t.add","id":"i-1","retries":-1}]"#), "'retries' must be a non-negative"),
            (
                Self.compact(#"[[],{},{},{"task":"t.add","id":"i-1","retries":"3"}]"#),
                "'retries' must be a non-negative"
            ),
            (Self.compact(#"[[],{},{},{"task":"t.add","id":"i-1","eta":"soon"}]"#), "'eta' is not an ISO 8601 time"),
            (Self.compact(#"[[],{},{},{"task":"t.add","id":"i-1","timelimit":[-1,null]}]"#), "'timelimit' must be"),
            (Self.compact(#"[[],{},{},{"task":"t.add","id":"i-1","timelimit":5}]"#), "'timelimit' must be"),
            (Self.compact(#"[[],{},{},{"task":"t.add","id":"i-1","ignore_result":1}]"#), "'ignore_result' must be"),
            (Self.compact(#"[[],{},{},{"task":"t.add","id":"i-1","headers":[]}]"#), "'headers' must be an object"),
            (Self.compact(#"[[],{},{},{"task":"t.add","id":"i-1","sent_at":"x"}]"#), "'sent_at' must be a number"),
            (Self.compact(#"[[],{},{},\#(ok)"#), "not valid JSON"),
            (
                Self.compact(#"[[],{},{},\#(ok)]"#, contentType: "application/x-python-serialize"),
                "not application/json"
            ),
            (Self.compact(#"[[],{},{},\#(ok)]"#, headers: ["task": .string("t.add")]), "never both"),
            (
                Self.compact(#"[[],{},{},{"task":"t.add","id":"\#(String(repeating: "i", count: 300))"}]"#),
                "at most 255"
            ),
        ]
        for (d, expected) in cases {
            let r = try #require(Self.rejection(d), "accepted: \(String(decoding: d.body, as: UTF8.self))")
            #expect(r.reason.hasPrefix("compact message: "))
            #expect(r.reason.contains(expected), "\(r.reason) (wanted: \(expected))")
        }
        #expect(Self.rejection(Self.compact(#"[[1],{"a":1},{},\#(ok)]"#)) == nil)
        // Limits apply as to Celery's form, with the limit label.
        let deep = "[[" + String(repeating: "[", count: 500) + String(repeating: "]", count: 500) + "],{},{},\(ok)]"
        #expect(Self.rejection(Self.compact(deep))?.label == "limit")
        let many = "[[" + Array(repeating: "1", count: 2000).joined(separator: ",") + "],{},{},\(ok)]"
        #expect(Self.rejection(Self.compact(many))?.label == "limit")
        let bad: [UInt8] = Array("[[\"".utf8) + [0xC3, 0x28] + Array("\"],{},{},\(ok)]".utf8)
        var d = Self.compact("")
        d = Delivery(
            tag: d.tag, consumerTag: "c", redelivered: false, exchange: "", routingKey: "q", properties: d.properties,
            body: bad, messageCount: nil)
        #expect(Self.rejection(d)?.reason.contains("not valid UTF-8") == true)
        // The rejection names the task, so the dead letter and the log can say which.
        let named = try #require(Self.rejection(Self.compact(#"[[],{},{},{"task":"t.add","id":"i-9","retries":"x"}]"#)))
        #expect(named.taskID == "i-9" && named.taskName == "t.add")
    }

    @Test func aCompactQueueIsDeclaredWithTheDeadLetterExchange() {
        let (_, compact, _) = Topology.workQueue("q", form: .compact)
        #expect(compact.arguments["x-dead-letter-exchange"] == .string(Topology.deadLetterExchange))
        let (_, celery, _) = Topology.workQueue("q")
        #expect(celery.arguments.isEmpty)
        let (_, quorum, _) = Topology.workQueue("q", type: .quorum, form: .compact)
        #expect(quorum.arguments["x-queue-type"] == .string("quorum"))
        #expect(quorum.arguments["x-dead-letter-exchange"] == .string(Topology.deadLetterExchange))
    }

    @Test func theSummaryReadsIDAndNameForTools() {
        let m = TaskCodec.encode(Self.richTask(), routingKey: "q", form: .compact)
        let s = TaskCodec.compactSummary(Self.delivery(m))
        #expect(s?.id == Self.richTask().id && s?.name == "proj.add")
        #expect(TaskCodec.compactSummary(Self.delivery(TaskCodec.encode(Self.richTask(), routingKey: "q"))) == nil)
    }
}
