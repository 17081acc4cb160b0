/// An exchange to declare. Declarations are remembered by the connection and replayed after a reconnect.
public struct ExchangeSpec: Sendable, Hashable {
    public enum Kind: String, Sendable { case direct, topic, fanout, headers }
    public var name: String
    public var kind: Kind
    public var durable: Bool
    public var autoDelete: Bool
    public var `internal`: Bool
    public var arguments: FieldTable

    public init(_ name: String, kind: Kind = .direct, durable: Bool = true, autoDelete: Bool = false,
                internal: Bool = false, arguments: FieldTable = [:]) {
        self.name = name
        self.kind = kind
        self.durable = durable
        self.autoDelete = autoDelete
        self.internal = `internal`
        self.arguments = arguments
    }
}

/// A queue to declare. Common arguments have helpers: ``maxPriority``, ``messageTTL``, ``deadLetterExchange``,
/// ``expires``, ``quorum``, ``singleActiveConsumer``.
public struct QueueSpec: Sendable, Hashable {
    public var name: String
    public var durable: Bool
    public var exclusive: Bool
    public var autoDelete: Bool
    public var arguments: FieldTable

    public init(_ name: String, durable: Bool = true, exclusive: Bool = false, autoDelete: Bool = false, arguments: FieldTable = [:]) {
        self.name = name
        self.durable = durable
        self.exclusive = exclusive
        self.autoDelete = autoDelete
        self.arguments = arguments
    }

    public func with(_ key: String, _ value: FieldValue) -> QueueSpec {
        var copy = self
        copy.arguments[key] = value
        return copy
    }
    /// `x-max-priority`: messages carry priority 0...n.
    public func maxPriority(_ n: Int) -> QueueSpec { with("x-max-priority", .int(n)) }
    /// `x-message-ttl` in milliseconds.
    public func messageTTL(milliseconds: Int) -> QueueSpec { with("x-message-ttl", .int(milliseconds)) }
    /// `x-dead-letter-exchange` (and optionally `x-dead-letter-routing-key`).
    public func deadLetterExchange(_ exchange: String, routingKey: String? = nil) -> QueueSpec {
        var copy = with("x-dead-letter-exchange", .string(exchange))
        if let routingKey { copy = copy.with("x-dead-letter-routing-key", .string(routingKey)) }
        return copy
    }
    /// `x-expires`: the queue is deleted after this long unused.
    public func expires(milliseconds: Int) -> QueueSpec { with("x-expires", .int(milliseconds)) }
    /// `x-queue-type: quorum`.
    public func quorum() -> QueueSpec { with("x-queue-type", .string("quorum")) }
    /// `x-single-active-consumer: true`.
    public func singleActiveConsumer() -> QueueSpec { with("x-single-active-consumer", .bool(true)) }
}

/// A queue-to-exchange binding.
public struct BindingSpec: Sendable, Hashable {
    public var queue: String
    public var exchange: String
    public var routingKey: String
    public var arguments: FieldTable
    public init(queue: String, exchange: String, routingKey: String, arguments: FieldTable = [:]) {
        self.queue = queue
        self.exchange = exchange
        self.routingKey = routingKey
        self.arguments = arguments
    }
}

/// An exchange-to-exchange binding: messages published to `source` that match `routingKey` also go to
/// `destination`.
public struct ExchangeBindingSpec: Sendable, Hashable {
    public var destination: String
    public var source: String
    public var routingKey: String
    public var arguments: FieldTable
    public init(destination: String, source: String, routingKey: String, arguments: FieldTable = [:]) {
        self.destination = destination
        self.source = source
        self.routingKey = routingKey
        self.arguments = arguments
    }
}

/// What happens on a connection, for supervisors and readiness checks.
public enum ConnectionEvent: Sendable, Equatable {
    /// Connected (the first time, or again after a loss); `generation` counts connections.
    case connected(generation: UInt64)
    /// The connection was lost; a reconnect follows with backoff.
    case disconnected(BrokerError)
    /// The broker blocks publishers (memory or disk alarm), with its reason.
    case blocked(String)
    case unblocked
    /// The broker cancelled a consumer (e.g. its queue was deleted).
    case consumerCancelled(tag: String)
    /// The connection was closed by this process.
    case closed
}
