import CeleriacBroker
import CeleriacCore

/// Converts between JSON values (Core's vocabulary) and AMQP field values, the way py-amqp does: strings as `S`,
/// ints as `I` when they fit 32 bits and `l` otherwise, floats as `d`, None as `V`, lists as `A`, dicts as `F`.
enum HeaderMapping {
    static func field(_ v: JSONValue) -> FieldValue {
        switch v {
        case .null: .void
        case .bool(let b): .bool(b)
        case .int(let i): Int32(exactly: i).map { .int32($0) } ?? .int64(i)
        case .double(let d): .double(d)
        case .string(let s): .string(s)
        case .array(let a): .array(a.map(field))
        case .object(let o): .table(FieldTable(o.pairs.map { (key: $0.key, value: field($0.value)) }))
        }
    }

    static func json(_ f: FieldValue) -> JSONValue {
        switch f {
        case .void: .null
        case .bool(let b): .bool(b)
        case .int8, .int16, .int32, .int64: .int(f.intValue!)
        case .float(let x): .double(Double(x))
        case .double(let d): .double(d)
        case .decimal(let scale, let value): .double(Double(value) / pow10(Int(scale)))
        case .string(let s): .string(s)
        case .bytes(let b): .string(String(decoding: b, as: UTF8.self))
        // An AMQP timestamp is unsigned: one past Int64.max (found by the fuzzer) must not trap.
        case .timestamp(let t): Int64(exactly: t).map { .int($0) } ?? .double(Double(t))
        case .array(let a): .array(a.map(json))
        case .table(let t): .object(JSONObject(t.entries.map { ($0.key, json($0.value)) }))
        }
    }

    private static func pow10(_ n: Int) -> Double {
        var r = 1.0
        for _ in 0..<n { r *= 10 }
        return r
    }
}
