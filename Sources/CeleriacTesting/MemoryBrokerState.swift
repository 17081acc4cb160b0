import CeleriacBroker

/// Everything the in-memory broker knows, and RabbitMQ's rules for changing it: routing through exchanges,
/// prefetch-bounded round-robin delivery, acks and requeues with the redelivered flag, TTL and dead-lettering with
/// `x-death`, exclusive and auto-delete queues, `x-expires`, priorities, length limits, streams.
///
/// A plain value guarded by ``InMemoryBroker``'s lock. It never calls out: what must happen outside the lock
/// (deliveries to hand over, consumer streams to end, connection events) is collected in an ``Outbox``.
struct MemoryBrokerState: Sendable {
    struct Consumer: Sendable {
        let tag: String
        let queue: String
        let connection: Int
        let prefetch: Int
        let noAck: Bool
        let channel: UnboundedChannel<Delivery>
        var unacked = 0
        /// Next index into a stream's log.
        var offset = 0
    }
    struct Unsettled: Sendable {
        let message: MemoryMessage
        let queue: String
        let consumer: String?
    }
    struct Connection: Sendable {
        var open = true
        var nextTag: UInt64 = 0
        var unsettled: [UInt64: Unsettled] = [:]
        var consumers: Set<String> = []
        var events: [AsyncStream<ConnectionEvent>.Continuation] = []
    }
    /// Effects to carry out once the lock is released.
    struct Outbox: Sendable {
        var deliveries: [(UnboundedChannel<Delivery>, Delivery)] = []
        var finished: [UnboundedChannel<Delivery>] = []
        var events: [(AsyncStream<ConnectionEvent>.Continuation, ConnectionEvent)] = []
    }

    static let vhost = "/"
    static let generation: UInt64 = 1
    static let channel: UInt16 = 1

    var exchanges: [String: MemoryExchange] = [:]
    var queues: [String: MemoryQueue] = [:]
    var consumers: [String: Consumer] = [:]
    var connections: [Int: Connection] = [:]
    var nextSequence: UInt64 = 0
    var nextConnection = 0
    var blockedReason: String?
    /// Wall-clock seconds at monotonic zero (the `time` of `x-death` entries is wall time).
    var wallAtZero: Double = 0

    init() {
        // RabbitMQ's predeclared exchanges that Celery and Celeriac use.
        for (name, kind) in [("amq.direct", ExchangeSpec.Kind.direct), ("amq.topic", .topic), ("amq.fanout", .fanout)] {
            exchanges[name] = MemoryExchange(spec: ExchangeSpec(name, kind: kind, durable: true))
        }
    }

    // MARK: Errors, as RabbitMQ words them

    static func notFound(_ operation: String, _ what: String) -> BrokerError {
        BrokerError(
            .channelClosed, operation: operation, replyCode: 404, reason: "NOT_FOUND - no \(what) in vhost '\(vhost)'")
    }
    static func locked(_ operation: String, _ queue: String) -> BrokerError {
        BrokerError(
            .channelClosed, operation: operation, replyCode: 405,
            reason: "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '\(queue)' in vhost '\(vhost)'")
    }
    static func precondition(_ operation: String, _ reason: String) -> BrokerError {
        BrokerError(.channelClosed, operation: operation, replyCode: 406, reason: "PRECONDITION_FAILED - \(reason)")
    }
    static func closed(_ operation: String) -> BrokerError {
        BrokerError(.closed, operation: operation, reason: "the connection was closed")
    }

    func requireOpen(_ connection: Int, _ operation: String) throws(BrokerError) {
        guard connections[connection]?.open == true else { throw Self.closed(operation) }
    }

    /// The queue, if `connection` may use it (an exclusive queue belongs to its declaring connection).
    func usable(_ name: String, by connection: Int, _ operation: String) throws(BrokerError) -> MemoryQueue {
        guard let queue = queues[name] else { throw Self.notFound(operation, "queue '\(name)'") }
        if let owner = queue.owner, owner != connection { throw Self.locked(operation, name) }
        return queue
    }

    // MARK: Connections

    mutating func openConnection() -> Int {
        nextConnection += 1
        connections[nextConnection] = Connection()
        return nextConnection
    }

    mutating func addEventSink(_ connection: Int, _ sink: AsyncStream<ConnectionEvent>.Continuation) {
        connections[connection]?.events.append(sink)
    }

