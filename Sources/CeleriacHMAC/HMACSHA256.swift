internal import CLibCrypto

/// HMAC-SHA256 from the system's OpenSSL libcrypto. The only Swift file that sees libcrypto; it exposes byte
/// arrays only.
public enum HMACSHA256 {
    /// The 32-byte authentication code of `message` under `key`.
    public static func authenticationCode(for message: [UInt8], key: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = key.withUnsafeBufferPointer { k in
            message.withUnsafeBufferPointer { m in
                out.withUnsafeMutableBufferPointer { o in
                    // A zero-length buffer may have a nil base address; OpenSSL accepts a non-null pointer with
                    // length 0, so give it one.
                    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1) { dummy in
                        HMAC(
                            EVP_sha256(), UnsafeRawPointer(k.baseAddress ?? UnsafePointer(dummy.baseAddress!)),
                            Int32(k.count),
                            m.baseAddress ?? UnsafePointer(dummy.baseAddress!), m.count, o.baseAddress, &length) != nil
                    }
                }
            }
        }
        // HMAC only fails on allocation failure or a broken OpenSSL installation: nothing a caller could handle.
        precondition(ok && length == 32, "OpenSSL HMAC-SHA256 failed")
        return Array(out.prefix(Int(length)))
    }

    /// Compares two codes in time that does not depend on where they differ (OpenSSL's CRYPTO_memcmp).
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { x in
            b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, a.count) == 0 }
        }
    }
}
