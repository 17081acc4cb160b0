import CRabbitMQ

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The librabbitmq connection itself, owned by exactly one OS thread for its whole life.
///
/// Not Sendable on purpose: it is created inside the thread body (see ``AMQPConnection``), so the compiler
/// rejects any attempt to touch it from elsewhere. Everything that reaches it arrives as a ``ConnectionJob``.
///
/// Channel use: channel 1 carries publishes, consumers and acks; channel 2 carries declarations, purges and
/// basic.get, so that a failed declaration (406, 404) closes only channel 2 and never the consumers.
final class ConnectionCore {
    typealias Completion<T> = @Sendable (Result<T, AMQPError>) -> Void

    struct ConsumerRecord {
        let tag: String
        let queue: String
        let prefetch: UInt16
        let noAck: Bool
        let exclusive: Bool
        let arguments: FieldTable
        let channel: UnboundedChannel<Delivery>
    }

    static let mainChannel: UInt16 = 1
    static let adminChannel: UInt16 = 2

    /// The brokers to try, in order (the URL and its alternates), and when to try the next; `url` is the one in
    /// use or being tried.
    var failover: FailoverCursor<SystemRandomNumberGenerator>
    var url: AMQPURL { failover.current }
    let options: AMQPConnection.Options
    let inbox: Inbox
    let hub: EventHub

    var conn: OpaquePointer?
    var connected = false
    var everConnected = false
    var stopping = false
    var adminOpen = false
    var recovering = false
    /// Bumped whenever delivery tags become invalid (reconnect or channel 1 reopened).
    var generation: UInt64 = 0
    var connectionCount: UInt64 = 0

    /// The declarations made again after a reconnect.
    var ledger = TopologyLedger()
    var consumers: [ConsumerRecord] = []
    /// Consumers cancelled while deliveries for them still waited in librabbitmq's frame queue (they arrived during
    /// the cancel's round trip, ahead of `cancel-ok`): those deliveries still go to their stream, as RabbitMQ meant,
    /// and the stream ends once the queue is read (``finishDrainedConsumers()``).
    var draining: [String: ConsumerRecord] = [:]

    /// Publishes of channel 1 waiting for their confirm, and since when the broker blocks the connection.
    var confirms = ConfirmTracker()

    /// Settled tags of channel 1 in this generation; background acks are coalesced through it (flushAcks()).
    var acks = AckTracker()

    init(url: AMQPURL, options: AMQPConnection.Options, inbox: Inbox, hub: EventHub) {
        self.failover = FailoverCursor(
            urls: url.failoverOrder, base: options.reconnectBase, cap: options.reconnectCap,
            now: .now, random: SystemRandomNumberGenerator())
        self.options = options
        self.inbox = inbox
        self.hub = hub
    }

    // MARK: - The thread's loop

    func run() {
        while !stopping {
            for job in inbox.takeAll() {
                if stopping { job.fail(closedError()) } else { job.run(self) }
            }
            flushAcks()
            failConfirmsIfBlockedTooLong()
            if stopping { break }
            if connected {
                pump()
            } else if everConnected {
                reconnectIfDue()
            } else {
                sleep(untilReadable: nil, timeoutMS: 1000)
            }
        }
        for job in inbox.close() { job.fail(closedError()) }
    }

    func closedError() -> AMQPError {
        AMQPError(
            .closed, operation: "use connection \(options.name)", hint: "The connection was closed by this process")
    }

