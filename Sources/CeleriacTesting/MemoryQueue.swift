import CeleriacBroker

/// One message as the in-memory broker holds it.
struct MemoryMessage: Sendable {
    var exchange: String
    var routingKey: String
    var properties: BasicProperties
    var body: [UInt8]
    var redelivered = false
    /// Publish order (requeued messages go back to their place by it).
    var sequence: UInt64
    /// When it entered its current queue (monotonic), and when it expires there (queue TTL or `expiration`).
    var enqueuedAt: Duration = .zero
    var expiresAt: Duration?

    var priority: Int { Int(properties.priority ?? 0) }
}

/// A queue's declaration and contents, with RabbitMQ's argument semantics.
struct MemoryQueue: Sendable {
    let name: String
    let spec: QueueSpec
    /// The connection that owns an exclusive queue.
    let owner: Int?
    var ready: [MemoryMessage] = []
    /// A stream's log (`x-queue-type: stream`): consumers read it from an offset and nothing is removed by acks.
    var log: [MemoryMessage] = []
    var consumers: [String] = []
    var nextConsumer = 0
    var hadConsumer = false
    var lastUsed: Duration

    init(spec: QueueSpec, owner: Int?, now: Duration) {
        self.name = spec.name
        self.spec = spec
        self.owner = owner
        self.lastUsed = now
    }

    var isStream: Bool { spec.arguments["x-queue-type"]?.stringValue == "stream" }
    var ttl: Duration? { spec.arguments["x-message-ttl"]?.intValue.map { .milliseconds($0) } }
    var expires: Duration? { spec.arguments["x-expires"]?.intValue.map { .milliseconds($0) } }
    var maxLength: Int? { spec.arguments["x-max-length"]?.intValue.map { Int($0) } }
    var rejectsWhenFull: Bool { spec.arguments["x-overflow"]?.stringValue == "reject-publish" }
    var maxPriority: Int? { spec.arguments["x-max-priority"]?.intValue.map { Int($0) } }
    var deadLetterExchange: String? { spec.arguments["x-dead-letter-exchange"]?.stringValue }
    var deadLetterRoutingKey: String? { spec.arguments["x-dead-letter-routing-key"]?.stringValue }

    /// Inserts a ready message by priority (when the queue has priorities), then by publish order for requeues,
    /// else at the tail.
    mutating func insert(_ message: MemoryMessage, requeued: Bool) {
        let cap = maxPriority ?? 0
        func rank(_ m: MemoryMessage) -> Int { maxPriority == nil ? 0 : min(m.priority, cap) }
        let p = rank(message)
        if requeued {
            let index =
                ready.firstIndex { rank($0) < p || (rank($0) == p && $0.sequence > message.sequence) } ?? ready.endIndex
            ready.insert(message, at: index)
        } else if maxPriority != nil {
            let index = ready.firstIndex { rank($0) < p } ?? ready.endIndex
            ready.insert(message, at: index)
        } else {
            ready.append(message)
        }
    }

    /// RabbitMQ compares these arguments when a queue is declared again; a difference is a 406.
    static let equivalenceKeys = [
        "x-message-ttl", "x-expires", "x-max-length", "x-max-length-bytes", "x-overflow",
        "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-max-priority", "x-queue-type",
        "x-single-active-consumer", "x-dead-letter-strategy",
    ]

    /// The first argument that differs from `other`'s, if any (integer kinds compare by value).
    func inequivalence(with other: QueueSpec) -> String? {
        if spec.durable != other.durable { return "durable" }
        if spec.autoDelete != other.autoDelete { return "auto_delete" }
        for key in Self.equivalenceKeys {
            let mine = Self.normalized(spec.arguments[key], key: key)
            let theirs = Self.normalized(other.arguments[key], key: key)
            if mine != theirs { return key }
        }
        return nil
    }

    private static func normalized(_ value: FieldValue?, key: String) -> String? {
        guard let value else { return key == "x-queue-type" ? "classic" : nil }
        if let i = value.intValue { return "i\(i)" }
        if let s = value.stringValue { return "s\(s)" }
        if let b = value.boolValue { return "b\(b)" }
        return "\(value)"
    }
}

/// An exchange and its bindings.
struct MemoryExchange: Sendable {
    enum Destination: Hashable, Sendable {
        case queue(String)
        case exchange(String)
    }
    struct Binding: Hashable, Sendable {
        let destination: Destination
        let key: String
    }
    let spec: ExchangeSpec
    var bindings: [Binding] = []

    func routes(_ key: String) -> [Destination] {
        switch spec.kind {
        case .fanout: return bindings.map(\.destination)
        case .direct: return bindings.filter { $0.key == key }.map(\.destination)
        case .topic: return bindings.filter { TopicPattern.matches($0.key, key) }.map(\.destination)
        case .headers: return []
        }
    }
}
