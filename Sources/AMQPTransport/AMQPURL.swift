/// A broker address as users write it: `amqp://user:pass@host:port/vhost?heartbeat=30`.
///
/// - Scheme `amqp` (default port 5672) or `amqps` (TLS, default port 5671).
/// - User and password are percent-decoded; both default to `guest`.
/// - The path after the first `/` is the virtual host, percent-decoded: `//` and `/%2F` are the default vhost `/`,
///   an empty path is `/` too (as in Celery and kombu).
/// - Query parameters: `heartbeat` (seconds, 0 turns heartbeats off), `connection_timeout` (seconds),
///   `frame_max`, `channel_max`, and for TLS `cacertfile`, `certfile`, `keyfile`, `verify` (`verify_peer` or
///   `verify_none`).
///
/// Several brokers (the nodes of a cluster) are written as Celery writes them, separated by `;`:
/// `amqp://h1//;amqp://h2//`. The first is this URL and the others are its ``alternates``: a connection starts with
/// the first reachable one and, when it is lost, fails over to the next one round-robin.
///
/// A wrong URL gives ``AMQPError/Code/invalidURL`` naming the bad part. ``redacted`` never shows the password.
public struct AMQPURL: Sendable, Equatable, CustomStringConvertible {
    /// True for `amqps://`: the connection uses TLS.
    public var tls: Bool
    /// The broker's host name or IP address (an IPv6 address without its brackets).
    public var host: String
    /// The TCP port: 5672 by default, 5671 with TLS.
    public var port: Int
    /// The user to log in as, percent-decoded; `guest` by default.
    public var user: String
    /// The password, percent-decoded; `guest` by default. Never printed: see ``redacted``.
    public var password: String
    /// The virtual host, percent-decoded; `/` by default.
    public var vhost: String
    /// Heartbeat interval in seconds asked of the broker (`heartbeat=`, default 30); 0 turns heartbeats off.
    public var heartbeat: Int
    /// Seconds to wait for the TCP connection to open (`connection_timeout=`, default 10).
    public var connectionTimeout: Double
    /// Largest AMQP frame in bytes (`frame_max=`, default 131 072, RabbitMQ's default).
    public var frameMax: Int
    /// Most channels (`channel_max=`); 0, the default, leaves the limit to the broker.
    public var channelMax: Int
    /// PEM file of the CA certificates the broker's certificate is checked against (`cacertfile=`, TLS only).
    public var caCertFile: String?
    /// PEM client certificate for mutual TLS (`certfile=`); used together with ``keyFile``.
    public var certFile: String?
    /// PEM private key of ``certFile`` (`keyfile=`).
    public var keyFile: String?
    /// Check the broker's certificate and host name (TLS; the default). `verify=verify_none` turns it off.
    public var verifyPeer: Bool
    /// Further brokers to fail over to, in order (from `url1;url2;...`); empty for a single broker.
    public var alternates: [AMQPURL] = []

    /// Heartbeat interval in seconds when the URL gives none.
    public static let defaultHeartbeat = 30

    /// This broker followed by its alternates, each without alternates of its own: the order a connection tries.
    public var failoverOrder: [AMQPURL] {
        var first = self
        first.alternates = []
        return [first]
            + alternates.map {
                var u = $0; u.alternates = []; return u
            }
    }

    /// A single broker from its parts; a nil `port` means 5672, or 5671 with `tls`.
    public init(
        tls: Bool = false, host: String = "localhost", port: Int? = nil, user: String = "guest",
        password: String = "guest", vhost: String = "/", heartbeat: Int = AMQPURL.defaultHeartbeat,
        connectionTimeout: Double = 10, frameMax: Int = 131_072, channelMax: Int = 0,
        caCertFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, verifyPeer: Bool = true
    ) {
        self.tls = tls
        self.host = host
        self.port = port ?? (tls ? 5671 : 5672)
        self.user = user
        self.password = password
        self.vhost = vhost
        self.heartbeat = heartbeat
        self.connectionTimeout = connectionTimeout
        self.frameMax = frameMax
        self.channelMax = channelMax
        self.caCertFile = caCertFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.verifyPeer = verifyPeer
    }

