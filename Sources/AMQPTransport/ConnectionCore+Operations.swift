import CRabbitMQ

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The broker operations a job runs on the connection's thread: declarations, deletes, basic.get, consumers, settling
/// and publishing, each turning librabbitmq's reply into an ``AMQPError`` in one place.
extension ConnectionCore {
    func requireConnection(_ operation: String) throws(AMQPError) -> OpaquePointer {
        guard connected, let c = conn else {
            throw AMQPError(
                .notConnected, operation: operation, hint: "The broker connection is down; Celeriac is reconnecting")
        }
        return c
    }

    /// Checks the last RPC reply; on failure sends close-ok where the protocol wants one and recovers.
    func check(_ operation: String, channel: UInt16) throws(AMQPError) {
        guard let c = conn else { throw AMQPError(.notConnected, operation: operation) }
        let r = amqp_get_rpc_reply(c)
        guard let error = AMQPError(reply: r, operation: operation) else { return }
        if r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION, r.reply.id == AMQP_CHANNEL_CLOSE_METHOD {
            var ok = amqp_channel_close_ok_t(dummy: 0)
            amqp_send_method(c, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok)
            if channel == Self.mainChannel { recoverMainChannel(after: error) } else { adminOpen = false }
        } else if r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION, r.reply.id == AMQP_CONNECTION_CLOSE_METHOD {
            var ok = amqp_connection_close_ok_t(dummy: 0)
            amqp_send_method(c, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok)
            connectionLost(error)
        } else {
            connectionLost(error)
        }
        throw error
    }

    func admin(_ operation: String) throws(AMQPError) -> OpaquePointer {
        let c = try requireConnection(operation)
        if !adminOpen {
            amqp_channel_open(c, Self.adminChannel)
            try check("channel.open (admin)", channel: Self.adminChannel)
            adminOpen = true
        }
        return c
    }

    func declare(exchange e: ExchangeSpec, remember: Bool = true) throws(AMQPError) {
        let op = "exchange.declare '\(e.name)'"
        let c = try admin(op)
        withCArena { arena in
            _ = amqp_exchange_declare(
                c, Self.adminChannel, arena.bytes(e.name), arena.bytes(e.kind.rawValue), 0,
                e.durable ? 1 : 0, e.autoDelete ? 1 : 0, e.internal ? 1 : 0, arena.table(e.arguments))
        }
        try check(op, channel: Self.adminChannel)
        if remember { ledger.declared(e) }
    }

    func declare(queue q: QueueSpec, passive: Bool, remember: Bool = true) throws(AMQPError) -> QueueDeclareOK {
        let op = "queue.declare '\(q.name)'"
        let c = try admin(op)
        let ok = withCArena { arena in
            amqp_queue_declare(
                c, Self.adminChannel, arena.bytes(q.name), passive ? 1 : 0, q.durable ? 1 : 0,
                q.exclusive ? 1 : 0, q.autoDelete ? 1 : 0, arena.table(q.arguments))
        }
        try check(op, channel: Self.adminChannel)
        guard let ok else { throw AMQPError(.protocolError, operation: op, reason: "no declare-ok") }
        if !passive { ledger.declared(q, recreateAfterReconnect: remember) }
        return QueueDeclareOK(
            queue: CDecode.string(ok.pointee.queue), messageCount: ok.pointee.message_count,
            consumerCount: ok.pointee.consumer_count)
    }

    func bind(_ b: BindingSpec, remember: Bool = true) throws(AMQPError) {
        let op = "queue.bind '\(b.queue)' to '\(b.exchange)' key '\(b.routingKey)'"
        let c = try admin(op)
        withCArena { arena in
            _ = amqp_queue_bind(
                c, Self.adminChannel, arena.bytes(b.queue), arena.bytes(b.exchange), arena.bytes(b.routingKey),
                arena.table(b.arguments))
        }
        try check(op, channel: Self.adminChannel)
        if remember { ledger.bound(b) }
    }

    func bind(exchange b: ExchangeBindingSpec, remember: Bool = true) throws(AMQPError) {
        let op = "exchange.bind '\(b.destination)' to '\(b.source)' key '\(b.routingKey)'"
        let c = try admin(op)
        withCArena { arena in
            _ = amqp_exchange_bind(
                c, Self.adminChannel, arena.bytes(b.destination), arena.bytes(b.source), arena.bytes(b.routingKey),
                arena.table(b.arguments))
        }
        try check(op, channel: Self.adminChannel)
        if remember { ledger.bound(b) }
    }

