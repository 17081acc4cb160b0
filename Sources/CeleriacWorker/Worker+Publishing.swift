import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import FoundationEssentials
import Logging

extension Worker {
    /// Publishes with confirms, waiting through a reconnect for up to the grace period. Returns false when the
    /// broker stayed unreachable.
    func publishConfirmed(_ messages: [OutgoingMessage], what: String) async -> Bool {
        let deadline = ContinuousClock.now + configuration.gracePeriod
        while true {
            do {
                try await publisherConnection.publish(messages)
                return true
            } catch where error.isConnectionLevel && ContinuousClock.now < deadline && !Task.isCancelled {
                _ = await publisherConnection.waitUntilConnected(timeout: deadline - ContinuousClock.now)
            } catch {
                logger.error("publish failed", metadata: ["what": .string(what), "error": .string(error.description)])
                return false
            }
        }
    }

    /// Sends a result to the task's reply queue, unless the task asked for none. True when nothing needed sending.
    func publishResult(_ result: ResultMessage, for message: TaskMessage, task: RegisteredTask? = nil) async -> Bool {
        let ignore = message.ignoreResult ?? task?.options.ignoreResult ?? false
        guard let replyTo = message.replyTo, !ignore else { return true }
        let outgoing = ResultCodec.encode(result, replyTo: replyTo, correlationID: message.correlationID ?? message.id)
        return await publishConfirmed([outgoing], what: "result of \(message.id)")
    }

    /// Puts a copy of the delivery in the dead-letter queue with the reason, then acks the original.
    func deadLetter(_ delivery: Delivery, queue: String, reason: String, label: String) async {
        var props = delivery.properties
        var headers = props.headers ?? [:]
        headers[HeaderKey.deadReason] = .string(reason)
        headers[HeaderKey.deadQueue] = .string(queue)
        headers[HeaderKey.deadWorker] = .string(configuration.hostname)
        props.headers = headers
        props.deliveryMode = 2
        let copy = OutgoingMessage(exchange: Topology.deadLetterExchange, routingKey: queue, body: delivery.body, properties: props)
        observer.messageDeadLettered(queue: queue, reason: label)
        if await publishConfirmed([copy], what: "dead letter") {
            await consumerConnection.ack(delivery.tag)
        } else {
            // Could not store it elsewhere: reject without requeue would lose it, so leave it unacked.
            logger.error("could not dead-letter a message; it stays unacked and will be redelivered", metadata: ["queue": .string(queue)])
        }
    }

    /// Parks an early message in the broker's delay topology and acks it.
    func park(_ delivery: Delivery, _ message: TaskMessage, queue: String, log: Logger) async {
        observer.taskParked(name: message.name, queue: queue)
        if await republish(message, queue: queue, log: log) {
            await consumerConnection.ack(delivery.tag)
        }
    }

    /// Publishes a (modified) copy of a task back to its queue; one at least a second early goes through the
    /// delay topology.
    func republish(_ message: TaskMessage, queue: String, log: Logger) async -> Bool {
        let key = queue
        let outgoing: OutgoingMessage
        if let eta = message.eta, eta.timeIntervalSinceNow >= 1 {
            let seconds = Int(eta.timeIntervalSinceNow.rounded(.down))
            outgoing = TaskCodec.encode(message, routingKey: Topology.delayRoutingKey(seconds: seconds, routingKey: key),
                                        exchange: Topology.delayLevel(Topology.delayLevels - 1))
        } else {
            outgoing = TaskCodec.encode(message, routingKey: key)
        }
        return await publishConfirmed([outgoing], what: "republish \(message.id)")
    }

    /// After a success: the next chain step (with the result prepended) and link callbacks. Returns the
    /// `children` entries for the result.
    func publishFollowUps(after message: TaskMessage, result: JSONValue, queue: String, log: Logger) async -> [JSONValue] {
        var children: [JSONValue] = []
        var outgoing: [OutgoingMessage] = []
        if var chain = message.embed.chain, let next = chain.popLast() {
            if var step = SignatureMessage.message(from: next, parent: message, result: result) {
                step.message.embed.chain = chain
                outgoing.append(TaskCodec.encode(step.message, routingKey: step.queue ?? queue))
                children.append(.array([.array([.string(step.message.id), .null]), .null]))
            } else {
                log.error("chain step is not a valid signature; the chain stops here", metadata: ["signature": .string(next.jsonString)])
            }
        }
        for callback in message.embed.callbacks ?? [] {
            if let step = SignatureMessage.message(from: callback, parent: message, result: result) {
                outgoing.append(TaskCodec.encode(step.message, routingKey: step.queue ?? queue))
                children.append(.array([.array([.string(step.message.id), .null]), .null]))
            }
        }
        if !outgoing.isEmpty { _ = await publishConfirmed(outgoing, what: "follow-ups of \(message.id)") }
        return children
    }

    /// After a failure: each errback as a one-argument task with the failed task's id (the cross-language form).
    func publishErrbacks(after message: TaskMessage, queue: String, log: Logger) async {
        guard let errbacks = message.embed.errbacks, !errbacks.isEmpty else { return }
        let group = TaskMessage.newID()
        var outgoing: [OutgoingMessage] = []
        for (i, errback) in errbacks.enumerated() {
            if var step = SignatureMessage.message(from: errback, parent: message, result: .string(message.id)) {
                step.message.groupID = group
                step.message.groupIndex = i
                outgoing.append(TaskCodec.encode(step.message, routingKey: step.queue ?? queue))
            }
        }
        if !outgoing.isEmpty { _ = await publishConfirmed(outgoing, what: "errbacks of \(message.id)") }
    }
}

/// Turns a Celery signature (JSON) into the task message a worker publishes after its parent finished.
enum SignatureMessage {
    static func message(from signature: JSONValue, parent: TaskMessage, result: JSONValue) -> (message: TaskMessage, queue: String?)? {
        guard let sig = signature.objectValue, let name = sig["task"]?.stringValue else { return nil }
        let options = sig["options"]?.objectValue ?? [:]
        let immutable = sig["immutable"]?.boolValue ?? false
        var args = sig["args"]?.arrayValue ?? []
        if !immutable { args.insert(result, at: 0) }
        let kwargs = sig["kwargs"]?.objectValue ?? [:]
        var m = TaskMessage(id: options["task_id"]?.stringValue ?? TaskMessage.newID(), name: name, args: args, kwargs: kwargs)
        m.rootID = parent.rootID ?? parent.id
        m.parentID = parent.id
        m.replyTo = options["reply_to"]?.stringValue ?? parent.replyTo
        m.groupID = options["group_id"]?.stringValue
        m.groupIndex = options["group_index"]?.intValue.map { Int($0) }
        if let p = options["priority"]?.intValue { m.priority = UInt8(clamping: p) }
        if let c = options["countdown"]?.doubleValue { m.eta = Date().addingTimeInterval(c) }
        if let link = options["link"] { m.embed.callbacks = link.arrayValue ?? [link] }
        if let linkError = options["link_error"] { m.embed.errbacks = linkError.arrayValue ?? [linkError] }
        if let chord = options["chord"], !chord.isNull { m.embed.chord = chord }
        return (m, options["queue"]?.stringValue)
    }
}