    /// Reads what the broker sent, and otherwise sleeps until the socket is readable or a job arrives.
    func pump() {
        var processed = 0
        // Frames already read into librabbitmq's buffers are not visible to poll(2): drain them first.
        while connected, let c = conn, amqp_frames_enqueued(c) != 0 || amqp_data_in_buffer(c) != 0 {
            readFrame()
            processed += 1
            if processed >= 256, inbox.hasJobs { return }
        }
        guard connected, let c = conn else { return }
        if processed > 0 && !consumers.isEmpty {
            // Deliveries just went out: their acks usually follow within microseconds. Yielding the CPU a few
            // times (to the task that handles them) picks those acks up without a wake-pipe round trip.
            for _ in 0..<64 {
                if inbox.hasJobs { return }
                sched_yield()
            }
        }
        let heartbeatMS = url.heartbeat > 0 ? min(url.heartbeat * 1000 / 4, 1000) : 1000
        // A TLS socket may hold decrypted bytes that poll(2) cannot see, so it polls on a short timer.
        let timeout = url.tls ? 5 : heartbeatMS
        if sleep(untilReadable: amqp_get_sockfd(c), timeoutMS: timeout) || url.tls || url.heartbeat > 0 {
            // Also on timeouts: a zero-timeout read lets librabbitmq send due heartbeats and notice a silent broker.
            var read = 0
            while connected, readFrame() {
                read += 1
                if read >= 256, inbox.hasJobs { break }
            }
            if read > 0 && !consumers.isEmpty {
                for _ in 0..<64 {
                    if inbox.hasJobs { return }
                    sched_yield()
                }
            }
        }
    }

