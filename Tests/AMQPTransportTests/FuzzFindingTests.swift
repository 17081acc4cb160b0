import Testing

@testable import AMQPTransport

/// Regression tests for what the fuzzers found (inputs also in Fuzz/corpus).
@Suite struct FuzzFindingTests {
    /// Content-header properties carrying only a headers table with one key of `key` bytes and a void value.
    static func propertiesWithHeaderKey(_ key: [UInt8]) -> [UInt8] {
        let entry = [UInt8(key.count)] + key + [UInt8(ascii: "V")]
        let n = UInt32(entry.count)
        return [0x20, 0x00] + [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + entry
    }

    @Test func anInvalidUTF8HeaderKeyDecodesNoLongerThanOnTheWire() throws {
        let key = [UInt8](repeating: 0xFF, count: 200) + Array("tail".utf8)
        let properties = try #require(ContentHeaderCodec.decode(Self.propertiesWithHeaderKey(key)))
        let decodedKey = try #require(properties.headers?.keys.first)
        #expect(decodedKey == String(repeating: "?", count: 200) + "tail")
        #expect(decodedKey.utf8.count == key.count)
        #expect(properties.wireProblem == nil)
        // And it goes back on the wire as it is.
        let wire = try #require(ContentHeaderCodec.encode(properties))
        #expect(ContentHeaderCodec.decode(wire)?.headers == properties.headers)
    }

    @Test func tooLongShortStringsAndKeysAreRefusedBeforeTheyCorruptAFrame() {
        var p = BasicProperties(correlationID: String(repeating: "a", count: 256))
        #expect(p.wireProblem?.contains("correlation_id is 256 bytes") == true)
        p = BasicProperties(headers: ["ok": .table([String(repeating: "k", count: 300): .void])])
        #expect(p.wireProblem?.contains("300 bytes") == true)
        #expect(BasicProperties(correlationID: String(repeating: "a", count: 255)).wireProblem == nil)
    }

    @Test func textBeforeTheSchemeSeparatorIsEchoedOnlyIfItIsAScheme() {
        // Found by the url fuzzer: credentials typed before a later "://" came back in the error, lower-cased.
        let mistyped = "amer:p%40Ss@rabbit.example?cqps://user:p%40ss@rabbit:5671/prod"
        #expect { _ = try AMQPURL(mistyped) } throws: { error in
            let text = "\(error)"
            return !text.contains("p%40ss") && text.contains("is not a scheme")
        }
        #expect { _ = try AMQPURL("http://u:p@h/") } throws: { "\($0)".contains("unsupported scheme 'http'") }
    }

    @Test func hostsMustBeNamesOrAddresses() throws {
        for bad in ["amqp://u:p@h:x]:5672/", "amqp://u:p@[%%%o]:5672/", "amqp://u:p@ho st/", "amqp://u:p@h\u{FFFD}st/"]
        {
            #expect(throws: AMQPError.self, "\(bad)") { _ = try AMQPURL(bad) }
        }
        for good in [
            "amqp://u:p@rabbit-1.example_net:5672/", "amqp://u:p@[fe80::1%eth0]:5672/", "amqp://u:p@10.0.0.1/",
        ] {
            let url = try AMQPURL(good)
            #expect(try AMQPURL(url.redacted).host == url.host)
        }
    }
}
