/// The basic properties of a message (AMQP 0-9-1's, which kombu and Celery use on every transport). `nil` means "not set" (the flag is absent on the wire).
public struct BasicProperties: Sendable, Equatable {
    public var contentType: String?
    public var contentEncoding: String?
    public var headers: FieldTable?
    /// 1 = transient, 2 = persistent.
    public var deliveryMode: UInt8?
    public var priority: UInt8?
    public var correlationID: String?
    public var replyTo: String?
    /// Per-message TTL in milliseconds, as a decimal string (AMQP's own type for it).
    public var expiration: String?
    public var messageID: String?
    /// Seconds since 1970.
    public var timestamp: UInt64?
    public var type: String?
    public var userID: String?
    public var appID: String?

    public init(
        contentType: String? = nil, contentEncoding: String? = nil, headers: FieldTable? = nil,
        deliveryMode: UInt8? = nil, priority: UInt8? = nil, correlationID: String? = nil, replyTo: String? = nil,
        expiration: String? = nil, messageID: String? = nil, timestamp: UInt64? = nil, type: String? = nil,
        userID: String? = nil, appID: String? = nil
    ) {
        self.contentType = contentType
        self.contentEncoding = contentEncoding
        self.headers = headers
        self.deliveryMode = deliveryMode
        self.priority = priority
        self.correlationID = correlationID
        self.replyTo = replyTo
        self.expiration = expiration
        self.messageID = messageID
        self.timestamp = timestamp
        self.type = type
        self.userID = userID
        self.appID = appID
    }
}

/// A message to publish.
public struct OutgoingMessage: Sendable {
    public var exchange: String
    public var routingKey: String
    public var body: [UInt8]
    public var properties: BasicProperties
    /// When true, a message that matches no queue comes back as ``BrokerError/Code/unroutable``.
    public var mandatory: Bool

    public init(exchange: String = "", routingKey: String, body: [UInt8], properties: BasicProperties = .init(), mandatory: Bool = false) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.body = body
        self.properties = properties
        self.mandatory = mandatory
    }
}

/// Identifies one delivery for ack/nack/reject. It remembers the connection generation and channel it came on,
/// so an ack for a delivery from before a reconnect is dropped (the broker has already requeued it).
public struct DeliveryTag: Sendable, Hashable, CustomStringConvertible {
    public let generation: UInt64
    public let channel: UInt16
    public let value: UInt64
    public var description: String { "\(generation).\(channel).\(value)" }
    public init(generation: UInt64, channel: UInt16, value: UInt64) {
        self.generation = generation
        self.channel = channel
        self.value = value
    }
}

/// A message received from a queue (copied out of librabbitmq memory by the AMQP transport).
public struct Delivery: Sendable {
    public let tag: DeliveryTag
    public let consumerTag: String
    public let redelivered: Bool
    public let exchange: String
    public let routingKey: String
    public let properties: BasicProperties
    public let body: [UInt8]
    /// For basic.get only: the number of messages left in the queue.
    public let messageCount: UInt32?

    public init(tag: DeliveryTag, consumerTag: String, redelivered: Bool, exchange: String, routingKey: String,
                properties: BasicProperties, body: [UInt8], messageCount: UInt32?) {
        self.tag = tag
        self.consumerTag = consumerTag
        self.redelivered = redelivered
        self.exchange = exchange
        self.routingKey = routingKey
        self.properties = properties
        self.body = body
        self.messageCount = messageCount
    }
}

/// The broker's answer to queue.declare.
public struct QueueDeclareOK: Sendable, Equatable {
    public let queue: String
    public let messageCount: UInt32
    public let consumerCount: UInt32

    public init(queue: String, messageCount: UInt32, consumerCount: UInt32) {
        self.queue = queue
        self.messageCount = messageCount
        self.consumerCount = consumerCount
    }
}