    func deleteQueue(_ name: String, ifUnused: Bool, ifEmpty: Bool) throws(AMQPError) -> UInt32 {
        let op = "queue.delete '\(name)'"
        let c = try admin(op)
        let ok = withCArena {
            amqp_queue_delete(c, Self.adminChannel, $0.bytes(name), ifUnused ? 1 : 0, ifEmpty ? 1 : 0)
        }
        try check(op, channel: Self.adminChannel)
        ledger.deletedQueue(named: name)
        return ok?.pointee.message_count ?? 0
    }

    func deleteExchange(_ name: String) throws(AMQPError) {
        let op = "exchange.delete '\(name)'"
        let c = try admin(op)
        withCArena { _ = amqp_exchange_delete(c, Self.adminChannel, $0.bytes(name), 0) }
        try check(op, channel: Self.adminChannel)
        ledger.deletedExchange(named: name)
    }

    func purgeQueue(_ name: String) throws(AMQPError) -> UInt32 {
        let op = "queue.purge '\(name)'"
        let c = try admin(op)
        let ok = withCArena { amqp_queue_purge(c, Self.adminChannel, $0.bytes(name)) }
        try check(op, channel: Self.adminChannel)
        return ok?.pointee.message_count ?? 0
    }

    func get(queue: String, noAck: Bool) throws(AMQPError) -> Delivery? {
        let op = "basic.get '\(queue)'"
        let c = try admin(op)
        let r = withCArena { amqp_basic_get(c, Self.adminChannel, $0.bytes(queue), noAck ? 1 : 0) }
        if AMQPError(reply: r, operation: op) != nil { try check(op, channel: Self.adminChannel) }
        guard r.reply.id == AMQP_BASIC_GET_OK_METHOD, let decoded = r.reply.decoded else { return nil }
        let g = decoded.assumingMemoryBound(to: amqp_basic_get_ok_t.self).pointee
        let tag = DeliveryTag(generation: generation, channel: Self.adminChannel, value: g.delivery_tag)
        let redelivered = g.redelivered != 0
        let exchange = CDecode.string(g.exchange)
        let routingKey = CDecode.string(g.routing_key)
        let count = g.message_count
        var message = amqp_message_t()
        let rr = amqp_read_message(c, Self.adminChannel, &message, 0)
        if let error = AMQPError(reply: rr, operation: op) { connectionLost(error); throw error }
        defer { amqp_destroy_message(&message) }
        return Delivery(
            tag: tag, consumerTag: "", redelivered: redelivered, exchange: exchange, routingKey: routingKey,
            properties: CDecode.properties(message.properties), body: CDecode.bytes(message.body), messageCount: count)
    }

    func consume(_ record: ConsumerRecord) throws(AMQPError) {
        if consumers.contains(where: { $0.tag == record.tag }) {
            throw AMQPError(
                .protocolError, operation: "basic.consume '\(record.queue)'",
                reason: "consumer tag '\(record.tag)' is already in use")
        }
        consumers.append(record)
        guard connected else { return }  // started by restoreTopology after the reconnect
        do {
            try startConsumer(record)
        } catch {
            consumers.removeAll { $0.tag == record.tag }
            record.channel.finish()
            throw error
        }
    }

    func startConsumer(_ record: ConsumerRecord) throws(AMQPError) {
        let op = "basic.consume '\(record.queue)'"
        let c = try requireConnection(op)
        // Per-consumer prefetch (global = false): it works on classic and quorum queues alike.
        amqp_basic_qos(c, Self.mainChannel, 0, record.prefetch, 0)
        try check("basic.qos \(record.prefetch)", channel: Self.mainChannel)
        withCArena { arena in
            _ = amqp_basic_consume(
                c, Self.mainChannel, arena.bytes(record.queue), arena.bytes(record.tag), 0,
                record.noAck ? 1 : 0, record.exclusive ? 1 : 0, arena.table(record.arguments))
        }
        try check(op, channel: Self.mainChannel)
    }

    func cancel(consumerTag: String) throws(AMQPError) {
        guard let i = consumers.firstIndex(where: { $0.tag == consumerTag }) else { return }
        let record = consumers.remove(at: i)
        guard connected, let c = conn else { return record.channel.finish() }
        withCArena { _ = amqp_basic_cancel(c, Self.mainChannel, $0.bytes(consumerTag)) }
        do {
            try check("basic.cancel '\(consumerTag)'", channel: Self.mainChannel)
        } catch {
            record.channel.finish()
            throw error
        }
        // Deliveries that came during the round trip wait in librabbitmq's frame queue: they are this consumer's,
        // and its stream ends after them.
        draining[consumerTag] = record
        finishDrainedConsumers()
    }

    enum Settle: Sendable {
        case ack(multiple: Bool)
        case nack(multiple: Bool, requeue: Bool)
        case reject(requeue: Bool)
    }

