import Synchronization

#if canImport(Glibc)
    import Glibc
#endif
/// One AMQP 0-9-1 connection to RabbitMQ, on an OS thread of its own, with an async, Sendable API.
///
/// librabbitmq connections are not thread-safe and answer heartbeats only while called into, so each
/// `AMQPConnection` owns a dedicated thread that runs every librabbitmq call, polls the socket between calls and
/// never blocks the Swift cooperative pool. After the first ``connect()``, a lost connection is detected (socket
/// error, connection.close, or no frame for two heartbeat intervals) and re-established with capped exponential
/// backoff and jitter; every declaration and consumer is replayed. Calls in flight at the loss fail with a typed
/// ``AMQPError``; they never hang.
///
/// ```swift
/// let connection = AMQPConnection(url: try AMQPURL("amqp://guest:guest@localhost:5672/%2F"))
/// try await connection.connect()
/// try await connection.declare(QueueSpec("jobs"))
/// try await connection.publish(OutgoingMessage(routingKey: "jobs", body: Array("hi".utf8)))
/// let consumer = try await connection.consume(queue: "jobs", prefetch: 10)
/// for await delivery in consumer.deliveries { await connection.ack(delivery.tag) }
/// ```
public final class AMQPConnection: Sendable {
    /// Behaviour of a connection beyond its URL.
    public struct Options: Sendable {
        /// Shown in the broker's management UI (`connection_name`).
        public var name: String
        /// Put the publishing channel in confirm mode; ``publish(_:)`` then returns only once the broker has the
        /// message.
        public var confirms: Bool
        /// Deadline for each broker RPC (declare, bind, ...); the connection is dropped and re-made after it.
        public var rpcTimeout: Int
        /// First reconnect delay and its cap.
        public var reconnectBase: Duration
        /// The longest delay between reconnect attempts; the delay grows from ``reconnectBase`` up to it, with jitter.
        public var reconnectCap: Duration
        /// How long a publish waits while the broker blocks publishers (connection.blocked) before it throws
        /// ``AMQPError/Code/blocked``.
        public var blockedTimeout: Duration

        /// Options with the defaults: name `celeriac`, confirms on, 30 s per RPC, reconnect delays from 100 ms to 5 s,
        /// and 30 s of waiting while the broker blocks publishers.
        public init(
            name: String = "celeriac", confirms: Bool = true, rpcTimeout: Int = 30,
            reconnectBase: Duration = .milliseconds(100), reconnectCap: Duration = .seconds(5),
            blockedTimeout: Duration = .seconds(30)
        ) {
            self.name = name
            self.confirms = confirms
            self.rpcTimeout = rpcTimeout
            self.reconnectBase = reconnectBase
            self.reconnectCap = reconnectCap
            self.blockedTimeout = blockedTimeout
        }
    }

    /// The broker to connect to; its ``AMQPURL/alternates`` are the nodes to fail over to.
    public let url: AMQPURL
    /// The options this connection was made with.
    public let options: Options
    let inbox = Inbox()
    private let hub = EventHub()

    /// Starts the connection's thread; nothing is sent to the broker before ``connect()``. The thread ends with
    /// ``close()``, or when the connection is released.
    public init(url: AMQPURL, options: Options = Options()) {
        self.url = url
        self.options = options
        let inbox = self.inbox
        let hub = self.hub
        startThread(name: "amqp-\(options.name)") {
            inbox.owner.store(UInt(bitPattern: Int(bitPattern: pthread_self())), ordering: .releasing)
            // The core is created on its thread and never leaves it.
            let core = ConnectionCore(url: url, options: options, inbox: inbox, hub: hub)
            core.run()
        }
    }

    deinit {
        _ = inbox.submit(ConnectionJob(run: { $0.close() }, fail: { _ in }))
    }

    /// Runs `body` on the connection thread and returns its result.
    private func call<T: Sendable>(_ body: @escaping @Sendable (ConnectionCore) -> Result<T, AMQPError>)
        async throws(AMQPError) -> T
    {
        let result: Result<T, AMQPError> = await withCheckedContinuation { continuation in
            let accepted = inbox.submit(
                ConnectionJob(
                    run: { core in continuation.resume(returning: body(core)) },
                    fail: { error in continuation.resume(returning: .failure(error)) }))
            if !accepted {
                continuation.resume(
                    returning: .failure(
                        AMQPError(
                            .closed, operation: "use connection \(options.name)",
                            hint: "The connection was closed by this process")))
            }
        }
        return try result.get()
    }

    /// Connects and logs in. After this succeeds, losses are repaired automatically.
    ///
    /// - Throws: ``AMQPError`` with `connectionRefused`, `hostNotFound`, `connectTimeout`, `tlsFailed`,
    ///   `accessRefused` or `vhostNotFound`, each with a hint.
    public func connect() async throws(AMQPError) {
        try await call { $0.connectFirst() }
    }

