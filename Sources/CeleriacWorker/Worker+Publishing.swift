import CeleriacBroker
import CeleriacMessaging
import CeleriacCanvas
import CeleriacCoordination
import CeleriacCore
import FoundationEssentials
import Logging

extension Worker {
    /// Publishes with confirms, waiting through a reconnect for up to the grace period. Returns false when the
    /// broker stayed unreachable.
    func publishConfirmed(_ messages: [OutgoingMessage], what: String) async -> Bool {
        let messages = signed(messages)
        let start = ContinuousClock.now
        let deadline = start + configuration.gracePeriod
        while true {
            do {
                try await publisherConnection.publish(messages)
                let took = ContinuousClock.now - start
                observer.publishConfirmed(seconds: Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18)
                return true
            } catch where error.isConnectionLevel && ContinuousClock.now < deadline && !Task.isCancelled {
                _ = await publisherConnection.waitUntilConnected(timeout: deadline - ContinuousClock.now)
            } catch {
                logger.error("publish failed", metadata: ["what": .string(what), "error": .string(error.description)])
                return false
            }
        }
    }

    /// Runs `wait` (a confirm wait after the task's body has ended) with the task's slot lent out, so the slot runs
    /// other tasks meanwhile, as during a sub-second ETA wait: RabbitMQ confirms a persistent message only once it
    /// is on disk, several ms that a slot would otherwise spend idle. Nothing else changes: the task's message is
    /// acked only after `wait` returns, and prefetch bounds how many tasks wait at once. With acks_early the
    /// message is acked already and nothing would bound the waiters, so there the slot is kept.
    func outsideSlot<T>(_ wait: () async -> T) async -> T {
        guard !configuration.acksEarly else { return await wait() }
        await slots.release()
        let value = await wait()
        await slots.forceTake()   // over the limit for a moment: the caller releases it once the delivery is settled
        return value
    }

    /// Sends a result to the task's reply queue, unless the task asked for none. True when nothing needed sending.
    func publishResult(_ result: ResultMessage, for message: TaskMessage, task: RegisteredTask? = nil) async -> Bool {
        guard let outgoing = resultMessage(result, for: message, task: task) else { return true }
        let published = await publishConfirmed([outgoing], what: "result of \(message.id)")
        if !published { observer.resultPublishFailed() }
        return published
    }

    /// The result message to publish, or nil when the task asked for none.
    func resultMessage(_ result: ResultMessage, for message: TaskMessage, task: RegisteredTask? = nil) -> OutgoingMessage? {
        let ignore = message.ignoreResult ?? task?.options.ignoreResult ?? false
        guard let replyTo = message.replyTo, !ignore else { return nil }
        return ResultCodec.encode(result, replyTo: replyTo, correlationID: message.correlationID ?? message.id)
    }

    /// Puts a copy of the delivery in the dead-letter queue with the reason, then acks the original.
    func deadLetter(_ delivery: Delivery, queue: String, reason: String, label: String) async {
        var props = delivery.properties
        var headers = props.headers ?? [:]
        headers[HeaderKey.deadReason] = .string(reason)
        headers[HeaderKey.deadQueue] = .string(queue)
        headers[HeaderKey.deadWorker] = .string(configuration.hostname)
        headers[CoordinationTopology.deadAtHeader] = .int64(Int64(Date().timeIntervalSince1970))
        props.headers = headers
        await releaseUniqueLock(delivery)
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
        let now = configuration.clock.now
        if let eta = message.eta, Topology.delaySeconds(until: eta, from: now) >= 1 {
            let seconds = Topology.delaySeconds(until: eta, from: now)
            outgoing = TaskCodec.encode(message, routingKey: Topology.delayRoutingKey(seconds: seconds, routingKey: key),
                                        exchange: Topology.delayLevel(Topology.delayLevels - 1), now: now)
        } else {
            outgoing = TaskCodec.encode(message, routingKey: key, now: now)
        }
        return await publishConfirmed([outgoing], what: "republish \(message.id)")
    }

    /// After a success: the next chain step (with the result prepended; a group, chord or chain step is applied
    /// whole) and link callbacks. Returns the `children` entries for the result, or nil when the broker could not
    /// take them (the message then stays unacked and is redelivered).
    func publishFollowUps(after message: TaskMessage, result: JSONValue, queue: String, log: Logger) async -> [JSONValue]? {
        var plan = CanvasPlan()
        let planner = CanvasPlanner(defaultQueue: queue)
        if var chain = message.embed.chain, let next = chain.popLast() {
            do {
                let node = try CanvasNode(json: next)
                var rest: [CanvasNode] = []
                for json in chain.reversed() { rest.append(try CanvasNode(json: json)) }
                let step = planner.plan(node, previous: result, continuation: rest, parent: message, now: configuration.clock.now)
                plan.messages += step.messages
                plan.chords += step.chords
            } catch {
                log.error("chain step is not a valid signature; the chain stops here", metadata: ["error": .string(error.description)])
            }
        }
        for callback in message.embed.callbacks ?? [] {
            guard let node = try? CanvasNode(json: callback) else {
                log.error("link callback is not a valid signature; skipped", metadata: ["signature": .string(callback.jsonString)])
                continue
            }
            let step = planner.plan(node, previous: result, parent: message, now: configuration.clock.now)
            plan.messages += step.messages
            plan.chords += step.chords
        }
        if plan.messages.isEmpty { return [] }
        guard await publishPlan(plan, what: "follow-ups of \(message.id)") else { return nil }
        return plan.messages.map { .array([.array([.string($0.message.id), .null]), .null]) }
    }

    /// After a failure: each errback as a one-argument task with the failed task's id (the cross-language form).
    func publishErrbacks(after message: TaskMessage, queue: String, log: Logger) async {
        guard let errbacks = message.embed.errbacks, !errbacks.isEmpty else { return }
        let group = TaskMessage.newID()
        var plan = CanvasPlan()
        let planner = CanvasPlanner(defaultQueue: queue)
        for (i, errback) in errbacks.enumerated() {
            guard let node = try? CanvasNode(json: errback) else { continue }
            var step = planner.plan(node, previous: .string(message.id), parent: message, now: configuration.clock.now)
            for j in step.messages.indices {
                step.messages[j].message.groupID = group
                step.messages[j].message.groupIndex = i
            }
            plan.messages += step.messages
            plan.chords += step.chords
        }
        if !plan.messages.isEmpty { _ = await publishPlan(plan, what: "errbacks of \(message.id)") }
    }
}
