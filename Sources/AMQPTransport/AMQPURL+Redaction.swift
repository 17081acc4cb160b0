/// `dump(url)`, `debugPrint` and reflection-based printing (a crash report of a configuration struct, a test
/// failure message) show the same redacted form as ``AMQPURL/redacted``: the password is never printed.
extension AMQPURL: CustomDebugStringConvertible, CustomReflectable {
    /// The ``AMQPURL/redacted`` form: the password shows as `***`.
    public var debugDescription: String { redacted }

    /// The URL's fields, with the password as `***`.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "tls": tls, "host": host, "port": port, "user": user, "password": "***", "vhost": vhost,
                "heartbeat": heartbeat, "connectionTimeout": connectionTimeout, "caCertFile": caCertFile as Any,
                "certFile": certFile as Any, "keyFile": keyFile as Any, "verifyPeer": verifyPeer,
            ], displayStyle: .struct)
    }
}