    /// True while connected (not reconnecting).
    public var isConnected: Bool { hub.isConnected }
    /// True while the broker blocks publishers.
    public var isBlocked: Bool { hub.isBlocked }

    /// A new stream of connection events (each call gets its own).
    public func events() -> AsyncStream<ConnectionEvent> { hub.stream() }

    /// Waits until connected, up to `timeout`. Returns false on timeout or when closed.
    public func waitUntilConnected(timeout: Duration) async -> Bool {
        await hub.wait(until: .now + timeout) { connected, _, _ in connected }
    }

    /// Declares an exchange (idempotent); it is declared again after every reconnect.
    ///
    /// - Throws: ``AMQPError``, e.g. `channelClosed` with reply code 406 when the exchange exists with other flags.
    public func declare(_ exchange: ExchangeSpec) async throws(AMQPError) {
        try await call { core in Result { () throws(AMQPError) in try core.declare(exchange: exchange) } }
    }

    /// Declares a queue. By default the connection re-declares it after a reconnect; pass
    /// `recreateAfterReconnect: false` for queues whose absence means something (locks, per-chord join queues).
    @discardableResult
    public func declare(_ queue: QueueSpec, recreateAfterReconnect: Bool = true) async throws(AMQPError)
        -> QueueDeclareOK
    {
        try await call { core in
            Result { () throws(AMQPError) in
                try core.declare(queue: queue, passive: false, remember: recreateAfterReconnect)
            }
        }
    }

    /// queue.declare with passive = true: checks that the queue exists and reads its counts.
    ///
    /// - Throws: ``AMQPError/Code/channelClosed`` with reply code 404 when it does not exist.
    public func inspect(queue name: String) async throws(AMQPError) -> QueueDeclareOK {
        try await call { core in
            Result { () throws(AMQPError) in try core.declare(queue: QueueSpec(name), passive: true) }
        }
    }

    /// Binds a queue to an exchange with a routing key (queue.bind); the binding is made again after every reconnect.
    public func bind(_ binding: BindingSpec) async throws(AMQPError) {
        try await call { core in Result { () throws(AMQPError) in try core.bind(binding) } }
    }

    /// Binds an exchange to another (exchange.bind, a RabbitMQ extension): messages routed to `source` with a matching
    /// key also go to `destination`. Made again after every reconnect.
    public func bind(_ binding: ExchangeBindingSpec) async throws(AMQPError) {
        try await call { core in Result { () throws(AMQPError) in try core.bind(exchange: binding) } }
    }

    /// Deletes a queue; returns the number of messages it held.
    @discardableResult
    public func deleteQueue(_ name: String, ifUnused: Bool = false, ifEmpty: Bool = false) async throws(AMQPError)
        -> UInt32
    {
        try await call { core in
            Result { () throws(AMQPError) in try core.deleteQueue(name, ifUnused: ifUnused, ifEmpty: ifEmpty) }
        }
    }

    /// Deletes an exchange (exchange.delete) and forgets its declaration, so a reconnect does not declare it again.
    public func deleteExchange(_ name: String) async throws(AMQPError) {
        try await call { core in Result { () throws(AMQPError) in try core.deleteExchange(name) } }
    }

    /// Removes every ready message from a queue; returns how many.
    @discardableResult
    public func purge(queue name: String) async throws(AMQPError) -> UInt32 {
        try await call { core in Result { () throws(AMQPError) in try core.purgeQueue(name) } }
    }

    /// basic.get: one message or nil. Settle it with ``ack(_:multiple:)`` unless `noAck`.
    public func get(queue: String, noAck: Bool = false) async throws(AMQPError) -> Delivery? {
        try await call { core in Result { () throws(AMQPError) in try core.get(queue: queue, noAck: noAck) } }
    }

    /// Publishes one message. With confirms on, returns once the broker confirmed it.
    ///
    /// - Throws: `notConnected`/`connectionLost` (not sent or not confirmed: safe to retry, may duplicate),
    ///   `publishNacked`, `unroutable` (mandatory), `blocked` (the broker blocked publishers for longer than
    ///   ``Options/blockedTimeout``), `channelClosed`.
    public func publish(_ message: OutgoingMessage) async throws(AMQPError) {
        try await publish([message])
    }

