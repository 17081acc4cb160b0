import CeleriacBroker
import CeleriacCore
import CeleriacHMAC

/// A shared secret for signing task messages, named by a key id so keys can be rotated.
///
/// Its description and mirror never show the secret (`SigningKey(id: k2, secret: ***)`).
public struct SigningKey: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable
{
    /// The key id sent in `x-celeriac-key-id`, so a verifier picks the matching secret (1-64 printable ASCII, no `=`).
    public let id: String
    let secret: [UInt8]

    /// The shortest secret accepted: 16 bytes.
    public static let minimumSecretBytes = 16

    /// - Throws: `CeleriacError.configuration(_:)` when the id is empty or not printable ASCII, or the secret is
    ///   shorter than ``minimumSecretBytes``.
    public init(id: String, secret: [UInt8]) throws(CeleriacError) {
        guard !id.isEmpty, id.utf8.count <= 64,
            id.utf8.allSatisfy({ (0x21...0x7E).contains($0) && $0 != UInt8(ascii: "=") })
        else {
            throw .configuration("signing key id '\(id)' must be 1-64 printable ASCII characters without spaces or '='")
        }
        guard secret.count >= Self.minimumSecretBytes else {
            throw .configuration(
                "signing key '\(id)' is \(secret.count) bytes; use at least \(Self.minimumSecretBytes) random bytes (e.g. `openssl rand -hex 32`)"
            )
        }
        self.id = id
        self.secret = secret
    }

    /// `SigningKey(id: ID, secret: ***)`: never the secret.
    public var description: String { "SigningKey(id: \(id), secret: ***)" }
    /// The same as ``description``: never the secret.
    public var debugDescription: String { description }
    /// A mirror that hides the secret, so `dump` and debuggers show `***`.
    public var customMirror: Mirror { Mirror(self, children: ["id": id, "secret": "***"]) }
}

/// Signs task messages with HMAC-SHA256 and verifies them (Celeriac's own scheme; the idea of Celery's `auth`
/// serializer, not its wire format).
///
/// The code covers, in a fixed framing: the key id, `content_type`, `content_encoding`, `correlation_id`,
/// `reply_to`, every header whose name does not start with `x-` (all of Celery's protocol v2 headers: `task`, `id`,
/// `eta`, `expires`, `timelimit`, `retries`, ...) sorted by name, and the body. Headers starting with `x-` are left
/// out because brokers add them in transit (`x-death`, dead-letter annotations). The signature travels in the
/// `x-celeriac-signature` header (hex) with the key id in `x-celeriac-key-id`.
///
/// Rotation: every key in ``keys`` verifies; ``signingKey`` (the first one given) signs. Roll out a new key as a
/// second key everywhere, then make it the first, then drop the old one.
public struct MessageSigner: Sendable, CustomStringConvertible {
    /// Header carrying the HMAC-SHA256 code, as 64 hex digits.
    public static let signatureHeader = "x-celeriac-signature"
    /// Header carrying the id of the key that signed.
    public static let keyIDHeader = "x-celeriac-key-id"

    /// The key new messages are signed with: the first of ``keys``.
    public let signingKey: SigningKey
    /// Every key accepted when verifying, the signing key first.
    public let keys: [SigningKey]
    /// Reject messages without a signature (the default). Off only while rolling signing out: unsigned messages
    /// are then accepted, signed ones are still verified.
    public var requireSignature: Bool

    /// - Parameters:
    ///   - keys: the first key signs; all verify. Key ids must be unique.
    ///   - requireSignature: reject unsigned messages (see ``requireSignature``).
    public init(keys: [SigningKey], requireSignature: Bool = true) throws(CeleriacError) {
        guard let first = keys.first else { throw .configuration("message signing needs at least one key") }
        var seen = Set<String>()
        for k in keys where !seen.insert(k.id).inserted {
            throw .configuration("signing key id '\(k.id)' is given twice")
        }
        signingKey = first
        self.keys = keys
        self.requireSignature = requireSignature
    }

    /// The ids of ``keys``, in order (for logs and error messages).
    public var keyIDs: [String] { keys.map(\.id) }
    /// The key ids and whether a signature is required; never a secret.
    public var description: String {
        "MessageSigner(signs with: \(signingKey.id), verifies: \(keyIDs.joined(separator: ",")), requireSignature: \(requireSignature))"
    }

    /// Adds the signature headers to a task message (one with a `task` header, or in the compact form); other
    /// messages (results, chord parts, dead letters) are returned unchanged, so a dead-lettered forgery is never
    /// re-signed. A compact message's protocol fields are in its body, which the code covers.
    public func sign(_ message: OutgoingMessage) -> OutgoingMessage {
        guard message.exchange != Topology.deadLetterExchange,
            message.properties.headers?[HeaderKey.task] != nil || message.properties.type == TaskCodec.compactType
        else {
            return message
        }
        var signed = message
        var headers = signed.properties.headers ?? [:]
        headers[Self.signatureHeader] = nil
        headers[Self.keyIDHeader] = .string(signingKey.id)
        signed.properties.headers = headers
        let code = HMACSHA256.authenticationCode(
            for: Self.canonical(signed.properties, body: signed.body, keyID: signingKey.id), key: signingKey.secret)
        headers[Self.signatureHeader] = .string(Self.hex(code))
        signed.properties.headers = headers
        return signed
    }