    /// Closes a connection as RabbitMQ does when a client goes away: its consumers end, its unsettled deliveries
    /// go back to their queues (redelivered), its exclusive queues are deleted.
    mutating func close(_ id: Int, now: Duration, outbox: inout Outbox) {
        guard var connection = connections[id], connection.open else { return }
        connection.open = false
        let unsettled = connection.unsettled.sorted { $0.key < $1.key }.map(\.value)
        connection.unsettled = [:]
        let tags = connection.consumers
        connection.consumers = []
        for sink in connection.events { outbox.events.append((sink, .closed)) }
        connection.events.forEach { $0.finish() }
        connection.events = []
        connections[id] = connection
        for tag in tags { removeConsumer(tag, now: now, outbox: &outbox) }
        var touched: Set<String> = []
        for item in unsettled where queues[item.queue] != nil && queues[item.queue]?.isStream == false {
            var message = item.message
            message.redelivered = true
            queues[item.queue]?.insert(message, requeued: true)
            touched.insert(item.queue)
        }
        for name in queues.keys.sorted() where queues[name]?.owner == id { deleteQueueNow(name, outbox: &outbox) }
        for name in touched.sorted() { dispatch(name, now: now, outbox: &outbox) }
    }

    // MARK: Declarations

    mutating func declare(_ spec: ExchangeSpec, connection: Int) throws(BrokerError) {
        let operation = "exchange.declare \(spec.name)"
        try requireOpen(connection, operation)
        if let existing = exchanges[spec.name] {
            guard existing.spec.kind == spec.kind, existing.spec.durable == spec.durable else {
                throw Self.precondition(
                    operation,
                    "inequivalent arg 'type' or 'durable' for exchange '\(spec.name)' in vhost '\(Self.vhost)'")
            }
            return
        }
        exchanges[spec.name] = MemoryExchange(spec: spec)
    }

    mutating func declare(_ spec: QueueSpec, connection: Int, now: Duration) throws(BrokerError) -> QueueDeclareOK {
        let operation = "queue.declare \(spec.name)"
        try requireOpen(connection, operation)
        if var existing = queues[spec.name] {
            if let owner = existing.owner, owner != connection { throw Self.locked(operation, spec.name) }
            if let argument = existing.inequivalence(with: spec) {
                throw Self.precondition(
                    operation, "inequivalent arg '\(argument)' for queue '\(spec.name)' in vhost '\(Self.vhost)'")
            }
            existing.lastUsed = now
            queues[spec.name] = existing
            return QueueDeclareOK(
                queue: spec.name, messageCount: UInt32(existing.ready.count),
                consumerCount: UInt32(existing.consumers.count))
        }
        queues[spec.name] = MemoryQueue(spec: spec, owner: spec.exclusive ? connection : nil, now: now)
        // Every queue is bound to the default exchange by its name.
        return QueueDeclareOK(queue: spec.name, messageCount: 0, consumerCount: 0)
    }

    mutating func inspect(_ name: String, connection: Int, now: Duration) throws(BrokerError) -> QueueDeclareOK {
        let operation = "queue.declare \(name) (passive)"
        try requireOpen(connection, operation)
        let queue = try usable(name, by: connection, operation)
        return QueueDeclareOK(
            queue: name, messageCount: UInt32(queue.ready.count), consumerCount: UInt32(queue.consumers.count))
    }

    mutating func bind(_ binding: BindingSpec, connection: Int) throws(BrokerError) {
        let operation = "queue.bind \(binding.queue) to \(binding.exchange)"
        try requireOpen(connection, operation)
        _ = try usable(binding.queue, by: connection, operation)
        guard exchanges[binding.exchange] != nil else {
            throw Self.notFound(operation, "exchange '\(binding.exchange)'")
        }
        let b = MemoryExchange.Binding(destination: .queue(binding.queue), key: binding.routingKey)
        if exchanges[binding.exchange]?.bindings.contains(b) == false {
            exchanges[binding.exchange]?.bindings.append(b)
        }
    }

    mutating func bind(_ binding: ExchangeBindingSpec, connection: Int) throws(BrokerError) {
        let operation = "exchange.bind \(binding.destination) to \(binding.source)"
        try requireOpen(connection, operation)
        guard exchanges[binding.source] != nil else { throw Self.notFound(operation, "exchange '\(binding.source)'") }
        guard exchanges[binding.destination] != nil else {
            throw Self.notFound(operation, "exchange '\(binding.destination)'")
        }
        let b = MemoryExchange.Binding(destination: .exchange(binding.destination), key: binding.routingKey)
        if exchanges[binding.source]?.bindings.contains(b) == false { exchanges[binding.source]?.bindings.append(b) }
    }