    /// Acks, nacks or rejects. A tag from an earlier connection or channel is dropped (returns false): the broker
    /// has already put that message back in its queue.
    func settle(_ tag: DeliveryTag, _ how: Settle) -> Bool {
        guard connected, let c = conn, tag.generation == generation else { return false }
        if tag.channel == Self.adminChannel && !adminOpen { return false }
        // Queued acks first: a `multiple` nack must not take a tag the application has acked.
        if tag.channel == Self.mainChannel { flushAcks() }
        guard connected else { return false }
        let rc: Int32 =
            switch how {
            case .ack(let multiple): amqp_basic_ack(c, tag.channel, tag.value, multiple ? 1 : 0)
            case .nack(let multiple, let requeue):
                amqp_basic_nack(c, tag.channel, tag.value, multiple ? 1 : 0, requeue ? 1 : 0)
            case .reject(let requeue): amqp_basic_reject(c, tag.channel, tag.value, requeue ? 1 : 0)
            }
        if rc < 0 {
            connectionLost(AMQPError(status: rc, operation: "basic.ack"))
            return false
        }
        if tag.channel == Self.mainChannel {
            switch how {
            case .ack(true), .nack(true, _): acks.settled(upTo: tag.value)
            default: acks.settled(tag.value)
            }
        }
        return true
    }

    /// An ack that may leave together with others (``AMQPConnection/ackInBackground(_:multiple:)``): queued
    /// until the end of the current batch of jobs, then sent by ``flushAcks()``.
    func queueAck(_ tag: DeliveryTag) {
        guard connected, tag.generation == generation else { return }
        guard tag.channel == Self.mainChannel else {
            _ = settle(tag, .ack(multiple: false))
            return
        }
        acks.queueAck(tag.value)
    }

    /// Sends the queued acks of channel 1: one `multiple` ack for the run that is settled from the bottom up,
    /// single acks for the rest.
    func flushAcks() {
        guard acks.hasPending else { return }
        let (upTo, singles) = acks.flush()
        guard connected, let c = conn else { return }
        if let upTo, amqp_basic_ack(c, Self.mainChannel, upTo, 1) < 0 {
            connectionLost(AMQPError(.connectionLost, operation: "basic.ack"))
            return
        }
        for tag in singles where amqp_basic_ack(c, Self.mainChannel, tag, 0) < 0 {
            connectionLost(AMQPError(.connectionLost, operation: "basic.ack"))
            return
        }
    }

    /// Publishes messages in order; `completion` runs once every one is confirmed (or failed).
    func publish(_ messages: [OutgoingMessage], completion: @escaping Completion<Void>) {
        guard connected, let c = conn else {
            completion(
                .failure(
                    AMQPError(
                        .notConnected, operation: "basic.publish",
                        hint: "The broker connection is down; Celeriac is reconnecting")))
            return
        }
        var remaining = messages.count
        var firstError: AMQPError?
        let tracker: (Result<Void, AMQPError>) -> Void = { result in
            if case .failure(let e) = result, firstError == nil { firstError = e }
            remaining -= 1
            if remaining == 0 { completion(firstError.map { .failure($0) } ?? .success(())) }
        }
        if messages.isEmpty { completion(.success(())); return }
        for (index, m) in messages.enumerated() {
            if let problem = m.properties.wireProblem {
                // Refused here, for this message only: sent, it would be a frame error that closes the connection.
                tracker(
                    .failure(
                        AMQPError(
                            .protocolError, operation: "basic.publish to '\(m.exchange)' key '\(m.routingKey)'",
                            reason: problem)))
                continue
            }
            let rc = withCArena { arena in
                var props = arena.properties(m.properties)
                let body = arena.bytes(m.body)
                return amqp_basic_publish(
                    c, Self.mainChannel, arena.bytes(m.exchange), arena.bytes(m.routingKey),
                    m.mandatory ? 1 : 0, 0, &props, body)
            }
            if rc < 0 {
                let error = AMQPError(status: rc, operation: "basic.publish to '\(m.exchange)' key '\(m.routingKey)'")
                // connectionLost fails the messages of this batch already sent; the unsent ones fail here.
                connectionLost(error)
                for _ in index..<messages.count { tracker(.failure(error)) }
                return
            }
            if options.confirms {
                confirms.track(tracker)
            } else {
                tracker(.success(()))
            }
        }
    }

    func close() {
        flushAcks()
        stopping = true
        for consumer in consumers { consumer.channel.finish() }
        consumers = []
        for record in draining.values { record.channel.finish() }
        draining = [:]
        if connected, let c = conn {
            amqp_connection_close(c, AMQP_REPLY_SUCCESS)
        }
        if let c = conn { amqp_destroy_connection(c) }
        conn = nil
        connected = false
        failAllConfirms(closedError())
        hub.emit(.closed)
    }
}
