/// Why a JSON text could not be parsed, with the byte offset.
public struct JSONParseError: Error, CustomStringConvertible, Sendable {
    /// What is wrong, e.g. `unexpected end of input`.
    public let reason: String
    /// Zero-based byte offset in the input where parsing stopped.
    public let offset: Int
    /// `invalid JSON at byte <offset>: <reason>`.
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

extension JSONValue {
    /// Parses JSON text (RFC 8259). Rejects integers beyond Int64, `NaN`/`Infinity`, trailing data, and nesting
    /// deeper than `maxDepth`.
    public static func parse(_ bytes: [UInt8], maxDepth: Int = 64) throws(JSONParseError) -> JSONValue {
        try bytes.withUnsafeBufferPointer { buffer throws(JSONParseError) -> JSONValue in
            var parser = JSONParser(bytes: buffer, maxDepth: maxDepth)
            parser.skipWhitespace()
            let value = try parser.parseValue(depth: 0)
            parser.skipWhitespace()
            guard parser.index == buffer.count else { throw parser.error("trailing data after the JSON value") }
            return value
        }
    }

    /// Parses JSON text given as a `String`; same rules as the `[UInt8]` overload.
    public static func parse(_ text: String, maxDepth: Int = 64) throws(JSONParseError) -> JSONValue {
        try parse(Array(text.utf8), maxDepth: maxDepth)
    }

    /// Compact JSON text, UTF-8 (non-ASCII is written raw, which Python reads fine).
    public var jsonBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        JSONWriter.write(self, into: &out)
        return out
    }

    /// ``jsonBytes`` as a `String`.
    public var jsonString: String { String(decoding: jsonBytes, as: UTF8.self) }
}

private struct JSONParser {
    let bytes: UnsafeBufferPointer<UInt8>
    let maxDepth: Int
    var index = 0

    init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    func error(_ reason: String) -> JSONParseError { JSONParseError(reason: reason, offset: index) }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard index < bytes.count else { throw error("unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            guard depth < maxDepth else { throw error("nesting deeper than \(maxDepth)") }
            return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["):
            guard depth < maxDepth else { throw error("nesting deeper than \(maxDepth)") }
            return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        case UInt8(ascii: "N"), UInt8(ascii: "I"): throw error("NaN and Infinity are not JSON")
        default: throw error("unexpected character '\(Unicode.Scalar(bytes[index]))'")
        }
    }

    mutating func literal(_ word: StaticString) throws(JSONParseError) {
        let n = word.utf8CodeUnitCount
        guard index + n <= bytes.count else { throw error("unexpected end of input") }
        let w = word.utf8Start
        for i in 0..<n where bytes[index + i] != w[i] { throw error("invalid literal") }
        index += n
    }

    mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        index += 1
        var object = JSONObject()
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(object) }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let key = try parseString()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
            index += 1
            skipWhitespace()
            let value = try parseValue(depth: depth)
            if object[key] != nil { object[key] = value } else { object.appendUnchecked(key, value) }
            skipWhitespace()
            guard index < bytes.count else { throw error("unterminated object") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(object) }
            throw error("expected ',' or '}'")
        }
    }

    mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        index += 1
        var array: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return .array(array) }
        while true {
            skipWhitespace()
            array.append(try parseValue(depth: depth))
            skipWhitespace()
            guard index < bytes.count else { throw error("unterminated array") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(array) }
            throw error("expected ',' or ']'")
        }
    }

    mutating func parseString() throws(JSONParseError) -> String {
        index += 1
        let start = index
        // Fast path: no escapes.
        while index < bytes.count {
            let b = bytes[index]
            if b == UInt8(ascii: "\"") {
                let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                index += 1
                return s
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { throw error("control character in string") }
            index += 1
        }
        var out = Array(bytes[start..<index])
        while index < bytes.count {
            let b = bytes[index]
            if b == UInt8(ascii: "\"") {
                index += 1
                return String(decoding: out, as: UTF8.self)
            }
            if b < 0x20 { throw error("control character in string") }
            if b != UInt8(ascii: "\\") { out.append(b); index += 1; continue }
            index += 1
            guard index < bytes.count else { break }
            let e = bytes[index]
            index += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
                        bytes[index + 1] == UInt8(ascii: "u")
                    else {
                        throw error("unpaired surrogate")
                    }
                    index += 2
                    let low = try hex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw error("invalid low surrogate") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw error("unpaired surrogate")
                }
                guard let u = Unicode.Scalar(scalar) else { throw error("invalid unicode escape") }
                out.append(contentsOf: Array(String(Character(u)).utf8))
            default: throw error("invalid escape")
            }
        }
        throw error("unterminated string")
    }

    mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("short unicode escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[index]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw error("invalid hex digit")
            }
            v = v << 4 | d
            index += 1
        }
        return v
    }

    mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let start = index
        var isInteger = true
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else {
            throw error("invalid number")
        }
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): index += 1
            case UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"), UInt8(ascii: "+"), UInt8(ascii: "-"):
                isInteger = false
                index += 1
            default:
                return try finishNumber(start: start, isInteger: isInteger)
            }
        }
        return try finishNumber(start: start, isInteger: isInteger)
    }

    func finishNumber(start: Int, isInteger: Bool) throws(JSONParseError) -> JSONValue {
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        if isInteger {
            guard let i = Int64(text) else {
                throw JSONParseError(reason: "integer \(text.prefix(40)) does not fit in 64 bits", offset: start)
            }
            return .int(i)
        }
        guard let d = Double(text), d.isFinite else {
            throw JSONParseError(reason: "invalid number \(text.prefix(40))", offset: start)
        }
        return .double(d)
    }
}