    mutating func deleteQueue(
        _ name: String, ifUnused: Bool, ifEmpty: Bool, connection: Int,
        outbox: inout Outbox
    ) throws(BrokerError) -> UInt32 {
        let operation = "queue.delete \(name)"
        try requireOpen(connection, operation)
        // RabbitMQ answers delete-ok for a queue that is not there.
        guard queues[name] != nil else { return 0 }
        let queue = try usable(name, by: connection, operation)
        if ifUnused, !queue.consumers.isEmpty {
            throw Self.precondition(operation, "queue '\(name)' in vhost '\(Self.vhost)' in use")
        }
        if ifEmpty, !queue.ready.isEmpty {
            throw Self.precondition(operation, "queue '\(name)' in vhost '\(Self.vhost)' is not empty")
        }
        deleteQueueNow(name, outbox: &outbox)
        return UInt32(queue.ready.count)
    }

    /// Removes a queue: its consumers are cancelled by the broker (the clients see consumerCancelled), its bindings go.
    mutating func deleteQueueNow(_ name: String, outbox: inout Outbox) {
        guard let queue = queues.removeValue(forKey: name) else { return }
        for tag in queue.consumers {
            guard let consumer = consumers.removeValue(forKey: tag) else { continue }
            outbox.finished.append(consumer.channel)
            connections[consumer.connection]?.consumers.remove(tag)
            for sink in connections[consumer.connection]?.events ?? [] {
                outbox.events.append((sink, .consumerCancelled(tag: tag)))
            }
        }
        for key in exchanges.keys { exchanges[key]?.bindings.removeAll { $0.destination == .queue(name) } }
    }

    mutating func deleteExchange(_ name: String, connection: Int) throws(BrokerError) {
        try requireOpen(connection, "exchange.delete \(name)")
        exchanges[name] = nil
        for key in exchanges.keys { exchanges[key]?.bindings.removeAll { $0.destination == .exchange(name) } }
    }

    mutating func purge(_ name: String, connection: Int) throws(BrokerError) -> UInt32 {
        let operation = "queue.purge \(name)"
        try requireOpen(connection, operation)
        let count = try usable(name, by: connection, operation).ready.count
        queues[name]?.ready = []
        return UInt32(count)
    }

    // MARK: Publishing and routing

    /// The queues a message published to `exchange` with `key` reaches (through exchange-to-exchange bindings too).
    func route(exchange: String, key: String) -> [String] {
        if exchange.isEmpty { return queues[key] != nil ? [key] : [] }
        var found: [String] = []
        var seen: Set<String> = []
        func walk(_ name: String) {
            guard seen.insert(name).inserted, let e = exchanges[name] else { return }
            for destination in e.routes(key) {
                switch destination {
                case .queue(let q): if !found.contains(q) { found.append(q) }
                case .exchange(let x): walk(x)
                }
            }
        }
        walk(exchange)
        return found
    }

    enum PublishOutcome {
        case accepted
        case rejected(queue: String)
    }

    /// Routes and enqueues one message. A queue full under `reject-publish` refuses it (the publisher's confirm is
    /// a nack); a mandatory message that reaches no queue throws `unroutable`.
    mutating func publish(
        _ outgoing: OutgoingMessage, connection: Int, now: Duration,
        outbox: inout Outbox
    ) throws(BrokerError) -> PublishOutcome {
        let operation =
            "basic.publish \(outgoing.exchange.isEmpty ? "(default)" : outgoing.exchange) \(outgoing.routingKey)"
        try requireOpen(connection, operation)
        guard outgoing.exchange.isEmpty || exchanges[outgoing.exchange] != nil else {
            throw Self.notFound(operation, "exchange '\(outgoing.exchange)'")
        }
        let targets = route(exchange: outgoing.exchange, key: outgoing.routingKey)
        if targets.isEmpty, outgoing.mandatory {
            throw BrokerError(.unroutable, operation: operation, replyCode: 312, reason: "NO_ROUTE")
        }
        nextSequence += 1
        let message = MemoryMessage(
            exchange: outgoing.exchange, routingKey: outgoing.routingKey, properties: outgoing.properties,
            body: outgoing.body, sequence: nextSequence)
        var outcome = PublishOutcome.accepted
        for name in targets where !enqueue(message, into: name, at: now, outbox: &outbox) {
            outcome = .rejected(queue: name)
        }
        for name in targets { dispatch(name, now: now, outbox: &outbox) }
        return outcome
    }

