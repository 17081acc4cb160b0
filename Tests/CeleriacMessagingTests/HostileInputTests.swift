import CeleriacBroker
import CeleriacCore
import CeleriacHMAC
import Testing

@testable import CeleriacMessaging

/// The decoder's limits and header type checks, without a broker.
@Suite struct HostileInputTests {
    static func delivery(_ body: String, headers: FieldTable, contentType: String? = "application/json") -> Delivery {
        delivery(Array(body.utf8), headers: headers, contentType: contentType)
    }

    static func delivery(_ body: [UInt8], headers: FieldTable, contentType: String? = "application/json") -> Delivery {
        Delivery(
            tag: DeliveryTag(generation: 1, channel: 1, value: 1), consumerTag: "c", redelivered: false, exchange: "",
            routingKey: "q",
            properties: BasicProperties(contentType: contentType, headers: headers), body: body, messageCount: nil)
    }

    static let good: FieldTable = ["task": .string("t.add"), "id": .string("id-1")]

    /// The rejection's reason and label, or nil when the message decoded.
    static func rejection(_ d: Delivery, limits: TaskCodec.Limits = .init()) -> (reason: String, label: String)? {
        do {
            _ = try TaskCodec.decode(d, limits: limits)
            return nil
        } catch {
            return (error.reason, error.label)
        }
    }

    @Test func aGoodMessageDecodes() {
        #expect(Self.rejection(Self.delivery("[[1,2],{},{}]", headers: Self.good)) == nil)
    }

    @Test func tooManyPositionalOrKeywordArgumentsIsALimit() throws {
        let many = "[[" + Array(repeating: "1", count: 10_000).joined(separator: ",") + "],{},{}]"
        let r = try #require(Self.rejection(Self.delivery(many, headers: Self.good)))
        #expect(r.reason.contains("10000 positional arguments"))
        #expect(r.label == "limit")
        let kw = "[[],{" + (0..<50).map { "\"k\($0)\":1" }.joined(separator: ",") + "},{}]"
        let k = try #require(Self.rejection(Self.delivery(kw, headers: Self.good), limits: .init(maxArgs: 10)))
        #expect(k.reason.contains("50 keyword arguments"))
    }

    @Test func tooManyHeadersIsALimit() throws {
        var h = Self.good
        for i in 0..<300 { h["h\(i)"] = .int32(Int32(i)) }
        let r = try #require(Self.rejection(Self.delivery("[[],{},{}]", headers: h)))
        #expect(r.reason.contains("302 headers"))
        #expect(r.label == "limit")
    }

    @Test func deeplyNestedJSONAndHeadersAreLimits() throws {
        let deep = "[[" + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "],{},{}]"
        let r = try #require(Self.rejection(Self.delivery(deep, headers: Self.good)))
        #expect(r.reason.contains("nesting deeper than 64"))
        #expect(r.label == "limit")
        var nested = FieldValue.void
        for _ in 0..<200 { nested = .array([nested]) }
        let h = try #require(
            Self.rejection(Self.delivery("[[],{},{}]", headers: Self.good.merging(["stamps": nested]))))
        #expect(h.reason.contains("header 'stamps' nests deeper"))
    }

    @Test func badUTF8IsRejected() throws {
        let body: [UInt8] = Array("[[\"".utf8) + [0xC3, 0x28] + Array("\"],{},{}]".utf8)
        let r = try #require(Self.rejection(Self.delivery(body, headers: Self.good)))
        #expect(r.reason.contains("not valid UTF-8"))
        #expect(r.reason.contains("byte 3"))
        // A bad sequence after a long ASCII run, at an offset that is not a multiple of eight, and at the very end.
        let prefix = Array(("[[\"" + String(repeating: "a", count: 1001)).utf8)
        let late = prefix + [0xE2, 0x28, 0xA1] + Array("\"],{},{}]".utf8)
        let lateRejection = try #require(Self.rejection(Self.delivery(late, headers: Self.good)))
        #expect(lateRejection.reason.contains("byte \(prefix.count)"), "\(lateRejection.reason)")
        let truncated = Array("[[],{},{}]".utf8) + [0xF0, 0x9F]
        #expect(
            Self.rejection(Self.delivery(truncated, headers: Self.good))?.reason.contains("not valid UTF-8") == true)
        // Valid multi-byte UTF-8 (not ASCII) is accepted.
        #expect(Self.rejection(Self.delivery("[[\"caf\u{E9} \u{1F600}\"],{},{}]", headers: Self.good)) == nil)
    }

    @Test func headersOfTheWrongAMQPTypeAreRejected() throws {
        let cases: [(FieldTable, String)] = [
            (["task": .int32(1), "id": .string("x")], "header 'task' is an integer; expected a string"),
            (Self.good.merging(["retries": .string("3")]), "header 'retries' is a string; expected an integer"),
            (Self.good.merging(["retries": .int32(-1)]), "expected a non-negative integer"),
            (Self.good.merging(["timelimit": .string("10")]), "header 'timelimit' is a string; expected a pair"),
            (
                Self.good.merging(["timelimit": .array([.double(1), .double(2), .double(3)])]),
                "header 'timelimit' is a list; expected a pair"
            ),
            (Self.good.merging(["timelimit": .array([.string("a"), .void])]), "expected a pair"),
            (Self.good.merging(["eta": .int64(5)]), "header 'eta' is an integer; expected a string or None"),
            (Self.good.merging(["eta": .string("next tuesday")]), "invalid ETA"),
            (
                Self.good.merging(["ignore_result": .string("yes")]),
                "header 'ignore_result' is a string; expected a boolean"
            ),
            (Self.good.merging(["parent_id": .table([:])]), "header 'parent_id' is a table"),
        ]
        for (headers, expected) in cases {
            let r = Self.rejection(Self.delivery("[[],{},{}]", headers: headers))
            #expect(
                r?.reason.contains(expected) == true, "expected '\(expected)', got \(String(describing: r?.reason))")
        }
        // Integer time limits (as py-amqp writes Python ints) and None are fine.
        let ok = Self.good.merging(["timelimit": .array([.int32(10), .void]), "retries": .int8(2), "eta": .void])
        #expect(Self.rejection(Self.delivery("[[],{},{}]", headers: ok)) == nil)
    }

    @Test func aSmallFieldTableKeepsItsOrderAndTheLastOfDuplicateKeys() {
        let plain = FieldTable([
            (key: "task", value: .string("t")), (key: "id", value: .string("1")), (key: "retries", value: .int32(0)),
        ])
        #expect(plain.keys == ["task", "id", "retries"])
        let twice = FieldTable([
            (key: "task", value: .string("t")), (key: "id", value: .string("1")),
            (key: "a-key-longer-than-fifteen-bytes", value: .int32(1)), (key: "task", value: .string("later")),
            (key: "a-key-longer-than-fifteen-bytes", value: .int32(2)),
        ])
        #expect(twice.keys == ["task", "id", "a-key-longer-than-fifteen-bytes"])
        #expect(twice["task"] == .string("later"))
        #expect(twice["a-key-longer-than-fifteen-bytes"] == .int32(2))
    }

    @Test func aFieldTableWithManyKeysBuildsInLinearTime() {
        let entries =
            (0..<50_000).map { (key: "k\($0)", value: FieldValue.int32(Int32($0))) } + [
                (key: "k7", value: .string("last wins"))
            ]
        let t = FieldTable(entries)
        #expect(t.count == 50_000)
        #expect(t["k7"] == .string("last wins"))
        #expect(t.entries[7].key == "k7")
    }
}