    /// Signs each message as ``sign(_:)-(OutgoingMessage)`` does; non-task messages are returned unchanged.
    public func sign(_ messages: [OutgoingMessage]) -> [OutgoingMessage] { messages.map(sign) }

    /// Checks a delivery's signature. Throws a rejection (label `signature`) that says what is wrong.
    public func verify(_ d: Delivery) throws(MessageRejection) {
        let headers = d.properties.headers ?? [:]
        func reject(_ reason: String) -> MessageRejection {
            var r = MessageRejection(
                reason: reason, taskID: headers[HeaderKey.id]?.stringValue ?? d.properties.correlationID,
                taskName: headers[HeaderKey.task]?.stringValue)
            r.label = "signature"
            return r
        }
        guard let signature = headers[Self.signatureHeader] else {
            if requireSignature {
                throw reject(
                    "message is not signed and this worker requires signed messages; configure the producer with the same signing keys (--signing-keys-file)"
                )
            }
            return
        }
        guard let text = signature.stringValue, let given = Self.unhex(text), given.count == 32 else {
            throw reject("header '\(Self.signatureHeader)' is not a 64-digit hex HMAC-SHA256")
        }
        guard let keyID = headers[Self.keyIDHeader]?.stringValue else {
            throw reject("signed message has no '\(Self.keyIDHeader)' header")
        }
        guard let key = keys.first(where: { $0.id == keyID }) else {
            throw reject(
                "message is signed with key id '\(keyID.prefix(64))', which this worker does not have (it has: \(keyIDs.joined(separator: ", ")))"
            )
        }
        let expected = HMACSHA256.authenticationCode(
            for: Self.canonical(d.properties, body: d.body, keyID: keyID), key: key.secret)
        guard HMACSHA256.constantTimeEqual(expected, given) else {
            throw reject(
                "signature does not match (body or headers changed after signing, or a different secret for key id '\(keyID)')"
            )
        }
    }

    /// The signed bytes: a version tag, then each part as an 8-byte big-endian length and its bytes.
    static func canonical(_ p: BasicProperties, body: [UInt8], keyID: String) -> [UInt8] {
        var out = Array("celeriac-hmac-sha256-v1".utf8)
        func part(_ bytes: some Collection<UInt8>) {
            let n = UInt64(bytes.count)
            for shift in stride(from: 56, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: n >> UInt64(shift)))
            }
            out.append(contentsOf: bytes)
        }
        part(keyID.utf8)
        part((p.contentType ?? "").utf8)
        part((p.contentEncoding ?? "").utf8)
        part((p.correlationID ?? "").utf8)
        part((p.replyTo ?? "").utf8)
        let signed = (p.headers ?? [:]).entries.filter { !$0.key.hasPrefix("x-") }.sorted {
            $0.key.utf8.lexicographicallyPrecedes($1.key.utf8)
        }
        part(String(signed.count).utf8)
        for e in signed {
            part(e.key.utf8)
            part(HeaderMapping.json(e.value).jsonBytes)
        }
        part(body)
        return out
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func unhex(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count.isMultiple(of: 2), chars.count <= 128 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        var i = 0
        while i < chars.count {
            guard let h = value(chars[i]), let l = value(chars[i + 1]) else { return nil }
            out.append(h << 4 | l)
            i += 2
        }
        return out
    }
}

extension MessageSigner {
    /// Reads a key file's text: one `ID=SECRET` per line (the secret is the rest of the line, as UTF-8 bytes),
    /// `#` comments and blank lines ignored. The first key signs. Errors name the line, never a secret.
    public init(keyFileText text: String, requireSignature: Bool = true) throws(CeleriacError) {
        var keys: [SigningKey] = []
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: " \t\r")
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let eq = line.firstIndex(of: "=") else {
                throw .configuration("signing key file, line \(number + 1): expected ID=SECRET")
            }
            let id = String(line[..<eq]).trimmingCharacters(in: " \t")
            let secret = Array(line[line.index(after: eq)...].utf8)
            do {
                keys.append(try SigningKey(id: id, secret: secret))
            } catch {
                guard case .configuration(let why) = error else { throw error }
                throw .configuration("signing key file, line \(number + 1): \(why)")
            }
        }
        guard !keys.isEmpty else { throw .configuration("signing key file has no keys (expected lines ID=SECRET)") }
        try self.init(keys: keys, requireSignature: requireSignature)
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let s = Substring(self)
        let start = s.firstIndex { !set.contains($0) } ?? s.endIndex
        let end = s.lastIndex { !set.contains($0) }.map { s.index(after: $0) } ?? start
        return start < end ? String(s[start..<end]) : ""
    }
}
