/// One value in an AMQP field table (message headers, queue arguments).
///
/// The cases mirror the AMQP 0-9-1 field kinds that Celery and RabbitMQ use. Unsigned kinds that arrive on the
/// wire are widened into the next signed case on decode (`B`→`int16`, `u`→`int32`, `i`→`int64`); an `L`
/// (which rabbitmq-c calls U64 but py-amqp writes for signed 64-bit ints) is read as `int64` with the same bits.
public enum FieldValue: Sendable, Equatable, Hashable {
    /// Boolean (`t`).
    case bool(Bool)
    /// Signed 8-bit integer (`b`).
    case int8(Int8)
    /// Signed 16-bit integer (`s`); also an unsigned 8-bit `B` read from the wire.
    case int16(Int16)
    /// Signed 32-bit integer (`I`); also an unsigned 16-bit `u` read from the wire.
    case int32(Int32)
    /// Signed 64-bit integer (`l`); also an unsigned 32-bit `i`, and an `L`, read from the wire.
    case int64(Int64)
    /// 32-bit float (`f`).
    case float(Float)
    /// 64-bit float (`d`).
    case double(Double)
    /// Decimal (`D`): `value` divided by 10^`scale`.
    case decimal(scale: UInt8, value: UInt32)
    /// UTF-8 long string (`S`).
    case string(String)
    /// Byte array (`x`).
    case bytes([UInt8])
    /// Timestamp (`T`): seconds since the Unix epoch.
    case timestamp(UInt64)
    /// No value (`V`): AMQP's null, Python's `None`.
    case void
    /// Array of field values (`A`).
    case array([FieldValue])
    /// Nested field table (`F`).
    case table(FieldTable)

    /// The value as an integer, whatever integer kind carried it.
    public var intValue: Int64? {
        switch self {
        case .int8(let v): Int64(v)
        case .int16(let v): Int64(v)
        case .int32(let v): Int64(v)
        case .int64(let v): v
        default: nil
        }
    }

    /// The value as a string, or nil for any other kind.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The value as a Bool, or nil for any other kind.
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The value as a Double when it is a double, float or any integer kind.
    public var doubleValue: Double? {
        switch self {
        case .double(let d): d
        case .float(let f): Double(f)
        default: intValue.map(Double.init)
        }
    }

    /// True for ``void`` (AMQP's null).
    public var isVoid: Bool { self == .void }

    /// The smallest signed integer case that holds `value` (`I` when it fits 32 bits, else `l`), as py-amqp
    /// expects.
    public static func int(_ value: Int) -> FieldValue {
        if let small = Int32(exactly: value) { return .int32(small) }
        return .int64(Int64(value))
    }
}

/// An ordered AMQP field table. Keys are unique; order is kept as written.
public struct FieldTable: Sendable, Equatable, Hashable, ExpressibleByDictionaryLiteral, Sequence {
    /// The entries in order; keys are unique.
    public private(set) var entries: [(key: String, value: FieldValue)]

    /// An empty table.
    public init() { entries = [] }
    /// Later duplicates replace earlier ones in place. Linear in the entry count: a hostile header table with tens
    /// of thousands of keys must not cost quadratic time on the consumer thread.
    public init(_ entries: [(key: String, value: FieldValue)]) {
        // Every delivery's headers come through here (a Celery task has about 20). Up to `smallTable` keys, pairs
        // of keys are compared (by length first, an O(1) read) instead of hashing each key into an index, and a
        // table without duplicates, the normal case, is kept as it is.
        if entries.count <= Self.smallTable {
            var duplicated = false
            search: for i in entries.indices.dropFirst() {
                let key = entries[i].key, length = key.utf8.count
                for j in 0..<i where entries[j].key.utf8.count == length && entries[j].key == key {
                    duplicated = true
                    break search
                }
            }
            if !duplicated {
                self.entries = entries
                return
            }
        }
        var index: [String: Int] = [:]
        index.reserveCapacity(entries.count)
        var unique: [(key: String, value: FieldValue)] = []
        unique.reserveCapacity(entries.count)
        for e in entries {
            if let i = index[e.key] {
                unique[i].value = e.value
            } else {
                index[e.key] = unique.count
                unique.append(e)
            }
        }
        self.entries = unique
    }
    /// A table whose keys the caller knows to be distinct (checked in debug builds only): for encoders that write
    /// a fixed set of headers on every message.
    public init(uniqueKeys entries: [(key: String, value: FieldValue)]) {
        assert(Set(entries.map(\.key)).count == entries.count, "FieldTable(uniqueKeys:) got a duplicate key")
        self.entries = entries
    }

    /// Tables up to this many keys are checked for duplicates pair by pair (see ``init(_:)``).
    static let smallTable = 32

    /// A table with the literal's entries in order; later duplicates replace earlier ones, as in ``init(_:)``.
    public init(dictionaryLiteral elements: (String, FieldValue)...) {
        self.init(elements.map { (key: $0.0, value: $0.1) })
    }

    /// The value under `key`, or nil. Setting a new key appends it; setting an existing key replaces its value in
    /// place; setting nil removes the entry.
    public subscript(key: String) -> FieldValue? {
        get { entries.first(where: { $0.key == key })?.value }
        set {
            if let i = entries.firstIndex(where: { $0.key == key }) {
                if let newValue { entries[i].value = newValue } else { entries.remove(at: i) }
            } else if let newValue {
                entries.append((key: key, value: newValue))
            }
        }
    }

    /// Number of entries.
    public var count: Int { entries.count }
    /// Whether the table has no entries.
    public var isEmpty: Bool { entries.isEmpty }
    /// The keys in order.
    public var keys: [String] { entries.map(\.key) }

    /// Iterates the `(key, value)` entries in order.
    public func makeIterator() -> IndexingIterator<[(key: String, value: FieldValue)]> { entries.makeIterator() }

    /// Equal when both hold the same entries in the same order (unlike a dictionary, order counts).
    public static func == (lhs: FieldTable, rhs: FieldTable) -> Bool {
        lhs.entries.count == rhs.entries.count
            && zip(lhs.entries, rhs.entries).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    /// Hashes the entries in order, matching ``==(_:_:)``.
    public func hash(into hasher: inout Hasher) {
        for e in entries {
            hasher.combine(e.key)
            hasher.combine(e.value)
        }
    }
}
