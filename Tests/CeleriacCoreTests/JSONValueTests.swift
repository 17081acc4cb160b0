import Foundation
import Testing

@testable import CeleriacCore

@Suite struct JSONValueTests {
    @Test func parsesAndWritesNestedUnicodeAndNumbers() throws {
        let text =
            #"{"a":[1,-2,3.5,true,false,null],"s":"h\u00e9llo \ud83d\ude00 \"q\"\n","big":9223372036854775807,"o":{}}"#
        let v = try JSONValue.parse(text)
        #expect(v["a"] == .array([.int(1), .int(-2), .double(3.5), .bool(true), .bool(false), .null]))
        #expect(v["s"] == .string("héllo 😀 \"q\"\n"))
        #expect(v["big"] == .int(Int64.max))
        #expect(v["o"] == .object([:]))
        #expect(try JSONValue.parse(v.jsonBytes) == v)
        #expect(Array(v.objectValue!.keys) == ["a", "s", "big", "o"])
    }

    @Test(arguments: [
        "1180591620717411303424", "[NaN]", "[Infinity]", "{\"a\":1", "[1,]", "\"unterminated", "tru", "[1] x",
        "{'a':1}", "\"\\ud800\"",
    ])
    func rejectsWhatPythonMaySendButSwiftCannotHold(text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
    }

    @Test(arguments: [
        ("plain-ascii id 0123", #""plain-ascii id 0123""#), ("héllo 😀", "\"héllo 😀\""), ("", #""""#),
        ("q\"b\\", #""q\"b\\""#), ("tab\tnl\ncr\r", #""tab\tnl\ncr\r""#), ("\u{01}\u{1f}", #""\u0001\u001f""#),
    ])
    func stringsAreWrittenEscapedOnlyWhereJSONRequires(value: String, written: String) throws {
        #expect(JSONValue.string(value).jsonString == written)
        #expect(try JSONValue.parse(written) == .string(value))
    }

    @Test func depthLimitIsEnforced() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(deep, maxDepth: 64) }
        #expect(throws: Never.self) { try JSONValue.parse(deep, maxDepth: 128) }
    }

    @Test func floatsStayFloats() {
        #expect(JSONValue.double(2).jsonString == "2.0")
        #expect(JSONValue.double(0.1).jsonString == "0.1")
        #expect(JSONValue.int(2).jsonString == "2")
    }
}

@Suite struct ISOTimeTests {
    @Test func formatsLikePythonIsoformat() {
        let d = ISOTime.parse("2026-11-29T01:31:54.717387+00:00")!
        #expect(ISOTime.format(d) == "2026-11-29T01:31:54.717387+00:00")
        let whole = ISOTime.parse("2030-01-02T03:04:05+00:00")!
        #expect(ISOTime.format(whole) == "2030-01-02T03:04:05+00:00")
        #expect(whole.timeIntervalSince1970 == 1_893_553_445)
    }

    @Test func acceptsTheVariantsDateutilAccepts() {
        let base = ISOTime.parse("2030-01-02T03:04:05+00:00")!
        #expect(ISOTime.parse("2030-01-02T03:04:05Z") == base)
        #expect(ISOTime.parse("2030-01-02T04:04:05+01:00") == base)
        #expect(ISOTime.parse("2030-01-02T03:04:05") == base)
        #expect(ISOTime.parse("tomorrow") == nil)
        #expect(ISOTime.parse("2030-13-02T03:04:05") == nil)
    }
}

@Suite struct ArgumentBindingTests {
    struct AddArgs: Codable, Sendable { let x: Int; let y: Int }

    @Test func positionalAndKeywordArgumentsBothBind() throws {
        let a: AddArgs = try ArgumentBinder.bind(task: "demo.add", parameters: ["x", "y"], args: [2, 3], kwargs: [:])
        let b: AddArgs = try ArgumentBinder.bind(
            task: "demo.add", parameters: ["x", "y"], args: [], kwargs: ["x": 2, "y": 3])
        let c: AddArgs = try ArgumentBinder.bind(task: "demo.add", parameters: ["x", "y"], args: [2], kwargs: ["y": 3])
        #expect(a.x == 2 && a.y == 3 && b.x == 2 && b.y == 3 && c.x == 2 && c.y == 3)
    }

    @Test(arguments: [
        ([JSONValue.string("2"), 3], JSONObject(), "argument 'x' must be an integer"),
        ([2], JSONObject(), "missing required argument 'y'"),
        ([1, 2, 3], JSONObject(), "takes 2 positional arguments but 3 were given"),
        ([2, 3], ["z": 1] as JSONObject, "unexpected keyword argument 'z'"),
        ([2], ["x": 1] as JSONObject, "multiple values for argument 'x'"),
        ([2, .null], JSONObject(), "argument 'y' must be an integer, not null"),
    ])
    func badArgumentsNameTheArgument(args: [JSONValue], kwargs: JSONObject, message: String) {
        #expect {
            let _: AddArgs = try ArgumentBinder.bind(
                task: "demo.add", parameters: ["x", "y"], args: args, kwargs: kwargs)
        } throws: { error in
            guard let e = error as? BuiltinError else { return false }
            return e.pythonType == "TypeError" && e.message.contains(message)
        }
    }
}

