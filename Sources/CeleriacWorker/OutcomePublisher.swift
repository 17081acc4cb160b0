import CeleriacBroker
import CeleriacCanvas
import CeleriacCoordination
import CeleriacCore
import CeleriacMessaging
import CeleriacTracing
import FoundationEssentials
import Logging

/// Everything a worker sends about the tasks it handled, each confirmed by the broker before the task's message is
/// acked: results to the caller's reply queue, retries and parked messages through the delay topology, canvas
/// follow-ups, and dead letters with their reason. Signs task messages when signing is on.
///
/// A confirmed publish waits through a reconnect for up to the grace period; when the broker stays away it
/// returns false and the caller leaves the delivery unacked, so the broker delivers it again (at-least-once).
final class OutcomePublisher: Sendable {
    struct Settings: Sendable {
        var hostname: String
        var gracePeriod: Duration
        var signer: MessageSigner?
        var clock: any CeleriacClock
        /// Queues whose task messages go out in the compact form (retries, follow-ups, chord joins).
        var compactQueues: Set<String> = []
    }

    /// The form of task messages published to `queue`.
    func form(of queue: String) -> MessageForm { settings.compactQueues.contains(queue) ? .compact : .celery }

    let settings: Settings
    /// Where everything is published (a confirming connection); chord join queues are declared there too.
    let connection: any BrokerLink & MessagePublishing & TopologyDeclaring
    /// Where the original deliveries are acked (the consuming connection).
    let settler: any DeliverySettling
    let observer: any WorkerObserver
    let logger: Logger
    let tracing: TaskTracing?
    /// Gives back a unique-task lock held by a message that goes to the dead-letter queue undecoded.
    let releaseUnique: @Sendable (Delivery) async -> Void

    init(
        settings: Settings, connection: any BrokerLink & MessagePublishing & TopologyDeclaring,
        settler: any DeliverySettling, observer: any WorkerObserver,
        logger: Logger, tracing: TaskTracing?, releaseUnique: @escaping @Sendable (Delivery) async -> Void
    ) {
        self.settings = settings
        self.connection = connection
        self.settler = settler
        self.observer = observer
        self.logger = logger
        self.tracing = tracing
        self.releaseUnique = releaseUnique
    }

    /// Publishes with confirms, waiting through a reconnect for up to the grace period. Returns false when the
    /// broker stayed unreachable.
    func publishConfirmed(_ messages: [OutgoingMessage], what: String) async -> Bool {
        let messages = settings.signer?.sign(messages) ?? messages
        let start = ContinuousClock.now
        let deadline = start + settings.gracePeriod
        while true {
            do {
                try await connection.publish(messages)
                let took = ContinuousClock.now - start
                observer.publishConfirmed(
                    seconds: Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18)
                return true
            } catch  where error.isConnectionLevel && ContinuousClock.now < deadline && !Task.isCancelled {
                _ = await connection.waitUntilConnected(timeout: deadline - ContinuousClock.now)
            } catch {
                logger.error("publish failed", metadata: ["what": .string(what), "error": .string(error.description)])
                return false
            }
        }
    }

    /// Sends a result to the task's reply queue, unless the task asked for none. True when nothing needed sending.
    func publishResult(_ result: ResultMessage, for message: TaskMessage, task: RegisteredTask? = nil) async -> Bool {
        guard let outgoing = resultMessage(result, for: message, task: task) else { return true }
        let published = await publishConfirmed([outgoing], what: "result of \(message.id)")
        if !published { observer.resultPublishFailed() }
        return published
    }

    /// The result message to publish, or nil when the task asked for none.
    func resultMessage(_ result: ResultMessage, for message: TaskMessage, task: RegisteredTask? = nil)
        -> OutgoingMessage?
    {
        let ignore = message.ignoreResult ?? task?.options.ignoreResult ?? false
        guard let replyTo = message.replyTo, !ignore else { return nil }
        return ResultCodec.encode(result, replyTo: replyTo, correlationID: message.correlationID ?? message.id)
    }

