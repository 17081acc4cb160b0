import CeleriacBroker
import Synchronization

/// One connection to an ``InMemoryBroker``, with every port's operation.
///
/// Settles are immediate and publishes are confirmed as they are routed. Closing it does what closing a RabbitMQ
/// connection does: its consumers end, its unsettled deliveries go back (redelivered), its exclusive queues go.
final class InMemoryConnection: BrokerConnection {
    private let broker: InMemoryBroker
    private let options: ConnectionOptions
    private let id: Mutex<Int?> = Mutex(nil)

    init(broker: InMemoryBroker, options: ConnectionOptions) {
        self.broker = broker
        self.options = options
    }

    private func connectionID(_ operation: String) throws(BrokerError) -> Int {
        guard let id = id.withLock({ $0 }) else {
            throw BrokerError(.notConnected, operation: operation, hint: "call connect() first")
        }
        return id
    }

    // MARK: BrokerLink

    func connect() async throws(BrokerError) {
        let made = id.withLock { current -> Int? in
            if current != nil { return nil }
            let new = broker.state.withLock { $0.openConnection() }
            current = new
            return new
        }
        if let made {
            let pending = pendingSinks.withLock { sinks -> [AsyncStream<ConnectionEvent>.Continuation] in
                defer { sinks = [] }
                return sinks
            }
            let sinks = broker.state.withLock { s -> [AsyncStream<ConnectionEvent>.Continuation] in
                for sink in pending { s.addEventSink(made, sink) }
                return s.connections[made]?.events ?? []
            }
            for sink in sinks { sink.yield(.connected(generation: MemoryBrokerState.generation)) }
        }
    }

    func close() async {
        guard let id = id.withLock({ $0 }) else { return }
        _ = try? broker.mutate { s, now, outbox throws(BrokerError) in s.close(id, now: now, outbox: &outbox) }
    }

    var isConnected: Bool {
        guard let id = id.withLock({ $0 }) else { return false }
        return broker.state.withLock { $0.connections[id]?.open == true }
    }

    var isBlocked: Bool { broker.state.withLock { $0.blockedReason != nil } }

    func events() -> AsyncStream<ConnectionEvent> {
        let (stream, sink) = AsyncStream<ConnectionEvent>.makeStream(bufferingPolicy: .unbounded)
        if let id = id.withLock({ $0 }) {
            broker.state.withLock { $0.addEventSink(id, sink) }
        } else {
            // Not connected yet: the sink is attached when the connection opens.
            pendingSinks.withLock { $0.append(sink) }
        }
        return stream
    }
    private let pendingSinks = Mutex<[AsyncStream<ConnectionEvent>.Continuation]>([])

    func waitUntilConnected(timeout: Duration) async -> Bool { isConnected }

    var preferredExecutor: (any TaskExecutor)? { nil }

    // MARK: MessagePublishing

    func publish(_ messages: [OutgoingMessage], settler: PublishSettler?) async throws(BrokerError) {
        let operation = "basic.publish"
        let id = try connectionID(operation)
        if isBlocked { try await waitWhileBlocked(operation) }
        for message in messages {
            let outcome = try broker.mutate { s, now, outbox throws(BrokerError) in
                try s.publish(message, connection: id, now: now, outbox: &outbox)
            }
            if case .rejected(let queue) = outcome, options.confirms {
                throw BrokerError(
                    .publishNacked, operation: "\(operation) \(message.routingKey)",
                    reason: "queue '\(queue)' is full and rejects publishes (x-overflow reject-publish)")
            }
        }
    }

    func publishInBackground(_ message: OutgoingMessage) {
        guard let id = id.withLock({ $0 }), !isBlocked else { return }
        _ = try? broker.mutate { s, now, outbox throws(BrokerError) in
            try s.publish(message, connection: id, now: now, outbox: &outbox)
        }
    }

    /// Waits for the block to lift, at most `blockedTimeout` of real time (a connection's I/O bound, as the AMQP
    /// transport's, not a time that tasks see).
    private func waitWhileBlocked(_ operation: String) async throws(BrokerError) {
        let events = self.events()
        let timeout = options.blockedTimeout
        let lifted: Bool = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for await event in events where event == .unblocked || event == .closed { return event == .unblocked }
                return false
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        if !lifted || isBlocked {
            throw BrokerError(
                .blocked, operation: operation, reason: "the broker blocks publishers",
                hint: "the broker raised a memory or disk alarm; free resources on the broker or consume faster")
        }
    }

    // MARK: MessageConsuming