@Suite struct MessageSignerTests {
    static func key(_ id: String, _ secret: String = "0123456789abcdef0123456789abcdef") throws -> SigningKey {
        try SigningKey(id: id, secret: Array(secret.utf8))
    }

    static func asDelivery(_ m: OutgoingMessage) -> Delivery {
        Delivery(
            tag: DeliveryTag(generation: 1, channel: 1, value: 1), consumerTag: "c", redelivered: false,
            exchange: m.exchange,
            routingKey: m.routingKey, properties: m.properties, body: m.body, messageCount: nil)
    }

    static func verdict(_ signer: MessageSigner, _ d: Delivery) -> String? {
        do {
            try signer.verify(d)
            return nil
        } catch {
            #expect(error.label == "signature")
            return error.reason
        }
    }

    @Test func hmacMatchesRFC4231TestCase2() {
        let code = HMACSHA256.authenticationCode(
            for: Array("what do ya want for nothing?".utf8), key: Array("Jefe".utf8))
        #expect(MessageSigner.hex(code) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(HMACSHA256.constantTimeEqual(code, code))
        #expect(!HMACSHA256.constantTimeEqual(code, Array(code.dropLast()) + [code.last! ^ 1]))
        #expect(HMACSHA256.authenticationCode(for: [], key: Array("k".utf8)).count == 32)
    }

    @Test func signedMessagesVerifyAndTamperingIsDetected() throws {
        let signer = try MessageSigner(keys: [Self.key("k1")])
        let message = TaskCodec.encode(TaskMessage(id: "id-9", name: "t.add", args: [1, 2]), routingKey: "celery")
        let signed = signer.sign(message)
        #expect(signed.properties.headers?[MessageSigner.keyIDHeader] == .string("k1"))
        #expect(Self.verdict(signer, Self.asDelivery(signed)) == nil)
        // Broker-added x- headers (x-death) do not break the signature.
        var travelled = signed
        travelled.properties.headers?["x-death"] = .array([.table(["count": .int64(1)])])
        #expect(Self.verdict(signer, Self.asDelivery(travelled)) == nil)

        var body = signed
        body.body = Array("[[1,3],{},{}]".utf8)
        #expect(Self.verdict(signer, Self.asDelivery(body))?.contains("does not match") == true)
        var header = signed
        header.properties.headers?["task"] = .string("t.delete_everything")
        #expect(Self.verdict(signer, Self.asDelivery(header))?.contains("does not match") == true)
        var added = signed
        added.properties.headers?["timelimit"] = .array([.double(99999), .void])
        #expect(Self.verdict(signer, Self.asDelivery(added))?.contains("does not match") == true)
        var reply = signed
        reply.properties.replyTo = "attacker-queue"
        #expect(Self.verdict(signer, Self.asDelivery(reply))?.contains("does not match") == true)
        #expect(Self.verdict(signer, Self.asDelivery(message))?.contains("not signed") == true)
        var garbage = signed
        garbage.properties.headers?[MessageSigner.signatureHeader] = .string("zz")
        #expect(Self.verdict(signer, Self.asDelivery(garbage))?.contains("64-digit hex") == true)
    }