    /// Puts a copy of the delivery in the dead-letter queue with the reason, then acks the original. `label` is
    /// the short reason metrics count it under.
    func deadLetter(_ delivery: Delivery, queue: String, reason: String, label: String) async {
        var props = delivery.properties
        var headers = props.headers ?? [:]
        headers[HeaderKey.deadReason] = .string(reason)
        headers[HeaderKey.deadQueue] = .string(queue)
        headers[HeaderKey.deadWorker] = .string(settings.hostname)
        headers[CoordinationTopology.deadAtHeader] = .int64(Int64(Date().timeIntervalSince1970))
        props.headers = headers
        await releaseUnique(delivery)
        props.deliveryMode = 2
        let copy = OutgoingMessage(
            exchange: Topology.deadLetterExchange, routingKey: queue, body: delivery.body, properties: props)
        observer.messageDeadLettered(queue: queue, reason: label)
        if await publishConfirmed([copy], what: "dead letter") {
            await settler.ack(delivery.tag)
        } else {
            // Could not store it elsewhere: reject without requeue would lose it, so leave it unacked.
            logger.error(
                "could not dead-letter a message; it stays unacked and will be redelivered",
                metadata: ["queue": .string(queue)])
        }
    }

    /// Parks an early message in the broker's delay topology and acks it.
    func park(_ delivery: Delivery, _ message: TaskMessage, queue: String) async {
        observer.taskParked(name: message.name, queue: queue)
        if await republish(message, queue: queue) {
            await settler.ack(delivery.tag)
        }
    }

    /// Publishes a (modified) copy of a task back to its queue; one at least a second early goes through the
    /// delay topology.
    func republish(_ message: TaskMessage, queue: String) async -> Bool {
        await publishConfirmed(
            [outgoing(message, queue: queue, now: settings.clock.now)], what: "republish \(message.id)")
    }

    /// A task message for `queue`: through the delay topology when its ETA is at least a second away.
    func outgoing(_ message: TaskMessage, queue: String, now: Date) -> OutgoingMessage {
        if let eta = message.eta, Topology.delaySeconds(until: eta, from: now) >= 1 {
            let seconds = Topology.delaySeconds(until: eta, from: now)
            return TaskCodec.encode(
                message, routingKey: Topology.delayRoutingKey(seconds: seconds, routingKey: queue),
                exchange: Topology.delayLevel(Topology.delayLevels - 1), now: now, form: form(of: queue))
        }
        return TaskCodec.encode(message, routingKey: queue, now: now, form: form(of: queue))
    }

    /// Declares the plan's chord join queues, then publishes its messages with confirms (in producer spans when
    /// tracing is on). False when the broker could not take them (the caller leaves its message unacked so it is
    /// redelivered).
    func publishPlan(_ plan: CanvasPlan, what: String) async -> Bool {
        var plan = plan
        let sends = SendSpans.starting(&plan, tracing: tracing)
        for chord in plan.chords {
            do {
                try await connection.declare(ChordQueues.joinQueue(chord), recreateAfterReconnect: false)
            } catch {
                logger.error(
                    "could not declare a chord join queue",
                    metadata: ["chord": .string(chord.id), "error": .string(error.description)])
                return false
            }
        }
        guard !plan.messages.isEmpty else { return true }
        let now = settings.clock.now
        let published = await publishConfirmed(
            plan.messages.map { outgoing($0.message, queue: $0.queue, now: now) }, what: what)
        sends.end(published: published)
        return published
    }

    /// Publishes one task message (a chord join) in a producer span when tracing is on.
    func publishTask(_ message: TaskMessage, queue: String, what: String) async -> Bool {
        var message = message
        let sends = tracing.map { SendSpans([$0.startSend(&message, queue: queue)]) } ?? .none
        let published = await publishConfirmed(
            [TaskCodec.encode(message, routingKey: queue, form: form(of: queue))], what: what)
        sends.end(published: published)
        return published
    }
}
