import CRabbitMQ

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Scratch memory for building C structures (field tables, property strings) that librabbitmq reads during one
/// call. Everything is freed together when the arena is released. Not Sendable: it lives within one call on the
/// connection thread.
final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    deinit {
        for b in blocks { free(b) }
    }

    func allocate(_ size: Int) -> UnsafeMutableRawPointer {
        let p = malloc(max(size, 1))!
        blocks.append(p)
        return p
    }

    func bytes(_ array: [UInt8]) -> amqp_bytes_t {
        if array.isEmpty { return amqp_bytes_t(len: 0, bytes: nil) }
        let p = allocate(array.count)
        array.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: array.count) }
        return amqp_bytes_t(len: array.count, bytes: p)
    }

    func bytes(_ string: String) -> amqp_bytes_t { bytes(Array(string.utf8)) }

    /// A NUL-terminated copy of `string`, valid until the arena is released.
    func cString(_ string: String) -> UnsafeMutablePointer<CChar> {
        let utf8 = Array(string.utf8)
        let p = allocate(utf8.count + 1).bindMemory(to: CChar.self, capacity: utf8.count + 1)
        for (i, b) in utf8.enumerated() { p[i] = CChar(bitPattern: b) }
        p[utf8.count] = 0
        return p
    }

    func table(_ table: FieldTable) -> amqp_table_t {
        if table.isEmpty { return amqp_table_t(num_entries: 0, entries: nil) }
        let entries = allocate(MemoryLayout<amqp_table_entry_t>.stride * table.count)
            .bindMemory(to: amqp_table_entry_t.self, capacity: table.count)
        for (i, e) in table.entries.enumerated() {
            entries[i] = amqp_table_entry_t(key: bytes(e.key), value: value(e.value))
        }
        return amqp_table_t(num_entries: Int32(table.count), entries: entries)
    }

    func value(_ v: FieldValue) -> amqp_field_value_t {
        var f = amqp_field_value_t()
        switch v {
        case .bool(let b): f.kind = kind(AMQP_FIELD_KIND_BOOLEAN); f.value.boolean = b ? 1 : 0
        case .int8(let i): f.kind = kind(AMQP_FIELD_KIND_I8); f.value.i8 = i
        case .int16(let i): f.kind = kind(AMQP_FIELD_KIND_I16); f.value.i16 = i
        case .int32(let i): f.kind = kind(AMQP_FIELD_KIND_I32); f.value.i32 = i
        case .int64(let i): f.kind = kind(AMQP_FIELD_KIND_I64); f.value.i64 = i
        case .float(let x): f.kind = kind(AMQP_FIELD_KIND_F32); f.value.f32 = x
        case .double(let x): f.kind = kind(AMQP_FIELD_KIND_F64); f.value.f64 = x
        case .decimal(let scale, let value):
            f.kind = kind(AMQP_FIELD_KIND_DECIMAL); f.value.decimal = amqp_decimal_t(decimals: scale, value: value)
        case .string(let s): f.kind = kind(AMQP_FIELD_KIND_UTF8); f.value.bytes = bytes(s)
        case .bytes(let b): f.kind = kind(AMQP_FIELD_KIND_BYTES); f.value.bytes = bytes(b)
        case .timestamp(let t): f.kind = kind(AMQP_FIELD_KIND_TIMESTAMP); f.value.u64 = t
        case .void: f.kind = kind(AMQP_FIELD_KIND_VOID)
        case .array(let items):
            f.kind = kind(AMQP_FIELD_KIND_ARRAY)
            if items.isEmpty {
                f.value.array = amqp_array_t(num_entries: 0, entries: nil)
            } else {
                let p = allocate(MemoryLayout<amqp_field_value_t>.stride * items.count)
                    .bindMemory(to: amqp_field_value_t.self, capacity: items.count)
                for (i, item) in items.enumerated() { p[i] = value(item) }
                f.value.array = amqp_array_t(num_entries: Int32(items.count), entries: p)
            }
        case .table(let t): f.kind = kind(AMQP_FIELD_KIND_TABLE); f.value.table = table(t)
        }
        return f
    }

    func properties(_ p: BasicProperties) -> amqp_basic_properties_t {
        var c = amqp_basic_properties_t()
        var flags: UInt32 = 0
        func set(_ flag: Int32) { flags |= UInt32(bitPattern: flag) }
        if let v = p.contentType { c.content_type = bytes(v); set(AMQP_BASIC_CONTENT_TYPE_FLAG) }
        if let v = p.contentEncoding { c.content_encoding = bytes(v); set(AMQP_BASIC_CONTENT_ENCODING_FLAG) }
        if let v = p.headers { c.headers = table(v); set(AMQP_BASIC_HEADERS_FLAG) }
        if let v = p.deliveryMode { c.delivery_mode = v; set(AMQP_BASIC_DELIVERY_MODE_FLAG) }
        if let v = p.priority { c.priority = v; set(AMQP_BASIC_PRIORITY_FLAG) }
        if let v = p.correlationID { c.correlation_id = bytes(v); set(AMQP_BASIC_CORRELATION_ID_FLAG) }
        if let v = p.replyTo { c.reply_to = bytes(v); set(AMQP_BASIC_REPLY_TO_FLAG) }
        if let v = p.expiration { c.expiration = bytes(v); set(AMQP_BASIC_EXPIRATION_FLAG) }
        if let v = p.messageID { c.message_id = bytes(v); set(AMQP_BASIC_MESSAGE_ID_FLAG) }
        if let v = p.timestamp { c.timestamp = v; set(AMQP_BASIC_TIMESTAMP_FLAG) }
        if let v = p.type { c.type = bytes(v); set(AMQP_BASIC_TYPE_FLAG) }
        if let v = p.userID { c.user_id = bytes(v); set(AMQP_BASIC_USER_ID_FLAG) }
        if let v = p.appID { c.app_id = bytes(v); set(AMQP_BASIC_APP_ID_FLAG) }
        c._flags = flags
        return c
    }

    private func kind(_ k: amqp_field_value_kind_t) -> UInt8 { UInt8(k.rawValue) }
}