    /// Blocks in poll(2) on the socket (if any) and the wake pipe. Returns true when the socket is readable.
    @discardableResult
    func sleep(untilReadable fd: Int32?, timeoutMS: Int) -> Bool {
        guard inbox.prepareToSleep() else { return false }
        var fds = [pollfd(fd: inbox.wakeReadFD, events: Int16(POLLIN), revents: 0)]
        if let fd { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
        let rc = poll(&fds, nfds_t(fds.count), Int32(timeoutMS))
        inbox.didWake(drainPipe: fds[0].revents != 0)
        return rc > 0 && fds.count > 1 && fds[1].revents != 0
    }

    /// Reads and handles one frame without blocking. Returns false when nothing was there.
    @discardableResult
    func readFrame() -> Bool {
        guard let c = conn else { return false }
        amqp_maybe_release_buffers(c)
        var frame = amqp_frame_t()
        var tv = timeval(tv_sec: 0, tv_usec: 0)
        let rc = amqp_simple_wait_frame_noblock(c, &frame, &tv)
        if rc == AMQP_STATUS_TIMEOUT.rawValue { return false }
        guard rc == AMQP_STATUS_OK.rawValue else {
            connectionLost(AMQPError(status: rc, operation: "read from \(url.endpoint)"))
            return false
        }
        guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else { return true }
        handle(method: frame.payload.method, channel: frame.channel)
        if !draining.isEmpty { finishDrainedConsumers() }
        return true
    }

    /// Ends the streams of cancelled consumers once no frame received before their `cancel-ok` is left to read
    /// (or the connection is gone).
    func finishDrainedConsumers() {
        if let c = conn, connected, amqp_frames_enqueued(c) != 0 { return }
        for record in draining.values { record.channel.finish() }
        draining = [:]
    }

    func handle(method: amqp_method_t, channel: UInt16) {
        guard let c = conn else { return }
        switch method.id {
        case AMQP_BASIC_DELIVER_METHOD:
            let d = method.decoded!.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee
            let consumerTag = CDecode.string(d.consumer_tag)
            let tag = DeliveryTag(generation: generation, channel: channel, value: d.delivery_tag)
            let redelivered = d.redelivered != 0
            let exchange = CDecode.string(d.exchange)
            let routingKey = CDecode.string(d.routing_key)
            var message = amqp_message_t()
            let r = amqp_read_message(c, channel, &message, 0)
            // The operation text is built only on failure: this runs once per delivery.
            if r.reply_type != AMQP_RESPONSE_NORMAL,
                let error = AMQPError(reply: r, operation: "read delivery on \(url.endpoint)")
            {
                connectionLost(error)
                return
            }
            let delivery = Delivery(
                tag: tag, consumerTag: consumerTag, redelivered: redelivered, exchange: exchange,
                routingKey: routingKey, properties: CDecode.properties(message.properties),
                body: CDecode.bytes(message.body), messageCount: nil)
            amqp_destroy_message(&message)
            if let consumer = consumers.first(where: { $0.tag == consumerTag }) ?? draining[consumerTag] {
                if consumer.noAck && channel == Self.mainChannel { acks.settled(tag.value) }
                consumer.channel.yield(delivery)
            } else if channel == Self.mainChannel {
                // A delivery for a consumer that was cancelled meanwhile: hand it back to the queue.
                flushAcks()
                amqp_basic_reject(c, channel, tag.value, 1)
                acks.settled(tag.value)
            }
        case AMQP_BASIC_ACK_METHOD:
            let a = method.decoded!.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            confirms.resolve(upTo: a.delivery_tag, multiple: a.multiple != 0, nackError: nil)
        case AMQP_BASIC_NACK_METHOD:
            let n = method.decoded!.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            confirms.resolve(
                upTo: n.delivery_tag, multiple: n.multiple != 0,
                nackError: AMQPError(
                    .publishNacked, operation: "basic.publish",
                    hint: "The broker could not take the message (queue full with reject-publish, or an internal error)"
                ))
        case AMQP_BASIC_RETURN_METHOD:
            let r = method.decoded!.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            let error = AMQPError(
                .unroutable,
                operation:
                    "basic.publish exchange '\(CDecode.string(r.exchange))' routing key '\(CDecode.string(r.routing_key))'",
                replyCode: r.reply_code, reason: CDecode.string(r.reply_text),
                hint: "No queue is bound for this routing key; declare the queue first")
            var message = amqp_message_t()
            let rr = amqp_read_message(c, channel, &message, 0)
            if let e = AMQPError(reply: rr, operation: "read returned message") { connectionLost(e); return }
            amqp_destroy_message(&message)
            confirms.returned(error)
        case AMQP_CHANNEL_CLOSE_METHOD:
            let m = method.decoded!.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let error = AMQPError(
                channelClose: m.reply_code, text: CDecode.string(m.reply_text), operation: "channel \(channel)")
            var ok = amqp_channel_close_ok_t(dummy: 0)
            amqp_send_method(c, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok)
            if channel == Self.mainChannel { recoverMainChannel(after: error) } else { adminOpen = false }
        case AMQP_CONNECTION_CLOSE_METHOD:
            let m = method.decoded!.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let error = AMQPError(
                connectionClose: m.reply_code, text: CDecode.string(m.reply_text),
                operation: "connection \(url.endpoint)")
            var ok = amqp_connection_close_ok_t(dummy: 0)
            amqp_send_method(c, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok)
            connectionLost(error)
        case AMQP_CONNECTION_BLOCKED_METHOD:
            let b = method.decoded!.assumingMemoryBound(to: amqp_connection_blocked_t.self).pointee
            confirms.blocked(at: .now)
            hub.emit(.blocked(CDecode.string(b.reason)))
        case AMQP_CONNECTION_UNBLOCKED_METHOD:
            confirms.unblocked()
            hub.emit(.unblocked)
        case AMQP_BASIC_CANCEL_METHOD:
            let m = method.decoded!.assumingMemoryBound(to: amqp_basic_cancel_t.self).pointee
            let tag = CDecode.string(m.consumer_tag)
            if let i = consumers.firstIndex(where: { $0.tag == tag }) {
                consumers[i].channel.finish()
                consumers.remove(at: i)
            }
            hub.emit(.consumerCancelled(tag: tag))
        default:
            break
        }
    }

    /// A publish sent just before the broker blocked the connection waits for a confirm that cannot come while
    /// the block lasts (the broker stops reading). Past ``AMQPConnection/Options/blockedTimeout`` those waits end
    /// with `blocked`, as a publish that finds the connection blocked does: the bound holds either way. Such a
    /// message may still arrive once the broker unblocks (a retry may duplicate it).
    func failConfirmsIfBlockedTooLong() {
        guard confirms.blockedTooLong(now: .now, timeout: options.blockedTimeout) else { return }
        failAllConfirms(
            AMQPError(
                .blocked, operation: "basic.publish", reason: "the broker blocks publishers",
                hint: "RabbitMQ raised a memory or disk alarm; free resources on the broker or consume faster"))
    }

    func failAllConfirms(_ error: AMQPError) {
        for callback in confirms.removeAll() { callback(.failure(error)) }
    }

    // MARK: - Connecting

    /// The first connect, asked for by the user: errors go back to the caller and there is no retry.
    ///
    /// With alternates, each broker is tried once in order; the error of the last one is returned.
    func connectFirst() -> Result<Void, AMQPError> {
        if connected { return .success(()) }
        var lastError: AMQPError?
        for index in failover.urls.indices {
            failover.select(index)
            do {
                try openConnection()
                everConnected = true
                hub.emit(.connected(generation: connectionCount))
                return .success(())
            } catch {
                lastError = error
                // Bad credentials or vhost are the same on every node of a cluster: report them at once.
                if error.code == .accessRefused { break }
            }
        }
        failover.select(0)
        return .failure(lastError!)
    }

    func openConnection() throws(AMQPError) {
        let endpoint = url.endpoint
        guard let c = amqp_new_connection() else {
            throw AMQPError(
                .protocolError, operation: "connect \(endpoint)",
                reason: "amqp_new_connection returned NULL (out of memory?)")
        }
        var ok = false
        defer { if !ok { amqp_destroy_connection(c) } }

        let socket: OpaquePointer?
        if url.tls {
            socket = amqp_ssl_socket_new(c)
            guard let socket else {
                throw AMQPError(.tlsFailed, operation: "connect \(endpoint)", reason: "cannot create TLS socket")
            }
            if let ca = url.caCertFile {
                let rc = amqp_ssl_socket_set_cacert(socket, ca)
                if rc != 0 {
                    throw AMQPError(
                        .tlsFailed, operation: "connect \(endpoint)", reason: "cannot load CA file '\(ca)'",
                        hint: "Check the cacertfile path in the broker URL")
                }
            }
            if let cert = url.certFile, let key = url.keyFile {
                let rc = amqp_ssl_socket_set_key(socket, cert, key)
                if rc != 0 {
                    throw AMQPError(
                        .tlsFailed, operation: "connect \(endpoint)",
                        reason: "cannot load client certificate '\(cert)' / key '\(key)'",
                        hint: "Check certfile and keyfile in the broker URL")
                }
            }
            amqp_ssl_socket_set_verify_peer(socket, url.verifyPeer ? 1 : 0)
            amqp_ssl_socket_set_verify_hostname(socket, url.verifyPeer ? 1 : 0)
        } else {
            socket = amqp_tcp_socket_new(c)
            guard socket != nil else {
                throw AMQPError(.protocolError, operation: "connect \(endpoint)", reason: "cannot create TCP socket")
            }
        }
        var tv = timeval(
            tv_sec: Int(url.connectionTimeout),
            tv_usec: Int((url.connectionTimeout - url.connectionTimeout.rounded(.down)) * 1_000_000))
        let openStatus = amqp_socket_open_noblock(socket, url.host, Int32(url.port), &tv)
        if openStatus != AMQP_STATUS_OK.rawValue {
            throw AMQPError(status: openStatus, operation: "connect \(endpoint)")
        }
        amqp_set_handshake_timeout(c, &tv)
        var rpcTV = timeval(tv_sec: Int(options.rpcTimeout), tv_usec: 0)
        amqp_set_rpc_timeout(c, &rpcTV)

        let login = withCArena { arena in
            var clientProperties = arena.table([
                "connection_name": .string(options.name),
                "product": .string("Celeriac"),
                "capabilities": .table([
                    "connection.blocked": .bool(true),
                    "consumer_cancel_notify": .bool(true),
                    "publisher_confirms": .bool(true),
                    "basic.nack": .bool(true),
                    "authentication_failure_close": .bool(true),
                ]),
            ])
            return crmq_login_plain(
                c, url.vhost, Int32(url.channelMax), Int32(url.frameMax), Int32(url.heartbeat),
                &clientProperties, url.user, url.password)
        }
        if let error = AMQPError(reply: login, operation: "login to \(endpoint) vhost '\(url.vhost)' as '\(url.user)'")
        {
            if error.code == .connectionLost || error.code == .connectionClosed {
                // RabbitMQ drops the socket on bad credentials when the client does not ask for a close.
                throw AMQPError(
                    .accessRefused, operation: error.operation, reason: error.reason,
                    hint: "Check the user name, password and virtual host in the broker URL")
            }
            throw error
        }
        amqp_channel_open(c, Self.mainChannel)
        if let error = AMQPError(reply: amqp_get_rpc_reply(c), operation: "channel.open on \(endpoint)") { throw error }
        if options.confirms {
            amqp_confirm_select(c, Self.mainChannel)
            if let error = AMQPError(reply: amqp_get_rpc_reply(c), operation: "confirm.select on \(endpoint)") {
                throw error
            }
        }
        ok = true
        conn = c
        connected = true
        confirms.unblocked()
        adminOpen = false
        generation += 1
        acks.reset()
        connectionCount += 1
        confirms.restartNumbering()
        failover.connected()
    }

    func reconnectIfDue() {
        let wait = failover.wait(now: .now)
        if wait > .zero {
            let ms = max(1, Int(wait / .milliseconds(1)))
            sleep(untilReadable: nil, timeoutMS: min(ms, 1000))
            return
        }
        do {
            try openConnection()
            try restoreTopology()
            // Announced once everything is back, so "connected" means consumers are consuming again.
            hub.emit(.connected(generation: connectionCount))
        } catch {
            if connected { connectionLost(error) } else { failover.failed(now: .now) }
        }
    }

    /// Replays every declaration and consumer after a reconnect, in the order they were first made.
    func restoreTopology() throws(AMQPError) {
        for step in ledger.replayPlan {
            switch step {
            case .exchange(let e): try declare(exchange: e, remember: false)
            case .queue(let q): _ = try declare(queue: q, passive: false, remember: false)
            case .exchangeBinding(let b): try bind(exchange: b, remember: false)
            case .binding(let b): try bind(b, remember: false)
            }
        }
        for consumer in consumers {
            do {
                try startConsumer(consumer)
            } catch  where error.code == .channelClosed && connected {
                // RabbitMQ cannot serve this consumer's queue now (gone, or unavailable on a cluster). check() has
                // reopened channel 1 and re-created every consumer it could (recoverMainChannel), dropping the ones
                // that failed: their owners see their streams end. The connection stays up for the others.
                return
            }
        }
    }

    func connectionLost(_ error: AMQPError) {
        guard connected else { return }
        connected = false
        adminOpen = false
        if let c = conn {
            amqp_destroy_connection(c)
            conn = nil
        }
        finishDrainedConsumers()
        failAllConfirms(error)
        hub.emit(.disconnected(error))
        // The first attempt is immediate-ish (within the first backoff step).
        failover.lost(now: .now)
    }

    /// Channel 1 was closed by the broker (e.g. a publish to a missing exchange): reopen it and resubscribe.
    ///
    /// A consumer that cannot be re-created (its queue is gone: 404, or locked: 405) is dropped, its stream
    /// finished and `consumerCancelled` emitted; the others go on. Never recursive: a failure while recovering
    /// is handled by this loop, not by a nested recovery.
    func recoverMainChannel(after error: AMQPError) {
        guard conn != nil, !recovering else { return }
        recovering = true
        defer { recovering = false }
        generation += 1
        acks.reset()
        // Deliveries still queued for cancelled consumers belong to the closed channel: their streams end now.
        for record in draining.values { record.channel.finish() }
        draining = [:]
        failAllConfirms(error)
        do {
            try openMainChannel()
            var i = 0
            while i < consumers.count {
                let record = consumers[i]
                do {
                    try startConsumer(record)
                    i += 1
                } catch  where error.code == .channelClosed {
                    consumers.remove(at: i)
                    record.channel.finish()
                    hub.emit(.consumerCancelled(tag: record.tag))
                    try openMainChannel()
                }
            }
        } catch {
            connectionLost(error)
        }
    }

    func openMainChannel() throws(AMQPError) {
        guard let c = conn else { throw AMQPError(.notConnected, operation: "channel.open") }
        confirms.restartNumbering()
        amqp_channel_open(c, Self.mainChannel)
        if let failure = AMQPError(reply: amqp_get_rpc_reply(c), operation: "channel.open") { throw failure }
        if options.confirms {
            amqp_confirm_select(c, Self.mainChannel)
            if let failure = AMQPError(reply: amqp_get_rpc_reply(c), operation: "confirm.select") { throw failure }
        }
    }
}
