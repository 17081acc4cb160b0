import AMQPTransport
import CeleriacBroker

/// RabbitMQ (AMQP 0-9-1 through librabbitmq) behind the broker ports: the one place that turns a broker URL into
/// connections for the worker, the client, beat and the coordination primitives.
///
/// ```swift
/// let broker = try AMQPBroker("amqp://guest:guest@localhost:5672/%2F")
/// let client = CeleriacClient(broker: broker)
/// let worker = Worker(registry: registry, configuration: .init(), broker: broker, logger: logger)
/// ```
///
/// Each ``connection(_:)`` is an `AMQPConnection`: its own OS thread, its own reconnects with backoff across the
/// URL's failover hosts, its declarations and consumers replayed after a loss.
public struct AMQPBroker: Broker {
    /// The broker's URL (with failover hosts, TLS and heartbeat settings).
    public let url: AMQPURL

    /// A broker at `url`.
    public init(url: AMQPURL) {
        self.url = url
    }

    /// A broker at a URL such as `amqp://user:pass@host:5672/vhost` or `amqps://…`.
    ///
    /// - Throws: `BrokerError` `invalidURL` naming the bad part (never echoing the password).
    public init(_ url: String) throws(BrokerError) {
        self.url = try AMQPURL(url)
    }

    /// A new AMQP connection with `options`; connect it before use.
    public func connection(_ options: ConnectionOptions) -> any BrokerConnection {
        var url = self.url
        if let limit = options.maxHeartbeat, url.heartbeat == 0 || url.heartbeat > limit { url.heartbeat = limit }
        return AMQPConnection(
            url: url,
            options: .init(
                name: options.name, confirms: options.confirms,
                blockedTimeout: options.blockedTimeout))
    }

    /// The URL's host, port, user and vhost (kombu's `connection.info()` for `stats`).
    public var info: BrokerInfo {
        BrokerInfo(
            transport: "amqp", host: url.host, port: url.port, user: url.user, virtualHost: url.vhost, tls: url.tls,
            connectTimeout: url.connectionTimeout, heartbeat: Double(url.heartbeat))
    }

    /// The URL without its password.
    public var description: String { url.redacted }
}

/// The transport's connection already has every port's operation under the same name; these conformances only
/// state it (so ports add no call of their own on the hot path).
extension AMQPConnection: BrokerLink, MessagePublishing, MessageConsuming,
    DeliverySettling, TopologyDeclaring, QueueInspecting
{
    /// The connection's own thread (it is a `TaskExecutor`).
    public var preferredExecutor: (any TaskExecutor)? { self }
}
