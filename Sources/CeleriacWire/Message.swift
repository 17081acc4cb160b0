/// The basic properties of a message (AMQP 0-9-1's, which kombu and Celery use on every transport). `nil` means "not set" (the flag is absent on the wire).
public struct BasicProperties: Sendable, Equatable {
    /// MIME type of the body, e.g. `application/json`; Celery picks the serializer by it.
    public var contentType: String?
    /// Encoding of the body's text, e.g. `utf-8`, or `binary`.
    public var contentEncoding: String?
    /// Application headers; Celery's protocol v2 carries the task's metadata here (`task`, `id`, `eta`, ...).
    public var headers: FieldTable?
    /// 1 = transient, 2 = persistent.
    public var deliveryMode: UInt8?
    /// Message priority, 0–255; a queue honours it up to its `x-max-priority`.
    public var priority: UInt8?
    /// Matches a reply to its request; Celery sets it to the task id.
    public var correlationID: String?
    /// Queue a reply should go to; for Celery's `rpc://` results, the client's reply queue.
    public var replyTo: String?
    /// Per-message TTL in milliseconds, as a decimal string (AMQP's own type for it).
    public var expiration: String?
    /// Application message id; Celery leaves it unset.
    public var messageID: String?
    /// Seconds since 1970.
    public var timestamp: UInt64?
    /// Application message type name; Celery leaves it unset.
    public var type: String?
    /// User the publisher connected as; RabbitMQ rejects a publish whose user id is not the connection's user.
    public var userID: String?
    /// Name of the publishing application.
    public var appID: String?

    /// Properties with the given fields set; every field defaults to nil (not sent).
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
    /// Exchange to publish to; `""` is the default exchange, which routes to the queue named by ``routingKey``.
    public var exchange: String
    /// Routing key the exchange matches against its bindings; for the default exchange, the queue name.
    public var routingKey: String
    /// The message body as raw bytes.
    public var body: [UInt8]
    /// The AMQP basic properties sent with the body.
    public var properties: BasicProperties
    /// When true, a message that matches no queue comes back as ``BrokerError/Code/unroutable``.
    public var mandatory: Bool

    /// A message for `exchange` (the default exchange unless given) and `routingKey`.
    public init(
        exchange: String = "", routingKey: String, body: [UInt8], properties: BasicProperties = .init(),
        mandatory: Bool = false
    ) {
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
    /// The connection generation the delivery came on; it increases with every reconnect.
    public let generation: UInt64
    /// The AMQP channel the delivery came on.
    public let channel: UInt16
    /// The broker's delivery tag on that channel.
    public let value: UInt64
    /// `<generation>.<channel>.<value>`.
    public var description: String { "\(generation).\(channel).\(value)" }
    /// A tag from its parts; brokers create these for their deliveries.
    public init(generation: UInt64, channel: UInt16, value: UInt64) {
        self.generation = generation
        self.channel = channel
        self.value = value
    }
}

/// A message received from a queue (copied out of librabbitmq memory by the AMQP transport).
public struct Delivery: Sendable {
    /// Identifies this delivery when acking, nacking or rejecting it.
    public let tag: DeliveryTag
    /// Tag of the consumer it was delivered to; empty for basic.get.
    public let consumerTag: String
    /// True when the broker delivered it before and it was not acked (a requeue, or a connection lost before the ack).
    public let redelivered: Bool
    /// Exchange it was published to; `""` for the default exchange.
    public let exchange: String
    /// Routing key it was published with.
    public let routingKey: String
    /// The AMQP basic properties it was published with.
    public let properties: BasicProperties
    /// The message body as raw bytes.
    public let body: [UInt8]
    /// For basic.get only: the number of messages left in the queue.
    public let messageCount: UInt32?

    /// A delivery from its parts; brokers create these.
    public init(
        tag: DeliveryTag, consumerTag: String, redelivered: Bool, exchange: String, routingKey: String,
        properties: BasicProperties, body: [UInt8], messageCount: UInt32?
    ) {
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
    /// Name of the queue; the broker's name for a server-named queue declared with an empty name.
    public let queue: String
    /// Messages ready in the queue (not counting unacked ones).
    public let messageCount: UInt32
    /// Consumers on the queue.
    public let consumerCount: UInt32

    /// An answer from its parts; brokers create these.
    public init(queue: String, messageCount: UInt32, consumerCount: UInt32) {
        self.queue = queue
        self.messageCount = messageCount
        self.consumerCount = consumerCount
    }
}
