/// Random (version 4) UUIDs for task ids, lower-case, as Python's `str(uuid.uuid4())` writes them.
///
/// `Foundation.UUID()` on Linux opens, reads and closes `/dev/urandom` for every id: three system calls and a file
/// descriptor per task sent. This draws the 122 random bits from the system generator (`getrandom(2)`, through
/// `SystemRandomNumberGenerator`) and writes the text directly.
enum TaskID {
    private static let hex = Array("0123456789abcdef".utf8)

    static func random() -> String {
        var generator = SystemRandomNumberGenerator()
        var high = generator.next() as UInt64
        var low = generator.next() as UInt64
        high = (high & ~0xF000) | 0x4000  // version 4 (bits 12-15 of time_hi_and_version)
        low = (low & ~(0xC000 << 48)) | (0x8000 << 48)  // variant 10xx (RFC 9562)
        return String(unsafeUninitializedCapacity: 36) { out in
            var i = 0
            func put(_ value: UInt64, nibbles: Int) {
                for n in stride(from: nibbles - 1, through: 0, by: -1) {
                    out[i] = hex[Int((value >> UInt64(n * 4)) & 0xF)]
                    i += 1
                }
            }
            func dash() { out[i] = UInt8(ascii: "-"); i += 1 }
            put(high >> 32, nibbles: 8); dash()
            put((high >> 16) & 0xFFFF, nibbles: 4); dash()
            put(high & 0xFFFF, nibbles: 4); dash()
            put(low >> 48, nibbles: 4); dash()
            put(low & 0xFFFF_FFFF_FFFF, nibbles: 12)
            return i
        }
    }
}