    /// Puts a message in a queue as of `time`; false when the queue refuses it (full, `reject-publish`).
    mutating func enqueue(_ message: MemoryMessage, into name: String, at time: Duration, outbox: inout Outbox) -> Bool
    {
        guard var queue = queues[name] else { return true }
        var message = message
        message.enqueuedAt = time
        message.redelivered = false
        if queue.isStream {
            queue.log.append(message)
            queues[name] = queue
            return true
        }
        if let max = queue.maxLength, queue.ready.count >= max {
            if queue.rejectsWhenFull { return false }
            // drop-head: the oldest goes (to the dead-letter exchange, if any) to make room.
            while queue.ready.count >= max, !queue.ready.isEmpty {
                let dropped = queue.ready.removeFirst()
                queues[name] = queue
                deadLetter(dropped, from: name, reason: "maxlen", at: time, outbox: &outbox)
                queue = queues[name] ?? queue
            }
        }
        var deadline: Duration?
        if let ttl = queue.ttl { deadline = time + ttl }
        if let text = message.properties.expiration, let ms = Int64(text) {
            let own = time + .milliseconds(ms)
            deadline = deadline.map { min($0, own) } ?? own
        }
        message.expiresAt = deadline
        queue.insert(message, requeued: false)
        queues[name] = queue
        return true
    }

    /// Sends a message to its queue's dead-letter exchange with RabbitMQ's `x-death` bookkeeping, or drops it.
    mutating func deadLetter(
        _ message: MemoryMessage, from queueName: String, reason: String, at time: Duration, outbox: inout Outbox
    ) {
        guard let queue = queues[queueName], let dlx = queue.deadLetterExchange else { return }
        var properties = message.properties
        var headers = properties.headers ?? [:]
        var deaths: [FieldValue] = []
        if case .array(let existing)? = headers["x-death"] { deaths = existing }
        let seconds = UInt64(max(0, wallAtZero + Double(time.components.seconds)))
        if let index = deaths.firstIndex(where: {
            guard case .table(let t) = $0 else { return false }
            return t["queue"]?.stringValue == queueName && t["reason"]?.stringValue == reason
        }), case .table(var entry) = deaths[index] {
            entry["count"] = .int64((entry["count"]?.intValue ?? 0) + 1)
            entry["time"] = .timestamp(seconds)
            deaths.remove(at: index)
            deaths.insert(.table(entry), at: 0)
        } else {
            let entry: FieldTable = [
                "count": .int64(1), "reason": .string(reason), "queue": .string(queueName),
                "time": .timestamp(seconds), "exchange": .string(message.exchange),
                "routing-keys": .array([.string(message.routingKey)]),
            ]
            deaths.insert(.table(entry), at: 0)
        }
        headers["x-death"] = .array(deaths)
        if headers["x-first-death-reason"] == nil {
            headers["x-first-death-reason"] = .string(reason)
            headers["x-first-death-queue"] = .string(queueName)
            headers["x-first-death-exchange"] = .string(message.exchange)
        }
        if let expiration = properties.expiration {
            // As RabbitMQ: a dead-lettered message does not expire again by its old per-message TTL.
            headers["original-expiration"] = .string(expiration)
            properties.expiration = nil
        }
        properties.headers = headers
        let key = queue.deadLetterRoutingKey ?? message.routingKey
        nextSequence += 1
        let copy = MemoryMessage(
            exchange: dlx, routingKey: key, properties: properties, body: message.body, sequence: nextSequence)
        for target in route(exchange: dlx, key: key) {
            _ = enqueue(copy, into: target, at: time, outbox: &outbox)
            dispatch(target, now: time, outbox: &outbox)
        }
    }

    // MARK: Consuming and settling