enum JSONWriter {
    static func write(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null: writeLiteral("null", into: &out)
        case .bool(let b): writeLiteral(b ? "true" : "false", into: &out)
        case .int(let i): writeInteger(i, into: &out)
        case .double(let d):
            if !d.isFinite {
                writeLiteral("null", into: &out)
            } else if d.rounded() == d && abs(d) < 1e16 {
                writeInteger(Int64(d), into: &out)
                writeLiteral(".0", into: &out)  // stays a float for Python
            } else {
                out.append(contentsOf: d.description.utf8)
            }
        case .string(let s): writeString(s, into: &out)
        case .array(let a):
            out.append(UInt8(ascii: "["))
            for (i, v) in a.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                write(v, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let o):
            out.append(UInt8(ascii: "{"))
            for (i, p) in o.pairs.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                writeString(p.key, into: &out)
                out.append(UInt8(ascii: ":"))
                write(p.value, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Writes ASCII bytes of a literal (no intermediate array: this runs for every null, bool and ".0").
    static func writeLiteral(_ literal: StaticString, into out: inout [UInt8]) {
        literal.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    /// Writes a decimal integer digit by digit, without making a String first.
    static func writeInteger(_ value: Int64, into out: inout [UInt8]) {
        if value == 0 {
            out.append(UInt8(ascii: "0"))
            return
        }
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // up to 20 digits, least significant first
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            while magnitude > 0 {
                buffer[count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            }
            for i in stride(from: count - 1, through: 0, by: -1) { out.append(buffer[i]) }
        }
    }

    static func writeString(_ s: String, into out: inout [UInt8]) {
        // Most strings (ids, names, hosts) need no escape: scan their bytes in place and copy them in one go.
        let copied = s.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
            for b in bytes where b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") { return false }
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: bytes)
            out.append(UInt8(ascii: "\""))
            return true
        }
        if copied == true { return }
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): writeLiteral("\\\"", into: &out)
            case UInt8(ascii: "\\"): writeLiteral("\\\\", into: &out)
            case 0x0A: writeLiteral("\\n", into: &out)
            case 0x0D: writeLiteral("\\r", into: &out)
            case 0x09: writeLiteral("\\t", into: &out)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 0xF)]])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// Writes one JSON object field by field straight into bytes, without building a ``JSONObject`` first: for hot
/// paths that emit many small objects (task events). Keys are written as given, so they must be distinct; the
/// `StaticString` keys must be plain ASCII needing no escape (they are written raw).
public struct JSONObjectWriter: Sendable {
    /// The object written so far, starting with `{`; not closed until ``finish()``.
    public private(set) var bytes: [UInt8]
    private var empty = true

    /// A writer whose bytes are empty, not even `{` (no allocation): ``append(to:_:)`` swaps its array in.
    private init(unopened: Void) {
        bytes = []
    }