@Suite struct TaskRegistryTests {
    struct Pair: Codable, Sendable { let x: Int; let y: Int }
    static let add = TaskName<Pair, Int>("demo.add", parameters: "x", "y")

    @Test func duplicateNamesFailValidationWithTheName() {
        var r = TaskRegistry()
        r.register(Self.add) { p, _ in p.x + p.y }
        r.register(Self.add) { p, _ in p.x - p.y }
        #expect {
            try r.validate()
        } throws: { error in
            "\(error)".contains("demo.add") && "\(error)".contains("more than once")
        }
    }

    @Test func uniqueNamesValidate() throws {
        var r = TaskRegistry()
        r.register(Self.add) { p, _ in p.x + p.y }
        try r.validate()
        #expect(r.names == ["demo.add"])
    }

    @Test func exponentialBackoffIsCappedAndJittered() {
        let noJitter = RetryPolicy.exponential(factor: 1, cap: 10, jitter: false)
        #expect(noJitter.delay(forRetries: 0) == 1)
        #expect(noJitter.delay(forRetries: 3) == 8)
        #expect(noJitter.delay(forRetries: 10) == 10)
        let jittered = RetryPolicy.exponential(factor: 1, cap: 10)
        for n in 0..<20 { #expect((0...10).contains(jittered.delay(forRetries: n))) }
    }

    @Test(arguments: [("100/s", 100.0), ("10/m", 10.0 / 60), ("5/h", 5.0 / 3600), ("7", 7.0)])
    func rateLimitsParseLikeCelery(text: String, perSecond: Double) throws {
        #expect(abs(try RateLimit(text).perSecond - perSecond) < 1e-9)
    }

    @Test func badRateLimitsSayHowToWriteThem() {
        #expect { try RateLimit("fast") } throws: { "\($0)".contains("100/s") }
        #expect { try RateLimit("10/d") } throws: { "\($0)".contains("s, m or h") }
    }
}

/// Task ids are lower-case version 4 UUIDs, as Python's `str(uuid.uuid4())`, and do not repeat.
@Suite struct TaskIDTests {
    @Test func idsAreLowerCaseVersion4UUIDs() throws {
        for _ in 0..<1000 {
            let id = TaskMessage.newID()
            #expect(id.count == 36)
            let parsed = try #require(UUID(uuidString: id), "\(id) is not a UUID")
            #expect(parsed.uuidString.lowercased() == id)
            let chars = Array(id)
            #expect(chars[14] == "4", "version nibble of \(id)")
            #expect("89ab".contains(chars[19]), "variant nibble of \(id)")
        }
    }

    @Test func idsDoNotRepeat() {
        let ids = (0..<10_000).map { _ in TaskMessage.newID() }
        #expect(Set(ids).count == ids.count)
    }
}

/// Numbers and literals are written as Python's json module reads them back.
@Suite struct JSONNumberWritingTests {
    @Test(arguments: [Int64(0), 7, -7, 10, 1_000_000, Int64.max, Int64.min, -1_180_591_620_717])
    func integersAreWrittenExactly(value: Int64) throws {
        #expect(JSONValue.int(value).jsonString == String(value))
        #expect(try JSONValue.parse(JSONValue.int(value).jsonString) == .int(value))
    }

    @Test func literalsAndFloats() {
        #expect(
            JSONValue.array([.null, .bool(true), .bool(false), .double(2), .double(-0.5), .double(.nan)]).jsonString
                == "[null,true,false,2.0,-0.5,null]")
        #expect(JSONValue.double(1_795_916_052.123).jsonString == "1795916052.123")
    }

    @Test func objectWriterAppendsTypedFieldsAndFragmentsThatParseBack() throws {
        var array: [UInt8] = Array("[1,".utf8)
        JSONObjectWriter.append(to: &array) { writer in
            writer.add("uuid", string: "a\"b")
            writer.add("root_id", string: nil as String?)
            writer.add("retries", int: -3)
            writer.add("terminated", bool: true)
            writer.addNull("signum")
            writer.add("timestamp", seconds: 1_795_916_052.000_123)
            writer.add("runtime", seconds: 0.5)
            writer.add(fragment: JSONObjectWriter.fragment(["hostname": "w@h", "pid": .int(7)]))
            writer.add("nested", .array([.int(1)]))
        }
        array.append(UInt8(ascii: "]"))
        let text = String(decoding: array, as: UTF8.self)
        #expect(text.contains(#""timestamp":1795916052.000123,"runtime":0.500000,"hostname":"w@h","pid":7"#))
        let parsed = try JSONValue.parse(array)
        let object = try #require(parsed.arrayValue?.last)
        #expect(parsed.arrayValue?.first == .int(1))
        #expect(object["uuid"] == .string("a\"b"))
        #expect(object["root_id"] == .null && object["signum"] == .null)
        #expect(object["retries"] == .int(-3) && object["terminated"] == .bool(true))
        #expect(object["runtime"] == .double(0.5))
        #expect(object["nested"] == .array([.int(1)]))
        #expect(
            Array(object.objectValue!.keys) == [
                "uuid", "root_id", "retries", "terminated", "signum", "timestamp", "runtime", "hostname", "pid",
                "nested",
            ])
    }
}
