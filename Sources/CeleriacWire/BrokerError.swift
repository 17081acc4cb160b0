/// An error from a broker connection: what failed, why, and what an operator can do about it.
///
/// Every broker behind the ports throws this one type, so the code above them handles a 404, a lost connection
/// or a nacked publish the same way whichever broker it runs on. The AMQP transport turns each failure of a
/// librabbitmq call into one of these in a single place (`AMQPError+C.swift`, where `AMQPError` is this type),
/// the way swift-nio's syscall wrapper does; the in-memory broker throws the same codes and reply codes.
///
/// ```
/// connect 127.0.0.1:5672 failed: connectionRefused. Is RabbitMQ running? Set --broker / CELERIAC_BROKER_URL
/// ```
public struct BrokerError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The kind of failure. New codes can be added without breaking the API.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidURL, connectionRefused, connectTimeout, hostNotFound, tlsFailed
            case accessRefused, vhostNotFound, connectionClosed, connectionLost, heartbeatTimeout
            case channelClosed, notConnected, timeout, publishNacked, unroutable, blocked
            case consumerCancelled, protocolError, closed
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The broker URL could not be parsed; the message names the bad part.
        public static let invalidURL = Code(.invalidURL)
        /// Nothing listens at host:port.
        public static let connectionRefused = Code(.connectionRefused)
        /// The TCP/TLS connect or the AMQP handshake took longer than `connection_timeout`.
        public static let connectTimeout = Code(.connectTimeout)
        /// The host name does not resolve.
        public static let hostNotFound = Code(.hostNotFound)
        /// The TLS handshake failed (wrong CA, wrong host name, bad client certificate).
        public static let tlsFailed = Code(.tlsFailed)
        /// The broker refused the user name or password (403 ACCESS_REFUSED).
        public static let accessRefused = Code(.accessRefused)
        /// The virtual host does not exist or the user may not use it (530 NOT_ALLOWED).
        public static let vhostNotFound = Code(.vhostNotFound)
        /// The broker closed the connection (connection.close), with its reply code and text.
        public static let connectionClosed = Code(.connectionClosed)
        /// The socket broke (broker restarted, network reset).
        public static let connectionLost = Code(.connectionLost)
        /// No frame from the broker for two heartbeat intervals (a frozen or unreachable broker).
        public static let heartbeatTimeout = Code(.heartbeatTimeout)
        /// The broker closed the channel (channel.close): 404 NOT_FOUND, 406 PRECONDITION_FAILED, ...
        public static let channelClosed = Code(.channelClosed)
        /// The connection is down and reconnecting; the call was not sent.
        public static let notConnected = Code(.notConnected)
        /// A broker operation did not complete within its deadline.
        public static let timeout = Code(.timeout)
        /// The broker refused a confirmed publish (basic.nack).
        public static let publishNacked = Code(.publishNacked)
        /// A mandatory publish matched no queue (basic.return).
        public static let unroutable = Code(.unroutable)
        /// The broker is blocking publishers (connection.blocked: memory or disk alarm).
        public static let blocked = Code(.blocked)
        /// The broker cancelled a consumer (its queue was deleted).
        public static let consumerCancelled = Code(.consumerCancelled)
        /// librabbitmq reported an unexpected frame or state.
        public static let protocolError = Code(.protocolError)
        /// The connection was closed by this process.
        public static let closed = Code(.closed)

        /// The code's name, e.g. `connectionRefused`.
        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public let code: Code
    /// The operation that failed, e.g. `connect 127.0.0.1:5672` or `queue.declare celery`.
    public let operation: String
    /// The AMQP reply code from the broker (404, 406, 403, 320, ...), when the broker sent one.
    public let replyCode: UInt16?
    /// The broker's reply text or librabbitmq's error string.
    public let reason: String?
    /// What an operator can do about it.
    public let hint: String?

    /// An error with its code and the operation that failed; the broker's reply code and text, and a hint, when known.
    public init(_ code: Code, operation: String, replyCode: UInt16? = nil, reason: String? = nil, hint: String? = nil) {
        self.code = code
        self.operation = operation
        self.replyCode = replyCode
        self.reason = reason
        self.hint = hint
    }

    /// `<operation> failed: <code> (<replyCode>): <reason>. <hint>`, leaving out the parts that are nil.
    public var description: String {
        var text = "\(operation) failed: \(code)"
        if let replyCode { text += " (\(replyCode))" }
        if let reason, !reason.isEmpty { text += ": \(reason)" }
        if let hint { text += ". \(hint)" }
        return text
    }

    /// True when the failure is about the connection rather than this one call, so that retrying after a
    /// reconnect may succeed.
    public var isConnectionLevel: Bool {
        [
            .connectionLost, .connectionClosed, .heartbeatTimeout, .notConnected, .closed, .connectTimeout,
            .connectionRefused,
        ].contains(code)
    }
}
