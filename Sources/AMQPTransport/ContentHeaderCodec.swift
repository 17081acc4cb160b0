import CRabbitMQ

/// A message's properties in AMQP's wire form (a content header frame's payload from the property flags on),
/// through librabbitmq's own codec and the same C-to-Swift conversion every delivery goes through.
///
/// Used by the fuzzer (`Fuzz/`) to feed hostile header tables through the real decoding path, and by its seed
/// writer. Nothing in here keeps C memory past the call.
public enum ContentHeaderCodec {
    /// The properties encoded in `bytes`, or nil when librabbitmq rejects them (truncated, unknown field type).
    public static func decode(_ bytes: [UInt8]) -> BasicProperties? {
        var pool = amqp_pool_t()
        init_amqp_pool(&pool, 4096)
        defer { empty_amqp_pool(&pool) }
        return bytes.withUnsafeBytes { raw -> BasicProperties? in
            // librabbitmq reads the buffer only; it wants a mutable pointer type but does not write through it.
            let encoded = amqp_bytes_t(
                len: raw.count, bytes: raw.count == 0 ? nil : UnsafeMutableRawPointer(mutating: raw.baseAddress))
            var decoded: UnsafeMutableRawPointer? = nil
            guard raw.count >= 2, amqp_decode_properties(UInt16(AMQP_BASIC_CLASS), &pool, encoded, &decoded) == 0,
                let decoded
            else { return nil }
            return CDecode.properties(decoded.assumingMemoryBound(to: amqp_basic_properties_t.self).pointee)
        }
    }

    /// The wire form of `properties`, or nil when it does not fit in `capacity` bytes.
    public static func encode(_ properties: BasicProperties, capacity: Int = 131_072) -> [UInt8]? {
        let arena = CArena()
        var c = arena.properties(properties)
        var buffer = [UInt8](repeating: 0, count: capacity)
        let written = buffer.withUnsafeMutableBytes { out in
            amqp_encode_properties(UInt16(AMQP_BASIC_CLASS), &c, amqp_bytes_t(len: out.count, bytes: out.baseAddress))
        }
        guard written >= 0 else { return nil }
        return Array(buffer.prefix(Int(written)))
    }
}
