/// Any JSON value, as task arguments, keyword arguments and results travel on the wire.
///
/// Integers are kept exact as `Int64`; a JSON integer beyond Int64 (Python sends them) is a parse error, never a
/// silent rounding. Objects keep their key order (``JSONObject``), so `kwargsrepr` and re-encoding are stable.
public enum JSONValue: Sendable, Hashable {
    /// JSON `null` (Python `None`).
    case null
    /// JSON `true` or `false`.
    case bool(Bool)
    /// A JSON number without fraction or exponent, kept exact.
    case int(Int64)
    /// A JSON number with a fraction or exponent.
    case double(Double)
    /// A JSON string.
    case string(String)
    /// A JSON array.
    case array([JSONValue])
    /// A JSON object, keys in the order they were written.
    case object(JSONObject)

    /// The integer; also a whole `double` below 9e15 in magnitude (exact in a `Double`). Nil otherwise.
    public var intValue: Int64? {
        switch self {
        case .int(let i): i
        case .double(let d) where d.rounded() == d && abs(d) < 9e15: Int64(d)
        default: nil
        }
    }
    /// The number as a `Double` (an `int` converted); nil for non-numbers.
    public var doubleValue: Double? {
        switch self {
        case .int(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }
    /// The string, or nil for any other case.
    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    /// The boolean, or nil for any other case (`0`/`1` are not booleans).
    public var boolValue: Bool? { if case .bool(let b) = self { b } else { nil } }
    /// The elements, or nil for any other case.
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { a } else { nil } }
    /// The object, or nil for any other case.
    public var objectValue: JSONObject? { if case .object(let o) = self { o } else { nil } }
    /// Whether this is JSON `null`.
    public var isNull: Bool { self == .null }

    /// The value under `key` when this is an object; nil when the key is missing or this is not an object.
    public subscript(key: String) -> JSONValue? { objectValue?[key] }
}

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    /// `nil` is JSON `null`.
    public init(nilLiteral: ()) { self = .null }
    /// `true`/`false` are JSON booleans.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    /// An integer literal is an exact `int`.
    public init(integerLiteral value: Int64) { self = .int(value) }
    /// A floating-point literal is a `double`.
    public init(floatLiteral value: Double) { self = .double(value) }
    /// A string literal is a JSON string.
    public init(stringLiteral value: String) { self = .string(value) }
    /// An array literal is a JSON array.
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    /// A dictionary literal is a JSON object, keys in the literal's order; a repeated key keeps its first position and
    /// the last value.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements.map { ($0.0, $0.1) }))
    }
}

/// A JSON object that keeps its keys in order. Lookups are linear, which is fastest for the handful of keys a
/// task's kwargs or a result body has.
public struct JSONObject: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    /// The fields in order; keys are distinct.
    public private(set) var pairs: [(key: String, value: JSONValue)]

    /// An empty object.
    public init() { pairs = [] }
    /// An object with `pairs` in order; a repeated key keeps its first position and takes the last value.
    public init(_ pairs: [(String, JSONValue)]) {
        self.pairs = []
        self.pairs.reserveCapacity(pairs.count)
        for (k, v) in pairs { self[k] = v }
    }
    /// An object with the literal's fields in order, as ``init(_:)``.
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self.init(elements.map { ($0.0, $0.1) }) }

    /// The value under `key`, or nil. Setting a new key appends it; setting an existing key replaces its value in
    /// place; setting nil removes the key.
    public subscript(key: String) -> JSONValue? {
        get {
            for p in pairs where p.key == key { return p.value }
            return nil
        }
        set {
            if let i = pairs.firstIndex(where: { $0.key == key }) {
                if let newValue { pairs[i].value = newValue } else { pairs.remove(at: i) }
            } else if let newValue {
                pairs.append((key: key, value: newValue))
            }
        }
    }

    /// Appends without checking for an existing key (the parser's fast path; it checks duplicates itself).
    mutating func appendUnchecked(_ key: String, _ value: JSONValue) { pairs.append((key: key, value: value)) }

    /// Number of fields.
    public var count: Int { pairs.count }
    /// Whether the object has no fields.
    public var isEmpty: Bool { pairs.isEmpty }
    /// The keys in order.
    public var keys: [String] { pairs.map(\.key) }
    /// Iterates the `(key, value)` pairs in order.
    public func makeIterator() -> IndexingIterator<[(key: String, value: JSONValue)]> { pairs.makeIterator() }

    /// Equal when both have the same keys with equal values, in any order (as JSON objects compare).
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.count == rhs.count else { return false }
        for p in lhs.pairs where rhs[p.key] != p.value { return false }
        return true
    }
    /// Hashes keys and values in key-sorted order, so objects that compare equal hash alike.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        for p in pairs.sorted(by: { $0.key < $1.key }) {
            hasher.combine(p.key)
            hasher.combine(p.value)
        }
    }
}

extension JSONValue: Codable {
    /// Decodes any JSON value through a `Decoder`. An object from a keyed decoder loses its order: its keys come
    /// sorted. Use `parse(_:maxDepth:)` to keep order and exact integers.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int64.self) {
            self = .int(i)
        } else if let d = try? c.decode(Double.self) {
            self = .double(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else if let o = try? c.decode([String: JSONValue].self) {
            self = .object(JSONObject(o.sorted(by: { $0.key < $1.key }).map { ($0.key, $0.value) }))
        } else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a JSON value")
        }
    }

    /// Encodes through an `Encoder`. An object is encoded as a dictionary, so its key order is up to the encoder.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .double(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o):
            var dict: [String: JSONValue] = [:]
            for p in o { dict[p.key] = p.value }
            try c.encode(dict)
        }
    }
}