    mutating func consume(
        queue name: String, tag: String, prefetch: Int, noAck: Bool, exclusive: Bool, arguments: FieldTable,
        channel: UnboundedChannel<Delivery>, connection: Int, now: Duration,
        outbox: inout Outbox
    ) throws(BrokerError) {
        let operation = "basic.consume \(name)"
        try requireOpen(connection, operation)
        var queue = try usable(name, by: connection, operation)
        guard consumers[tag] == nil else {
            throw BrokerError(
                .protocolError, operation: operation, replyCode: 530,
                reason: "NOT_ALLOWED - attempt to reuse consumer tag '\(tag)'")
        }
        if exclusive, !queue.consumers.isEmpty { throw Self.locked(operation, name) }
        var consumer = Consumer(
            tag: tag, queue: name, connection: connection, prefetch: prefetch, noAck: noAck, channel: channel)
        if queue.isStream {
            switch arguments["x-stream-offset"]?.stringValue {
            case "first": consumer.offset = 0
            default: consumer.offset = queue.log.count  // "next", RabbitMQ's default
            }
        }
        consumers[tag] = consumer
        queue.consumers.append(tag)
        queue.hadConsumer = true
        queue.lastUsed = now
        queues[name] = queue
        connections[connection]?.consumers.insert(tag)
        dispatch(name, now: now, outbox: &outbox)
    }

    mutating func cancel(_ tag: String, connection: Int, now: Duration, outbox: inout Outbox) throws(BrokerError) {
        try requireOpen(connection, "basic.cancel \(tag)")
        connections[connection]?.consumers.remove(tag)
        removeConsumer(tag, now: now, outbox: &outbox)
    }

    mutating func removeConsumer(_ tag: String, now: Duration, outbox: inout Outbox) {
        guard let consumer = consumers.removeValue(forKey: tag) else { return }
        outbox.finished.append(consumer.channel)
        guard var queue = queues[consumer.queue] else { return }
        queue.consumers.removeAll { $0 == tag }
        queue.lastUsed = now
        queues[consumer.queue] = queue
        if queue.spec.autoDelete, queue.hadConsumer, queue.consumers.isEmpty {
            deleteQueueNow(queue.name, outbox: &outbox)
        }
    }

    /// Hands ready messages to consumers with room under their prefetch, round robin.
    mutating func dispatch(_ name: String, now: Duration, outbox: inout Outbox) {
        guard var queue = queues[name], !queue.consumers.isEmpty else { return }
        if queue.isStream {
            for tag in queue.consumers {
                guard var consumer = consumers[tag] else { continue }
                while consumer.offset < queue.log.count, consumer.prefetch == 0 || consumer.unacked < consumer.prefetch
                {
                    let message = queue.log[consumer.offset]
                    consumer.offset += 1
                    deliver(message, from: name, to: &consumer, outbox: &outbox)
                }
                consumers[tag] = consumer
            }
            return
        }
        expireHead(of: &queue, now: now, outbox: &outbox)
        while !queue.ready.isEmpty {
            var chosen: Int?
            for step in 0..<queue.consumers.count {
                let index = (queue.nextConsumer + step) % queue.consumers.count
                if let c = consumers[queue.consumers[index]], c.prefetch == 0 || c.unacked < c.prefetch {
                    chosen = index
                    break
                }
            }
            guard let index = chosen, var consumer = consumers[queue.consumers[index]] else { break }
            queue.nextConsumer = (index + 1) % queue.consumers.count
            let message = queue.ready.removeFirst()
            deliver(message, from: name, to: &consumer, outbox: &outbox)
            consumers[consumer.tag] = consumer
            expireHead(of: &queue, now: now, outbox: &outbox)
        }
        queues[name] = queue
    }

    private mutating func deliver(
        _ message: MemoryMessage, from queue: String, to consumer: inout Consumer, outbox: inout Outbox
    ) {
        guard var connection = connections[consumer.connection] else { return }
        connection.nextTag += 1
        let tag = connection.nextTag
        if !consumer.noAck {
            connection.unsettled[tag] = Unsettled(message: message, queue: queue, consumer: consumer.tag)
            consumer.unacked += 1
        }
        connections[consumer.connection] = connection
        let delivery = Delivery(
            tag: DeliveryTag(generation: Self.generation, channel: Self.channel, value: tag), consumerTag: consumer.tag,
            redelivered: message.redelivered, exchange: message.exchange, routingKey: message.routingKey,
            properties: message.properties, body: message.body, messageCount: nil)
        outbox.deliveries.append((consumer.channel, delivery))
    }