/// Runs `body` with a fresh ``CArena`` that stays alive until `body` returns, then frees everything built in it.
///
/// Put the C call that reads the arena's strings and tables inside `body`: what `body` returns (a status, a reply,
/// a pointer into librabbitmq's own memory) must not point into the arena.
@inline(__always)
func withCArena<Result, Failure: Error>(_ body: (CArena) throws(Failure) -> Result) throws(Failure) -> Result {
    let arena = CArena()
    return try withExtendedLifetime(arena) { () throws(Failure) -> Result in try body(arena) }
}

// MARK: - Decoding (deep copies out of librabbitmq memory)

enum CDecode {
    static func bytes(_ b: amqp_bytes_t) -> [UInt8] {
        guard b.len > 0, let p = b.bytes else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: b.len))
    }

    /// Text from the wire. A byte that is not part of valid UTF-8 becomes `?` (not U+FFFD, which takes three
    /// bytes): decoded text is never longer than its wire form, so a 255-byte short string or table key that a
    /// worker passes on (dead letter, retry, result) still fits in 255 bytes. Found by the decoder fuzzer.
    static func string(_ b: amqp_bytes_t) -> String {
        guard b.len > 0, let p = b.bytes else { return "" }
        let wire = UnsafeRawBufferPointer(start: p, count: b.len)
        // ASCII (header names, ids, queue and consumer names: nearly all text on the wire) is valid as it is: made
        // straight from librabbitmq's buffer, without a copy into an array and without the generic validating
        // initializer (a runtime metadata lookup per call; 5 % of a worker's CPU when every header went through it).
        if wire.allSatisfy({ $0 < 0x80 }) { return String(decoding: wire, as: UTF8.self) }
        let raw = Array(wire)
        if let text = String(validating: raw, as: UTF8.self) { return text }
        var out = ""
        var parser = Unicode.UTF8.ForwardParser()
        var it = raw.makeIterator()
        loop: while true {
            switch parser.parseScalar(from: &it) {
            case .valid(let encoded): out.unicodeScalars.append(Unicode.UTF8.decode(encoded))
            case .error(let length): out += String(repeating: "?", count: length)
            case .emptyInput: break loop
            }
        }
        return out
    }

    static func table(_ t: amqp_table_t) -> FieldTable {
        var out: [(key: String, value: FieldValue)] = []
        out.reserveCapacity(Int(t.num_entries))
        for i in 0..<Int(t.num_entries) {
            let e = t.entries[i]
            out.append((key: string(e.key), value: value(e.value)))
        }
        return FieldTable(out)
    }

    static func value(_ f: amqp_field_value_t) -> FieldValue {
        switch UInt32(f.kind) {
        case AMQP_FIELD_KIND_BOOLEAN.rawValue: return .bool(f.value.boolean != 0)
        case AMQP_FIELD_KIND_I8.rawValue: return .int8(f.value.i8)
        case AMQP_FIELD_KIND_U8.rawValue: return .int16(Int16(f.value.u8))
        case AMQP_FIELD_KIND_I16.rawValue: return .int16(f.value.i16)
        case AMQP_FIELD_KIND_U16.rawValue: return .int32(Int32(f.value.u16))
        case AMQP_FIELD_KIND_I32.rawValue: return .int32(f.value.i32)
        case AMQP_FIELD_KIND_U32.rawValue: return .int64(Int64(f.value.u32))
        case AMQP_FIELD_KIND_I64.rawValue: return .int64(f.value.i64)
        // py-amqp writes signed 64-bit ints with the letter rabbitmq-c calls U64: keep the bits.
        case AMQP_FIELD_KIND_U64.rawValue: return .int64(Int64(bitPattern: f.value.u64))
        case AMQP_FIELD_KIND_F32.rawValue: return .float(f.value.f32)
        case AMQP_FIELD_KIND_F64.rawValue: return .double(f.value.f64)
        case AMQP_FIELD_KIND_DECIMAL.rawValue:
            return .decimal(scale: f.value.decimal.decimals, value: f.value.decimal.value)
        case AMQP_FIELD_KIND_UTF8.rawValue: return .string(string(f.value.bytes))
        case AMQP_FIELD_KIND_BYTES.rawValue: return .bytes(bytes(f.value.bytes))
        case AMQP_FIELD_KIND_TIMESTAMP.rawValue: return .timestamp(f.value.u64)
        case AMQP_FIELD_KIND_VOID.rawValue: return .void
        case AMQP_FIELD_KIND_ARRAY.rawValue:
            let a = f.value.array
            return .array((0..<Int(a.num_entries)).map { value(a.entries[$0]) })
        case AMQP_FIELD_KIND_TABLE.rawValue: return .table(table(f.value.table))
        default: return .void
        }
    }

    static func properties(_ c: amqp_basic_properties_t) -> BasicProperties {
        func has(_ flag: Int32) -> Bool { c._flags & UInt32(bitPattern: flag) != 0 }
        var p = BasicProperties()
        if has(AMQP_BASIC_CONTENT_TYPE_FLAG) { p.contentType = string(c.content_type) }
        if has(AMQP_BASIC_CONTENT_ENCODING_FLAG) { p.contentEncoding = string(c.content_encoding) }
        if has(AMQP_BASIC_HEADERS_FLAG) { p.headers = table(c.headers) }
        if has(AMQP_BASIC_DELIVERY_MODE_FLAG) { p.deliveryMode = c.delivery_mode }
        if has(AMQP_BASIC_PRIORITY_FLAG) { p.priority = c.priority }
        if has(AMQP_BASIC_CORRELATION_ID_FLAG) { p.correlationID = string(c.correlation_id) }
        if has(AMQP_BASIC_REPLY_TO_FLAG) { p.replyTo = string(c.reply_to) }
        if has(AMQP_BASIC_EXPIRATION_FLAG) { p.expiration = string(c.expiration) }
        if has(AMQP_BASIC_MESSAGE_ID_FLAG) { p.messageID = string(c.message_id) }
        if has(AMQP_BASIC_TIMESTAMP_FLAG) { p.timestamp = c.timestamp }
        if has(AMQP_BASIC_TYPE_FLAG) { p.type = string(c.type) }
        if has(AMQP_BASIC_USER_ID_FLAG) { p.userID = string(c.user_id) }
        if has(AMQP_BASIC_APP_ID_FLAG) { p.appID = string(c.app_id) }
        return p
    }
}