    /// Publishes a batch in order and waits for all of their confirms (one wait for the whole batch), or until
    /// `settler` is settled first (a reply to the message proves the broker took it).
    public func publish(_ messages: [OutgoingMessage], settler: PublishSettler? = nil) async throws(AMQPError) {
        if hub.isBlocked {
            let unblocked = await hub.wait(until: .now + options.blockedTimeout) { _, blocked, _ in !blocked }
            if !unblocked {
                throw AMQPError(
                    .blocked, operation: "basic.publish", reason: "the broker blocks publishers",
                    hint: "RabbitMQ raised a memory or disk alarm; free resources on the broker or consume faster")
            }
        }
        guard let settler else {
            let result: Result<Void, AMQPError> = await withCheckedContinuation { continuation in
                let accepted = inbox.submit(
                    ConnectionJob(
                        run: { core in core.publish(messages) { continuation.resume(returning: $0) } },
                        fail: { continuation.resume(returning: .failure($0)) }))
                if !accepted {
                    continuation.resume(returning: .failure(AMQPError(.closed, operation: "basic.publish")))
                }
            }
            return try result.get()
        }
        let result: Result<Void, AMQPError> = await withCheckedContinuation { continuation in
            settler.wait { continuation.resume(returning: $0) }
            let accepted = inbox.submit(
                ConnectionJob(
                    run: { core in core.publish(messages) { settler.settle($0) } },
                    fail: { settler.settle(.failure($0)) }))
            if !accepted { settler.settle(.failure(AMQPError(.closed, operation: "basic.publish"))) }
        }
        try result.get()
    }

    /// Publishes without waiting for the broker's confirm (monitoring events and other transient traffic).
    /// Order with other publishes of this connection is kept; failures are dropped.
    public func publishInBackground(_ message: OutgoingMessage) {
        guard !hub.isBlocked else { return }
        _ = inbox.submit(ConnectionJob(run: { core in core.publish([message]) { _ in } }, fail: { _ in }))
    }

    /// Starts a consumer. Deliveries arrive on the returned stream; after a reconnect the consumer is
    /// re-created with the same tag and the stream goes on.
    ///
    /// - Parameters:
    ///   - prefetch: basic.qos for this consumer (per consumer, not per channel).
    public func consume(
        queue: String, prefetch: UInt16, tag: String? = nil, noAck: Bool = false, exclusive: Bool = false,
        arguments: FieldTable = [:]
    ) async throws(AMQPError) -> AMQPConsumer {
        let tag = tag ?? "celeriac-\(queue)-\(UInt32.random(in: 0...UInt32.max))"
        let channel = UnboundedChannel<Delivery>()
        let record = ConnectionCore.ConsumerRecord(
            tag: tag, queue: queue, prefetch: prefetch, noAck: noAck,
            exclusive: exclusive, arguments: arguments, channel: channel)
        try await call { core in Result { () throws(AMQPError) in try core.consume(record) } }
        return AMQPConsumer(tag: tag, queue: queue, deliveries: channel.stream)
    }

    /// basic.cancel; the consumer's stream finishes.
    public func cancel(_ consumer: AMQPConsumer) async throws(AMQPError) {
        try await call { core in Result { () throws(AMQPError) in try core.cancel(consumerTag: consumer.tag) } }
    }

    /// Acknowledges a delivery. Returns false when the tag is stale (from before a reconnect): the broker has
    /// requeued that message already.
    @discardableResult
    public func ack(_ tag: DeliveryTag, multiple: Bool = false) async -> Bool {
        await settle(tag, .ack(multiple: multiple))
    }

    /// Negatively acknowledges; with `requeue` false the message goes to the queue's dead-letter exchange.
    @discardableResult
    public func nack(_ tag: DeliveryTag, multiple: Bool = false, requeue: Bool) async -> Bool {
        await settle(tag, .nack(multiple: multiple, requeue: requeue))
    }

    /// Rejects a delivery (basic.reject): with `requeue` the message goes back to its queue, without it to the queue's
    /// dead-letter exchange (or it is dropped). Returns false when the tag is stale (from before a reconnect).
    @discardableResult
    public func reject(_ tag: DeliveryTag, requeue: Bool) async -> Bool {
        await settle(tag, .reject(requeue: requeue))
    }

    /// Queues an ack without waiting for it to be written: acks leave in order with everything else this
    /// connection sends, and the caller does not pay a thread hop per message (the hot path of a consumer).
    ///
    /// Acks queued together leave as one `basic.ack` with `multiple` set when every tag below them is settled.
    public func ackInBackground(_ tag: DeliveryTag, multiple: Bool = false) {
        if multiple {
            _ = inbox.submit(ConnectionJob(run: { _ = $0.settle(tag, .ack(multiple: true)) }, fail: { _ in }))
        } else {
            _ = inbox.submit(ConnectionJob(run: { $0.queueAck(tag) }, fail: { _ in }))
        }
    }

    private func settle(_ tag: DeliveryTag, _ how: ConnectionCore.Settle) async -> Bool {
        (try? await call { core in .success(core.settle(tag, how)) }) ?? false
    }

    /// Closes the connection (connection.close) and ends its thread. Consumer streams finish.
    public func close() async {
        _ = try? await call { core in
            core.close()
            return .success(())
        }
    }
}