    mutating func get(
        queue name: String, noAck: Bool, connection: Int, now: Duration,
        outbox: inout Outbox
    ) throws(BrokerError) -> Delivery? {
        let operation = "basic.get \(name)"
        try requireOpen(connection, operation)
        var queue = try usable(name, by: connection, operation)
        guard !queue.isStream else { throw Self.precondition(operation, "queue '\(name)' is a stream: use a consumer") }
        expireHead(of: &queue, now: now, outbox: &outbox)
        queue.lastUsed = now
        guard !queue.ready.isEmpty else {
            queues[name] = queue
            return nil
        }
        let message = queue.ready.removeFirst()
        queues[name] = queue
        guard var c = connections[connection] else { throw Self.closed(operation) }
        c.nextTag += 1
        let tag = c.nextTag
        if !noAck { c.unsettled[tag] = Unsettled(message: message, queue: name, consumer: nil) }
        connections[connection] = c
        return Delivery(
            tag: DeliveryTag(generation: Self.generation, channel: Self.channel, value: tag), consumerTag: "",
            redelivered: message.redelivered, exchange: message.exchange, routingKey: message.routingKey,
            properties: message.properties, body: message.body, messageCount: UInt32(queue.ready.count))
    }

    enum Settlement { case ack, requeue, discard }

    /// Settles one delivery (or, with `multiple`, every unsettled one up to it). False for a tag this connection
    /// does not hold (from before a reconnect, or settled already).
    mutating func settle(
        _ tag: DeliveryTag, multiple: Bool, how: Settlement, connection id: Int, now: Duration,
        outbox: inout Outbox
    ) -> Bool {
        guard tag.generation == Self.generation, var connection = connections[id], connection.open else { return false }
        let tags = multiple ? connection.unsettled.keys.filter { $0 <= tag.value }.sorted() : [tag.value]
        guard !tags.isEmpty, tags.allSatisfy({ connection.unsettled[$0] != nil }) else { return false }
        var items: [Unsettled] = []
        for t in tags { if let item = connection.unsettled.removeValue(forKey: t) { items.append(item) } }
        connections[id] = connection
        var touched: [String] = []
        for item in items {
            if let c = item.consumer { consumers[c]?.unacked -= 1 }
            if !touched.contains(item.queue) { touched.append(item.queue) }
            guard queues[item.queue]?.isStream == false else { continue }
            switch how {
            case .ack: break
            case .requeue:
                var message = item.message
                message.redelivered = true
                queues[item.queue]?.insert(message, requeued: true)
            case .discard:
                deadLetter(item.message, from: item.queue, reason: "rejected", at: now, outbox: &outbox)
            }
        }
        for name in touched { dispatch(name, now: now, outbox: &outbox) }
        return true
    }

    // MARK: Time

    /// Expires messages at the head of a queue whose time has come, as RabbitMQ does (only the head expires).
    /// A message expired at `t` enters its dead-letter queue at `t`, so a jump of the clock across several delay
    /// levels plays out as the levels would have in real time.
    mutating func expireHead(of queue: inout MemoryQueue, now: Duration, outbox: inout Outbox) {
        while let head = queue.ready.first, let at = head.expiresAt, at <= now {
            queue.ready.removeFirst()
            queues[queue.name] = queue
            deadLetter(head, from: queue.name, reason: "expired", at: at, outbox: &outbox)
            queue = queues[queue.name] ?? queue
        }
    }

    /// Applies everything due by `now`: message TTLs (cascading through dead-letter queues in time order) and
    /// `x-expires` of unused queues.
    mutating func advance(to now: Duration, outbox: inout Outbox) {
        // Runs before every operation: nothing to do (the usual case) costs one look at the queue heads.
        guard let due = nextDeadline(), due <= now else { return }
        while let (name, at) = earliestExpiry(), at <= now {
            guard var queue = queues[name] else { continue }
            expireHead(of: &queue, now: at, outbox: &outbox)
            queues[name] = queue
            dispatch(name, now: at, outbox: &outbox)
        }
        for name in queues.keys.sorted() {
            guard let queue = queues[name], let expires = queue.expires, queue.consumers.isEmpty else { continue }
            if queue.lastUsed + expires <= now { deleteQueueNow(name, outbox: &outbox) }
        }
    }

    private func earliestExpiry() -> (String, Duration)? {
        var best: (String, Duration)?
        for (name, queue) in queues {
            guard let at = queue.ready.first?.expiresAt else { continue }
            if best == nil || at < best!.1 || (at == best!.1 && name < best!.0) { best = (name, at) }
        }
        return best
    }

    /// When something next becomes due (a message's TTL at a queue head, an unused queue's `x-expires`).
    func nextDeadline() -> Duration? {
        var best = earliestExpiry()?.1
        for queue in queues.values {
            guard let expires = queue.expires, queue.consumers.isEmpty else { continue }
            let at = queue.lastUsed + expires
            best = best.map { min($0, at) } ?? at
        }
        return best
    }
}
