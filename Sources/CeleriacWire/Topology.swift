/// An exchange to declare. Declarations are remembered by the connection and replayed after a reconnect.
public struct ExchangeSpec: Sendable, Hashable {
    /// AMQP exchange type: `direct` routes by exact routing key (Celery's default), `topic` by dotted patterns with `*`
    /// and `#`, `fanout` to every bound queue, `headers` by header values.
    public enum Kind: String, Sendable { case direct, topic, fanout, headers }
    /// Exchange name, e.g. `celery`.
    public var name: String
    /// Exchange type; see ``Kind``.
    public var kind: Kind
    /// Whether the exchange survives a broker restart.
    public var durable: Bool
    /// Whether the broker deletes the exchange once its last binding is removed.
    public var autoDelete: Bool
    /// Whether the exchange takes messages only from other exchanges, never from publishers.
    public var `internal`: Bool
    /// Extra `exchange.declare` arguments, e.g. `alternate-exchange`.
    public var arguments: FieldTable

    /// An exchange spec; by default a durable `direct` exchange, as Celery declares its own.
    public init(
        _ name: String, kind: Kind = .direct, durable: Bool = true, autoDelete: Bool = false,
        internal: Bool = false, arguments: FieldTable = [:]
    ) {
        self.name = name
        self.kind = kind
        self.durable = durable
        self.autoDelete = autoDelete
        self.internal = `internal`
        self.arguments = arguments
    }
}

/// A queue to declare. Common arguments have helpers: `maxPriority`, `messageTTL`, `deadLetterExchange`,
/// `expires`, `quorum`, `singleActiveConsumer`.
public struct QueueSpec: Sendable, Hashable {
    /// Queue name, e.g. `celery`; for Celery, also the routing key of the queue's binding.
    public var name: String
    /// Whether the queue (not its messages: that is the delivery mode) survives a broker restart.
    public var durable: Bool
    /// Whether only the declaring connection may use the queue; the broker deletes it when that connection closes.
    public var exclusive: Bool
    /// Whether the broker deletes the queue once its last consumer is cancelled.
    public var autoDelete: Bool
    /// `queue.declare` arguments (`x-max-priority`, `x-queue-type`, ...); the helpers below set the common ones.
    public var arguments: FieldTable

    /// A queue spec; by default durable, not exclusive, not auto-deleted, as Celery declares its task queues.
    public init(
        _ name: String, durable: Bool = true, exclusive: Bool = false, autoDelete: Bool = false,
        arguments: FieldTable = [:]
    ) {
        self.name = name
        self.durable = durable
        self.exclusive = exclusive
        self.autoDelete = autoDelete
        self.arguments = arguments
    }

    /// A copy with the `queue.declare` argument `key` set to `value` (replacing an earlier value).
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
    /// Queue that receives the matched messages.
    public var queue: String
    /// Exchange whose messages are matched.
    public var exchange: String
    /// Routing key (or, for a topic exchange, pattern) to match.
    public var routingKey: String
    /// Extra `queue.bind` arguments, e.g. the match headers of a `headers` exchange.
    public var arguments: FieldTable
    /// A binding of `queue` to `exchange` for `routingKey`.
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
    /// Exchange that receives the matched messages.
    public var destination: String
    /// Exchange whose messages are matched.
    public var source: String
    /// Routing key (or, for a topic source, pattern) to match.
    public var routingKey: String
    /// Extra `exchange.bind` arguments.
    public var arguments: FieldTable
    /// A binding that forwards `source`'s messages matching `routingKey` to `destination`.
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
    /// The broker stopped blocking publishers; publishes flow again.
    case unblocked
    /// The broker cancelled a consumer (e.g. its queue was deleted).
    case consumerCancelled(tag: String)
    /// The connection was closed by this process.
    case closed
}