    func consume(
        queue: String, prefetch: UInt16, tag: String?, noAck: Bool, exclusive: Bool,
        arguments: FieldTable
    ) async throws(BrokerError) -> Consumer {
        let id = try connectionID("basic.consume \(queue)")
        let tag = tag ?? "celeriac-\(queue)-\(UInt32.random(in: 0...UInt32.max))"
        let channel = UnboundedChannel<Delivery>()
        try broker.mutate { s, now, outbox throws(BrokerError) in
            try s.consume(
                queue: queue, tag: tag, prefetch: Int(prefetch), noAck: noAck, exclusive: exclusive,
                arguments: arguments,
                channel: channel, connection: id, now: now, outbox: &outbox)
        }
        return Consumer(tag: tag, queue: queue, deliveries: channel.stream)
    }

    func cancel(_ consumer: Consumer) async throws(BrokerError) {
        let id = try connectionID("basic.cancel \(consumer.tag)")
        try broker.mutate { s, now, outbox throws(BrokerError) in
            try s.cancel(consumer.tag, connection: id, now: now, outbox: &outbox)
        }
    }

    // MARK: DeliverySettling

    private func settle(_ tag: DeliveryTag, multiple: Bool, _ how: MemoryBrokerState.Settlement) -> Bool {
        guard let id = id.withLock({ $0 }) else { return false }
        return
            (try? broker.mutate { s, now, outbox throws(BrokerError) in
                s.settle(tag, multiple: multiple, how: how, connection: id, now: now, outbox: &outbox)
            }) ?? false
    }

    @discardableResult
    func ack(_ tag: DeliveryTag, multiple: Bool) async -> Bool { settle(tag, multiple: multiple, .ack) }

    @discardableResult
    func nack(_ tag: DeliveryTag, multiple: Bool, requeue: Bool) async -> Bool {
        settle(tag, multiple: multiple, requeue ? .requeue : .discard)
    }

    @discardableResult
    func reject(_ tag: DeliveryTag, requeue: Bool) async -> Bool {
        settle(tag, multiple: false, requeue ? .requeue : .discard)
    }

    func ackInBackground(_ tag: DeliveryTag, multiple: Bool) { _ = settle(tag, multiple: multiple, .ack) }

    // MARK: TopologyDeclaring

    func declare(_ exchange: ExchangeSpec) async throws(BrokerError) {
        let id = try connectionID("exchange.declare \(exchange.name)")
        try broker.mutate { s, _, _ throws(BrokerError) in try s.declare(exchange, connection: id) }
    }

    @discardableResult
    func declare(_ queue: QueueSpec, recreateAfterReconnect: Bool) async throws(BrokerError) -> QueueDeclareOK {
        let id = try connectionID("queue.declare \(queue.name)")
        return try broker.mutate { s, now, _ throws(BrokerError) in try s.declare(queue, connection: id, now: now) }
    }

    func bind(_ binding: BindingSpec) async throws(BrokerError) {
        let id = try connectionID("queue.bind \(binding.queue)")
        try broker.mutate { s, now, outbox throws(BrokerError) in
            try s.bind(binding, connection: id)
            s.dispatch(binding.queue, now: now, outbox: &outbox)
        }
    }

    func bind(_ binding: ExchangeBindingSpec) async throws(BrokerError) {
        let id = try connectionID("exchange.bind \(binding.destination)")
        try broker.mutate { s, _, _ throws(BrokerError) in try s.bind(binding, connection: id) }
    }

    @discardableResult
    func deleteQueue(_ name: String, ifUnused: Bool, ifEmpty: Bool) async throws(BrokerError) -> UInt32 {
        let id = try connectionID("queue.delete \(name)")
        return try broker.mutate { s, _, outbox throws(BrokerError) in
            try s.deleteQueue(name, ifUnused: ifUnused, ifEmpty: ifEmpty, connection: id, outbox: &outbox)
        }
    }

    func deleteExchange(_ name: String) async throws(BrokerError) {
        let id = try connectionID("exchange.delete \(name)")
        try broker.mutate { s, _, _ throws(BrokerError) in try s.deleteExchange(name, connection: id) }
    }

    @discardableResult
    func purge(queue name: String) async throws(BrokerError) -> UInt32 {
        let id = try connectionID("queue.purge \(name)")
        return try broker.mutate { s, _, _ throws(BrokerError) in try s.purge(name, connection: id) }
    }

    // MARK: QueueInspecting

    func inspect(queue name: String) async throws(BrokerError) -> QueueDeclareOK {
        let id = try connectionID("queue.declare \(name)")
        return try broker.mutate { s, now, _ throws(BrokerError) in try s.inspect(name, connection: id, now: now) }
    }

    func get(queue: String, noAck: Bool) async throws(BrokerError) -> Delivery? {
        let id = try connectionID("basic.get \(queue)")
        return try broker.mutate { s, now, outbox throws(BrokerError) in
            try s.get(queue: queue, noAck: noAck, connection: id, now: now, outbox: &outbox)
        }
    }
}