    @Test func keyRotationVerifiesOldAndNewKeysAndRejectsUnknownOnes() throws {
        let old = try MessageSigner(keys: [Self.key("k1")])
        let rotated = try MessageSigner(keys: [Self.key("k2", "another secret of 32 bytes......"), Self.key("k1")])
        let message = TaskCodec.encode(TaskMessage(name: "t.add"), routingKey: "celery")
        #expect(Self.verdict(rotated, Self.asDelivery(old.sign(message))) == nil)
        #expect(rotated.sign(message).properties.headers?[MessageSigner.keyIDHeader] == .string("k2"))
        #expect(Self.verdict(old, Self.asDelivery(rotated.sign(message)))?.contains("key id 'k2'") == true)
        // Same id, different secret: rejected.
        let impostor = try MessageSigner(keys: [Self.key("k1", "not the real secret, but long enough")])
        #expect(Self.verdict(old, Self.asDelivery(impostor.sign(message)))?.contains("does not match") == true)
    }

    @Test func unsignedMessagesPassOnlyWhenSignaturesAreOptional() throws {
        let lenient = try MessageSigner(keys: [Self.key("k1")], requireSignature: false)
        let message = TaskCodec.encode(TaskMessage(name: "t.add"), routingKey: "celery")
        #expect(Self.verdict(lenient, Self.asDelivery(message)) == nil)
        var forged = lenient.sign(message)
        forged.body = Array("[[666],{},{}]".utf8)
        #expect(Self.verdict(lenient, Self.asDelivery(forged)) != nil)
    }

    @Test func resultsAndDeadLettersAreNotSigned() throws {
        let signer = try MessageSigner(keys: [Self.key("k1")])
        let result = OutgoingMessage(routingKey: "reply", body: [], properties: BasicProperties(headers: [:]))
        #expect(signer.sign(result).properties.headers?[MessageSigner.signatureHeader] == nil)
        var dead = TaskCodec.encode(TaskMessage(name: "t.add"), routingKey: "q")
        dead.exchange = Topology.deadLetterExchange
        #expect(signer.sign(dead).properties.headers?[MessageSigner.signatureHeader] == nil)
    }

    @Test func keyFilesParseAndNeverEchoSecrets() throws {
        let signer = try MessageSigner(
            keyFileText:
                "# rotated 2026-11\nk2 = s3cr3t-value-that-is-long-enough\n\nk1=older-secret-also-long-enough\n")
        #expect(signer.keyIDs == ["k2", "k1"])
        #expect(signer.signingKey.id == "k2")
        let shown = "\(signer) \(signer.signingKey) \(String(reflecting: signer.signingKey)) \(signer.keys)"
        var dumped = ""
        dump(signer, to: &dumped)
        for text in [shown, dumped] {
            #expect(!text.contains("s3cr3t"))
            #expect(!text.contains("older-secret"))
        }
        #expect(shown.contains("k2"))
        let short = #expect(throws: CeleriacError.self) { try MessageSigner(keyFileText: "k1=tooshort-s3cr3t") }
        #expect(short?.description.contains("line 1") == true)
        #expect(short?.description.contains("tooshort") == false)
        #expect(throws: CeleriacError.self) { try MessageSigner(keyFileText: "# nothing\n") }
        #expect(throws: CeleriacError.self) { try MessageSigner(keyFileText: "no equals sign here at all") }
        #expect(throws: CeleriacError.self) {
            try MessageSigner(keyFileText: "a=0123456789abcdef0\na=0123456789abcdef1")
        }
    }
}

extension FieldTable {
    func merging(_ other: FieldTable) -> FieldTable {
        var copy = self
        for (k, v) in other { copy[k] = v }
        return copy
    }
}

/// Regression tests for what the decoder fuzzer found (inputs also in Fuzz/corpus/decoder).
@Suite struct DecoderFuzzFindingTests {
    @Test func aTimestampHeaderBeyondInt64DoesNotTrap() throws {
        let headers = HostileInputTests.good.merging(["when": .timestamp(UInt64.max), "ok": .timestamp(5)])
        let task = try TaskCodec.decode(HostileInputTests.delivery("[[],{},{}]", headers: headers))
        #expect(task.extraHeaders["when"] == .double(Double(UInt64.max)))
        #expect(task.extraHeaders["ok"] == .int(5))
    }

    @Test func aTaskIDLongerThanAShortStringIsRejected() throws {
        let long = HostileInputTests.good.merging(["id": .string(String(repeating: "i", count: 300))])
        let r = try #require(HostileInputTests.rejection(HostileInputTests.delivery("[[],{},{}]", headers: long)))
        #expect(r.reason.contains("task id is 300 bytes"))
    }
}