    /// Parses a broker URL, or a `;`-separated list of them (the first is the primary, the rest ``alternates``).
    ///
    /// - Throws: ``AMQPError`` with code ``AMQPError/Code/invalidURL``; its reason names the part that is wrong.
    public init(_ string: String) throws(AMQPError) {
        let parts = string.split(separator: ";", omittingEmptySubsequences: false).map { part in
            String(part.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
        }
        if parts.count == 1 {
            try self.init(single: string)
            return
        }
        guard !parts.contains(where: \.isEmpty) else {
            throw AMQPError(
                .invalidURL, operation: "parse broker URL list \(AMQPURL.redact(string))",
                reason: "an empty entry between ';'",
                hint: "Separate the brokers of a cluster with ';': amqp://h1:5672//;amqp://h2:5672//")
        }
        try self.init(single: parts[0])
        var rest: [AMQPURL] = []
        for part in parts.dropFirst() { rest.append(try AMQPURL(single: part)) }
        alternates = rest
    }

    private init(single string: String) throws(AMQPError) {
        func bad(_ why: String) -> AMQPError {
            AMQPError(
                .invalidURL, operation: "parse broker URL \(AMQPURL.redact(string))", reason: why,
                hint: "Write it as amqp://user:password@host:5672/vhost (amqps:// for TLS)")
        }
        guard let schemeEnd = string.firstRange(of: "://") else { throw bad("missing scheme (amqp:// or amqps://)") }
        let scheme = string[..<schemeEnd.lowerBound].lowercased()
        switch scheme {
        case "amqp", "pyamqp", "librabbitmq": tls = false
        case "amqps": tls = true
        default:
            // Only a well-formed scheme (RFC 3986: a letter, then letters, digits, + - .) is echoed: text before
            // "://" that is not one may be a mistyped URL whose credentials come first (user:pass@host?x://...).
            let wellFormed =
                scheme.unicodeScalars.first.map { $0.isASCII && $0.properties.isAlphabetic } == true
                && scheme.unicodeScalars.allSatisfy {
                    $0.isASCII
                        && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "+-.".unicodeScalars.contains($0))
                }
            throw bad(
                wellFormed
                    ? "unsupported scheme '\(scheme)' (use amqp or amqps)"
                    : "the text before '://' is not a scheme (use amqp or amqps)")
        }
        var rest = Substring(string[schemeEnd.upperBound...])
        var query: Substring = ""
        if let q = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        var path: Substring? = nil
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var hostPort = rest
        user = "guest"
        password = "guest"
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            hostPort = rest[rest.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                guard let u = AMQPURL.percentDecode(userInfo[..<colon]) else {
                    throw bad("bad percent-encoding in user name")
                }
                guard let p = AMQPURL.percentDecode(userInfo[userInfo.index(after: colon)...]) else {
                    throw bad("bad percent-encoding in password")
                }
                user = u
                password = p
            } else {
                guard let u = AMQPURL.percentDecode(userInfo) else { throw bad("bad percent-encoding in user name") }
                user = u
            }
        }
        var hostPart = hostPort
        var portPart: Substring? = nil
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { throw bad("unclosed '[' in IPv6 host") }
            hostPart = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            let after = hostPort[hostPort.index(after: close)...]
            if after.hasPrefix(":") {
                portPart = after.dropFirst()
            } else if !after.isEmpty {
                throw bad("junk after IPv6 host")
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            hostPart = hostPort[..<colon]
            portPart = hostPort[hostPort.index(after: colon)...]
        }
        host = hostPart.isEmpty ? "localhost" : String(hostPart)
        // A host name, an IPv4 address, or (in brackets) an IPv6 address with an optional zone. Anything else
        // (found by the URL fuzzer: `h:x]:5672`) would make a URL whose redacted form names another host.
        let bracketed = hostPort.hasPrefix("[")
        guard !bracketed || host.contains(":"),
            host.unicodeScalars.allSatisfy({ c in
                c.isASCII
                    && (c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "-" || c == "." || c == "_"
                        || (bracketed && (c == ":" || c == "%")))
            })
        else {
            throw bad(
                bracketed
                    ? "'\(host)' is not an IPv6 address"
                    : "host '\(host)' may hold only letters, digits, '-', '.' and '_' (IPv6 addresses go in brackets)")
        }
        if let portPart {
            guard let p = Int(portPart), (1...65535).contains(p) else {
                throw bad("port '\(portPart)' is not a number in 1...65535")
            }
            port = p
        } else {
            port = tls ? 5671 : 5672
        }
        if let path, !path.isEmpty {
            guard let v = AMQPURL.percentDecode(path) else {
                throw bad("bad percent-encoding in virtual host '\(path)'")
            }
            vhost = v
        } else {
            vhost = "/"
        }
        heartbeat = AMQPURL.defaultHeartbeat
        connectionTimeout = 10
        frameMax = 131_072
        channelMax = 0
        caCertFile = nil
        certFile = nil
        keyFile = nil
        verifyPeer = true
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(kv[0])
            guard kv.count == 2, let value = AMQPURL.percentDecode(kv[1]) else {
                throw bad("query parameter '\(key)' has no value")
            }
            switch key {
            case "heartbeat":
                guard let v = Double(value), v >= 0, v < 65536 else {
                    throw bad("heartbeat '\(value)' is not a number of seconds")
                }
                heartbeat = Int(v.rounded(.up))
            case "connection_timeout", "connect_timeout":
                guard let v = Double(value), v > 0 else {
                    throw bad("connection_timeout '\(value)' is not a positive number of seconds")
                }
                connectionTimeout = v >= 1000 ? v / 1000 : v  // RabbitMQ's URI spec writes milliseconds
            case "frame_max":
                guard let v = Int(value), v >= 4096 else {
                    throw bad("frame_max '\(value)' must be an integer >= 4096")
                }
                frameMax = v
            case "channel_max":
                guard let v = Int(value), v >= 0 else {
                    throw bad("channel_max '\(value)' must be a non-negative integer")
                }
                channelMax = v
            case "cacertfile": caCertFile = value
            case "certfile": certFile = value
            case "keyfile": keyFile = value
            case "verify":
                switch value {
                case "verify_peer": verifyPeer = true
                case "verify_none": verifyPeer = false
                default: throw bad("verify '\(value)' must be verify_peer or verify_none")
                }
            default:
                throw bad(
                    "unknown query parameter '\(key)' (known: heartbeat, connection_timeout, frame_max, channel_max, cacertfile, certfile, keyfile, verify)"
                )
            }
        }
        if !tls, caCertFile != nil || certFile != nil || keyFile != nil {
            throw bad("TLS options given with amqp://; use amqps://")
        }
    }

    /// The URL with the password replaced by `***`, safe for logs, metrics and error messages.
    public var redacted: String {
        ([self] + alternates).map(\.redactedSingle).joined(separator: ";")
    }

    private var redactedSingle: String {
        let scheme = tls ? "amqps" : "amqp"
        let hostText = host.contains(":") ? "[\(host)]" : host
        return "\(scheme)://\(AMQPURL.percentEncode(user)):***@\(hostText):\(port)/\(AMQPURL.percentEncode(vhost))"
    }

    /// The ``redacted`` form: the password shows as `***`.
    public var description: String { redacted }

    /// `host:port`, as it appears in error messages.
    public var endpoint: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Redacts the password of a URL string without parsing it fully (for URLs that failed to parse).
    public static func redact(_ string: String) -> String {
        if string.contains(";") {
            return string.split(separator: ";", omittingEmptySubsequences: false).map { redact(String($0)) }.joined(
                separator: ";")
        }
        guard let schemeEnd = string.firstRange(of: "://") else { return string }
        let afterScheme = string[schemeEnd.upperBound...]
        let authorityEnd = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? afterScheme.endIndex
        let authority = afterScheme[..<authorityEnd]
        guard let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") else {
            return string
        }
        return String(string[..<afterScheme.startIndex]) + authority[..<colon] + ":***" + string[at...]
    }

    static func percentDecode(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var it = text.utf8.makeIterator()
        while let b = it.next() {
            if b == UInt8(ascii: "%") {
                guard let h = it.next(), let l = it.next(), let hv = hexValue(h), let lv = hexValue(l) else {
                    return nil
                }
                bytes.append(hv << 4 | lv)
            } else {
                bytes.append(b)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    static func percentEncode(_ text: String) -> String {
        var out = ""
        for b in text.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let hex = String(b, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