    /// A writer with `{` written and room for `capacity` bytes before it reallocates.
    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
        bytes.append(UInt8(ascii: "{"))
    }

    /// Writes one object at the end of `bytes` (e.g. the next element of a JSON array being written) in place:
    /// no buffer of its own, and no copy of what `bytes` already holds. The array is swapped into the writer and
    /// back, so it is never referenced twice (an array passed by value would be, and its first append would copy
    /// it whole: a copy per object, quadratic in the batch).
    public static func append(to bytes: inout [UInt8], _ write: (inout JSONObjectWriter) -> Void) {
        var writer = JSONObjectWriter(unopened: ())
        swap(&writer.bytes, &bytes)
        writer.bytes.append(UInt8(ascii: "{"))
        write(&writer)
        writer.bytes.append(UInt8(ascii: "}"))
        swap(&writer.bytes, &bytes)
    }

    /// Adds a field whose key is escaped as JSON needs.
    public mutating func add(_ key: String, _ value: JSONValue) {
        if !empty { bytes.append(UInt8(ascii: ",")) }
        empty = false
        JSONWriter.writeString(key, into: &bytes)
        bytes.append(UInt8(ascii: ":"))
        JSONWriter.write(value, into: &bytes)
    }

    /// Adds a string field whose key is escaped as JSON needs.
    public mutating func add(_ key: String, _ value: String) { add(key, .string(value)) }

    private mutating func key(_ key: StaticString) {
        if !empty { bytes.append(UInt8(ascii: ",")) }
        empty = false
        bytes.append(UInt8(ascii: "\""))
        key.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
    }

    /// Adds a string field under a raw ASCII key.
    public mutating func add(_ key: StaticString, string value: String) {
        self.key(key)
        JSONWriter.writeString(value, into: &bytes)
    }

    /// A string, or `null` for nil.
    public mutating func add(_ key: StaticString, string value: String?) {
        self.key(key)
        if let value {
            JSONWriter.writeString(value, into: &bytes)
        } else {
            JSONWriter.writeLiteral("null", into: &bytes)
        }
    }

    /// Adds an integer field.
    public mutating func add(_ key: StaticString, int value: Int) {
        self.key(key)
        JSONWriter.writeInteger(Int64(value), into: &bytes)
    }

    /// Adds a `true`/`false` field.
    public mutating func add(_ key: StaticString, bool value: Bool) {
        self.key(key)
        JSONWriter.writeLiteral(value ? "true" : "false", into: &bytes)
    }

    /// Adds a `null` field.
    public mutating func addNull(_ key: StaticString) {
        self.key(key)
        JSONWriter.writeLiteral("null", into: &bytes)
    }

    /// Adds a field of any JSON value under a raw ASCII key.
    public mutating func add(_ key: StaticString, _ value: JSONValue) {
        self.key(key)
        JSONWriter.write(value, into: &bytes)
    }

    /// A non-negative number of seconds (a Unix time, a run time) with exactly six decimals, written from integers:
    /// `Double.description` costs more than the rest of a task event together.
    public mutating func add(_ key: StaticString, seconds value: Double) {
        self.key(key)
        guard value.isFinite, value >= 0, value < 1e12 else {
            JSONWriter.write(.double(value), into: &bytes)
            return
        }
        let micros = Int64((value * 1e6).rounded())
        JSONWriter.writeInteger(micros / 1_000_000, into: &bytes)
        bytes.append(UInt8(ascii: "."))
        var fraction = micros % 1_000_000
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            for i in stride(from: 5, through: 0, by: -1) {
                buffer[i] = UInt8(ascii: "0") + UInt8(fraction % 10)
                fraction /= 10
            }
            bytes.append(contentsOf: buffer)
        }
    }

    /// Fields written once and reused (``fragment(_:)``): `"a":1,"b":2`, inserted as they are.
    public mutating func add(fragment: [UInt8]) {
        guard !fragment.isEmpty else { return }
        if !empty { bytes.append(UInt8(ascii: ",")) }
        empty = false
        bytes.append(contentsOf: fragment)
    }

    /// The bytes of some fields without braces, for ``add(fragment:)``.
    public static func fragment(_ fields: KeyValuePairs<String, JSONValue>) -> [UInt8] {
        var writer = JSONObjectWriter(capacity: 64)
        for (key, value) in fields { writer.add(key, value) }
        return Array(writer.bytes.dropFirst())
    }

    /// The finished object's bytes, closed; the writer is used up (its array is moved out, not copied).
    public consuming func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }
}
