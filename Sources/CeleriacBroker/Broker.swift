/// A broker that Celeriac can talk to: it opens connections, each with the capabilities of the ports
/// (``MessagePublishing``, ``MessageConsuming``, ``DeliverySettling``, ``TopologyDeclaring``, ``QueueInspecting``,
/// ``BrokerLink``).
///
/// The worker, the client, beat and the coordination primitives are written against this protocol and never
/// against a transport. `CeleriacAMQP.AMQPBroker` implements it over librabbitmq (RabbitMQ); an in-memory broker
/// for tests implements the same ports, held to RabbitMQ's behaviour by one contract suite that runs on both.
///
/// The message model is Celery's own (kombu's): a body, AMQP basic properties, a header table, published to an
/// exchange with a routing key. kombu's in-memory and Redis transports emulate the same model, which is why
/// Celery's wire format, its delayed-delivery topology and its dead-letter conventions stay one code path above
/// the seam.
///
/// ```swift
/// let broker = try AMQPBroker("amqp://guest:guest@localhost:5672/%2F")   // CeleriacAMQP
/// let worker = Worker(registry: registry, configuration: .init(), broker: broker, logger: logger)
/// ```
public protocol Broker: Sendable, CustomStringConvertible {
    /// A new, not yet connected, connection. Each one is independent: its own flow control, its own consumers,
    /// its own reconnects. Call ``BrokerLink/connect()`` before use and ``BrokerLink/close()`` when done.
    func connection(_ options: ConnectionOptions) -> any BrokerConnection
    /// Where the broker is, as remote control's `stats` reports it (kombu's `connection.info()`); no password.
    var info: BrokerInfo { get }
}

/// A broker's address and settings, for `stats` replies and logs (never its password).
public struct BrokerInfo: Sendable, Equatable {
    /// kombu's transport name: `amqp`, `memory`.
    public var transport: String
    /// Broker host name or address from the URL, e.g. `localhost`.
    public var host: String
    /// Broker TCP port, e.g. 5672 (5671 with TLS).
    public var port: Int
    /// User name the connection logs in as.
    public var user: String
    /// AMQP virtual host, e.g. `/`.
    public var virtualHost: String
    /// Whether the connection uses TLS (`amqps://`).
    public var tls: Bool
    /// Seconds.
    public var connectTimeout: Double
    /// Seconds; 0 = off.
    public var heartbeat: Double

    /// Info from its parts; a ``Broker`` builds it from its URL and settings.
    public init(
        transport: String, host: String, port: Int, user: String, virtualHost: String, tls: Bool,
        connectTimeout: Double, heartbeat: Double
    ) {
        self.transport = transport
        self.host = host
        self.port = port
        self.user = user
        self.virtualHost = virtualHost
        self.tls = tls
        self.connectTimeout = connectTimeout
        self.heartbeat = heartbeat
    }
}

/// What a component asks of a connection beyond the broker's address.
public struct ConnectionOptions: Sendable, Equatable {
    /// Shown in the broker's management UI (`connection_name`) and in logs.
    public var name: String
    /// Publisher confirms: ``MessagePublishing/publish(_:settler:)`` returns only once the broker has the messages.
    public var confirms: Bool
    /// How long a publish waits while the broker blocks publishers (memory or disk alarm) before it throws
    /// `BrokerError.Code.blocked`.
    public var blockedTimeout: Duration
    /// The longest heartbeat interval, in seconds, this connection may run with (nil = the broker URL's): a
    /// connection whose loss others must notice quickly (a leader's lock) asks for a short one.
    public var maxHeartbeat: Int?

    /// Options for a connection named `name`: publisher confirms on, a 30 s wait while publishers are blocked, and the
    /// broker URL's heartbeat.
    public init(name: String, confirms: Bool = true, blockedTimeout: Duration = .seconds(30), maxHeartbeat: Int? = nil)
    {
        self.name = name
        self.confirms = confirms
        self.blockedTimeout = blockedTimeout
        self.maxHeartbeat = maxHeartbeat
    }
}

/// Every capability of one connection. Components should ask for the narrowest composition they use
/// (`any MessagePublishing & TopologyDeclaring`, say); the broker hands out whole connections.
public typealias BrokerConnection = BrokerLink & MessagePublishing & MessageConsuming & DeliverySettling
    & TopologyDeclaring & QueueInspecting
