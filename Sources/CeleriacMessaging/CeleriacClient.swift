import CeleriacBroker
import CeleriacCore
import CeleriacTracing
import FoundationEssentials
import Synchronization
import Tracing

/// Sends tasks to RabbitMQ in Celery's protocol v2 and receives their results in Celery's `rpc://` format.
///
/// One client holds two connections (publishing with confirms, and consuming its reply queue), one reply queue
/// named by a UUID and flagged as Celery flags it, and one long-lived consumer that demultiplexes results by
/// correlation id. Publishes return once the broker confirmed them.
///
/// ```swift
/// let client = CeleriacClient(configuration: .init(), broker: try AMQPBroker("amqp://localhost"))
/// try await client.start()
/// let sum = try await client.delay(Tasks.add, AddArgs(x: 2, y: 3)).get(timeout: .seconds(10))
/// ```
public final class CeleriacClient: Sendable {
    /// How a client sends and receives; the defaults are Celery's.
    public struct Configuration: Sendable {
        /// Queue used when a send names none. Celery's default is `celery`.
        public var defaultQueue: String
        /// Queues declared with `x-max-priority` (Celery's `task_queue_max_priority`).
        public var maxPriority: Int?
        /// How many results are kept for later `get` calls (ready results are evicted oldest first).
        public var resultCacheSize: Int
        /// How long a send keeps retrying while the broker is unreachable, before it throws.
        public var publishRetryWindow: Duration
        /// Consume a reply queue at all (off for fire-and-forget producers such as beat).
        public var receiveResults: Bool
        /// Prefix of the client's connection names as RabbitMQ shows them (management UI,
        /// `rabbitmqctl list_connections`): `<name>-publish` and `<name>-results`.
        public var connectionName: String
        /// Send a Celery `task-sent` event for every task published (Celery's `task_send_sent_event`), so
        /// Flower and `celeriac events` see tasks before a worker receives them.
        public var sendSentEvents: Bool
        /// Producer spans and trace context in the headers (README "Tracing"); off while this is a `NoOpTracer`.
        public var tracer: (any Tracer)? = InstrumentationSystem.tracer
        /// Signs every task message this client sends (workers with the same keys then verify them); nil = off.
        public var signer: MessageSigner? = nil
        /// Type of the queues this client declares (work queues, delay queues, chord join queues, its reply
        /// queue): quorum for RabbitMQ clusters, the same as the workers'.
        public var queueType: QueueType = .classic
        /// Queues that get task messages in Celeriac's compact form (``MessageForm/compact``): for queues only
        /// Celeriac workers consume. Give clients and workers the same set (the queues are declared with a
        /// dead-letter exchange, so declarations must agree).
        public var compactQueues: Set<String> = []
        /// How long the reply queue outlives a client that died without ``CeleriacClient/close()`` (`x-expires`).
        public var replyQueueExpiryMilliseconds: Int = 600_000
        /// How long a send waits while the broker blocks publishers (a memory or disk alarm) before it throws
        /// `CeleriacError.brokerBlocked(reason:)`.
        public var blockedTimeout: Duration = .seconds(30)
        /// The wall time a countdown counts from and messages are stamped with (`ManualClock` in tests, the same
        /// clock as the worker's and the broker's).
        public var clock: any CeleriacClock = SystemClock()

        /// A configuration with Celery's defaults (queue `celery`, no priorities), results received, a 10 000-entry
        /// result cache and a 30 s publish retry window; set the other properties afterwards.
        public init(
            defaultQueue: String = Topology.defaultQueue, maxPriority: Int? = nil,
            resultCacheSize: Int = 10_000, publishRetryWindow: Duration = .seconds(30), receiveResults: Bool = true,
            connectionName: String = "celeriac-client", sendSentEvents: Bool = false
        ) {
            self.sendSentEvents = sendSentEvents
            self.defaultQueue = defaultQueue
            self.maxPriority = maxPriority
            self.resultCacheSize = resultCacheSize
            self.publishRetryWindow = publishRetryWindow
            self.receiveResults = receiveResults
            self.connectionName = connectionName
        }
    }

    /// The settings this client was created with.
    public let configuration: Configuration
    /// The reply queue (`reply_to`) of every task this client sends.
    public let replyQueue: String
    /// The broker this client talks to (for logs: its description never shows a password).
    public let broker: any Broker
    package let publisher: any BrokerConnection
    let consumer: any BrokerConnection
    let router: ResultRouter
    /// nil when tracing is off.
    let tracing: TaskTracing?
    private let declaredQueues = Mutex<Set<String>>([])
    private let delayTopologyDeclared = Mutex(false)
    private let delayBoundQueues = Mutex<Set<String>>([])
    private let routing = Mutex<Task<Void, Never>?>(nil)
    /// Sends waiting for their confirm, by task id: a reply for the id ends the wait early (see ``send``).
    let settlers = Settlers()
    let sentEvents = SentEvents()

    /// A client of `broker`; nothing is connected before ``start()``.
    public init(configuration: Configuration = .init(), broker: any Broker) {
        self.configuration = configuration
        self.broker = broker
        self.replyQueue = UUID().uuidString.lowercased()
        self.publisher = broker.connection(
            .init(
                name: "\(configuration.connectionName)-publish", confirms: true,
                blockedTimeout: configuration.blockedTimeout))
        self.consumer = broker.connection(.init(name: "\(configuration.connectionName)-results", confirms: false))
        self.router = ResultRouter(capacity: configuration.resultCacheSize)
        self.tracing = TaskTracing(configuration.tracer)
    }

    /// Connects, declares the reply queue and starts the result consumer.
    ///
    /// - Throws: `CeleriacError.broker(operation:underlying:)` when the broker is unreachable or refuses login.
    public func start() async throws(CeleriacError) {
        do {
            try await publisher.connect()
            if configuration.sendSentEvents {
                try await publisher.declare(ExchangeSpec(SentEvents.exchange, kind: .topic, durable: true))
            }
            guard configuration.receiveResults else { return }
            try await consumer.connect()
            let spec = Topology.replyQueue(
                replyQueue, expiresMilliseconds: configuration.replyQueueExpiryMilliseconds,
                type: configuration.queueType)
            try await consumer.declare(spec)
            // Results are acked once routed, not consumed with no-ack: a result the broker sent just before the
            // connection died (heartbeat timeout, reset) is requeued and comes again after the reconnect instead of
            // being lost with the socket. A result that comes twice counts in `repeatedResults`.
            var stream = try await consumer.consume(queue: replyQueue, prefetch: 0).deliveries
            let router = self.router, consumer = self.consumer, replyQueue = self.replyQueue, settlers = self.settlers
            // The routing loop lives as long as the client (cancelled in close()). The transport re-creates the
            // consumer after a reconnect, so the stream goes on across broker restarts. It ends only when the
            // broker cancels the consumer (the reply queue was deleted): then the queue is declared again, and
            // waiters whose results went with the old queue end at their deadline with `resultTimeout`.
            // It runs on the result connection's own thread (the connection is a TaskExecutor): decoding a result
            // and handing it to its waiter costs no thread wake-up between the socket and the router.
            let task = Task(executorPreference: consumer.preferredExecutor) {
                while !Task.isCancelled {
                    for await delivery in stream {
                        guard let result = ResultCodec.decode(delivery) else {
                            consumer.ackInBackground(delivery.tag)  // not a result: nothing to wait for
                            continue
                        }
                        settlers.take(result.taskID)?.settle()
                        await router.deliver(result)
                        consumer.ackInBackground(delivery.tag)
                    }
                    while !Task.isCancelled {
                        do {
                            try await consumer.declare(spec)
                            stream = try await consumer.consume(queue: replyQueue, prefetch: 0).deliveries
                            break
                        } catch {
                            try? await Task.sleep(for: .seconds(1))
                        }
                    }
                }
            }
            routing.withLock { $0 = task }
        } catch {
            throw .broker(operation: "start client", underlying: error.description)
        }
    }

    /// Stops the result consumer, deletes this client's reply queue and closes both connections. Results that have not
    /// arrived yet are lost.
    public func close() async {
        routing.withLock { $0?.cancel() }
        // The reply queue outlives connection losses (Topology.replyQueue); a client that closes removes it.
        if configuration.receiveResults, consumer.isConnected { _ = try? await consumer.deleteQueue(replyQueue) }
        await publisher.close()
        await consumer.close()
    }

    /// A typed input as Celery arguments: positional in parameter order, as Python callers send them; anything
    /// else as kwargs.
    public static func arguments<Input, Output>(of task: TaskName<Input, Output>, _ input: Input) throws -> (
        [JSONValue], JSONObject
    ) {
        let json = try JSONBridge.encode(input)
        guard case .object(let object) = json else {
            throw CeleriacError.invalidArguments(
                task: task.name, reason: "the input must encode as a JSON object keyed by parameter name")
        }
        var args: [JSONValue] = []
        var kwargs = object
        for p in task.parameters {
            guard let v = object[p] else { break }
            args.append(v)
            kwargs[p] = nil
        }
        return (args, kwargs)
    }

    /// Sends a typed task.
    public func delay<Input, Output>(
        _ task: TaskName<Input, Output>, _ input: Input, options: SendOptions = SendOptions()
    ) async throws -> TaskHandle<Output> {
        let (args, kwargs) = try Self.arguments(of: task, input)
        let result = try await send(task.name, args: args, kwargs: kwargs, options: options)
        return TaskHandle(result: result)
    }

    /// Sends a task by name with JSON arguments (like Celery's `send_task`).
    ///
    /// `companions` are published in the same confirmed batch, on the same channel, right after the task message
    /// (beat sends its state snapshot this way, so the broker receives both or neither).
    public func send(
        _ name: String, args: [JSONValue] = [], kwargs: JSONObject = [:], options: SendOptions = SendOptions(),
        companions: [OutgoingMessage] = []
    ) async throws -> AsyncResult {
        var message = TaskMessage(id: options.taskID ?? TaskMessage.newID(), name: name, args: args, kwargs: kwargs)
        options.apply(to: &message, now: configuration.clock.now)
        if !configuration.receiveResults && message.replyTo == nil {
            message.ignoreResult = options.ignoreResult ?? true
        }
        message.replyTo = message.replyTo ?? (configuration.receiveResults ? replyQueue : nil)
        try await publish(
            message, queue: options.queue ?? configuration.defaultQueue, routingKey: options.routingKey,
            exchange: options.exchange,
            companions: companions, freshID: options.taskID == nil)
        return AsyncResult(
            id: message.id, name: name, client: self,
            ignored: message.ignoreResult == true || !configuration.receiveResults)
    }

    /// Publishes a prepared message (used by the worker for retries and chain steps, and by beat).
    ///
    /// A message with an ETA at least one second away goes through the broker's delay topology (wire spec §1.4),
    /// so no worker holds it in memory.
    ///
    /// `freshID`: the message's id was made up for this send (no earlier run of it can reply).
    public func publish(
        _ message: TaskMessage, queue: String, routingKey: String? = nil, exchange: String? = nil,
        companions: [OutgoingMessage] = [], freshID: Bool = false
    ) async throws {
        var message = message
        let sends = startSend(&message, queue: queue, exchange: exchange)
        try await ensureQueue(queue)
        let key = routingKey ?? queue
        var outgoing: OutgoingMessage
        let now = configuration.clock.now
        if let eta = message.eta, Topology.delaySeconds(until: eta, from: now) >= 1 {
            try await ensureDelayTopology(queue: queue, routingKey: key)
            let seconds = Topology.delaySeconds(until: eta, from: now)
            outgoing = TaskCodec.encode(
                message, routingKey: Topology.delayRoutingKey(seconds: seconds, routingKey: key),
                exchange: Topology.delayLevel(Topology.delayLevels - 1), now: now, form: form(of: queue))
        } else {
            outgoing = TaskCodec.encode(
                message, routingKey: key, exchange: exchange ?? "", now: now, form: form(of: queue))
        }
        outgoing.mandatory = false
        // A task whose id this send made up (so no earlier run can answer for it) and whose reply comes here: its
        // first reply (STARTED, SUCCESS, …) proves the broker delivered it, so the send need not also wait for the
        // confirm. For a persistent message the broker confirms only once it is on disk or acked, i.e. after the
        // worker finished, so this takes the confirm's fsync or ack round trip off `send(...).get()`.
        let settleOnReply = freshID && message.replyTo == replyQueue && configuration.receiveResults
        try await sends.around {
            try await publishWithRetry([outgoing] + companions, settleOnReplyTo: settleOnReply ? message.id : nil)
        }
        if configuration.sendSentEvents {
            publisher.publishInBackground(
                sentEvents.event(for: message, queue: queue, routingKey: key, exchange: exchange ?? ""))
        }
    }

    /// Publishes, retrying through reconnects for up to ``Configuration/publishRetryWindow``. With
    /// `settleOnReplyTo`, a reply for that task id ends each attempt's wait for the confirm early.
    func publishWithRetry(_ messages: [OutgoingMessage], settleOnReplyTo taskID: String? = nil) async throws {
        let messages = configuration.signer?.sign(messages) ?? messages
        let deadline = ContinuousClock.now + configuration.publishRetryWindow
        defer { if let taskID { _ = settlers.take(taskID) } }
        while true {
            do {
                var settler: PublishSettler?
                if let taskID {
                    let s = PublishSettler()
                    settlers.put(s, for: taskID)
                    settler = s
                }
                try await publisher.publish(messages, settler: settler)
                return
            } catch let error where error.code == .blocked {
                throw CeleriacError.brokerBlocked(reason: error.reason ?? "connection.blocked")
            } catch let error where error.isConnectionLevel && ContinuousClock.now < deadline {
                _ = await publisher.waitUntilConnected(timeout: deadline - ContinuousClock.now)
            } catch {
                throw CeleriacError.broker(operation: "publish", underlying: error.description)
            }
        }
    }

    /// The form of task messages sent to `queue`: compact when the configuration lists it.
    func form(of queue: String) -> MessageForm { configuration.compactQueues.contains(queue) ? .compact : .celery }

    func ensureQueue(_ queue: String) async throws {
        if declaredQueues.withLock({ $0.contains(queue) }) { return }
        let (exchange, spec, binding) = Topology.workQueue(
            queue, maxPriority: configuration.maxPriority, type: configuration.queueType, form: form(of: queue))
        do {
            try await publisher.declare(exchange)
            try await publisher.declare(spec)
            try await publisher.bind(binding)
        } catch {
            throw CeleriacError.broker(
                operation: "declare queue '\(queue)'",
                underlying: Topology.explainingFormConflict(error, queue: queue, form: form(of: queue)).description)
        }
        declaredQueues.withLock { _ = $0.insert(queue) }
    }

    /// Declares the delay topology once, and binds `queue` to its delivery exchange for `routingKey` once, so a
    /// delayed message comes back even to a queue whose workers (e.g. Python ones) did not bind it. The delayed
    /// message leaves the topology with the key `<bits>.<routingKey>` and goes straight to `queue` (with a custom
    /// exchange too: it is not routed through that exchange again).
    func ensureDelayTopology(queue: String, routingKey: String) async throws {
        if !delayTopologyDeclared.withLock({ $0 }) {
            try await DelayTopology.declare(on: publisher, queues: [], type: configuration.queueType)
            delayTopologyDeclared.withLock { $0 = true }
        }
        let bound = queue + "\u{0}" + routingKey
        if delayBoundQueues.withLock({ $0.contains(bound) }) { return }
        do {
            try await publisher.bind(
                BindingSpec(queue: queue, exchange: Topology.delayedDeliveryExchange, routingKey: "#.\(routingKey)"))
        } catch {
            throw CeleriacError.broker(
                operation: "bind '\(queue)' to the delayed-delivery exchange with key '#.\(routingKey)'",
                underlying: error.description)
        }
        delayBoundQueues.withLock { _ = $0.insert(bound) }
    }

    /// Final results received again for tasks that had already finished (a task re-run after a redelivery; the
    /// first result stands). At-least-once delivery made measurable on the client side.
    public var repeatedResults: Int { get async { await router.repeatedResults } }

    /// The latest state known for a task id (PENDING when nothing arrived yet).
    public func state(of id: String) async -> ResultMessage? { await router.state(of: id) }

    /// Every state of task `id` as it arrives on this client's reply queue, starting with the latest one known;
    /// it ends after the final one (SUCCESS, FAILURE or REVOKED). See ``AsyncResult/updates()``.
    public func updates(of id: String) async -> AsyncStream<ResultMessage> { await router.updates(of: id) }

    /// Waits for a task's final result.
    ///
    /// - Throws: `CeleriacError.resultTimeout(id:after:)` at the deadline; `CeleriacError.taskFailed(name:id:failure:)`
    ///   or `CeleriacError.taskRevoked(id:reason:)` for those outcomes.
    public func result(of id: String, name: String? = nil, timeout: Duration) async throws(CeleriacError) -> JSONValue {
        guard configuration.receiveResults else {
            throw .resultNotAvailable(id: id, reason: "this client was created with receiveResults: false")
        }
        guard let r = await router.waitReady(id, timeout: timeout) else { throw .resultTimeout(id: id, after: timeout) }
        switch r.status {
        case .success: return r.result
        case .revoked: throw .taskRevoked(id: id, reason: r.failure?.message ?? "revoked")
        default:
            throw .taskFailed(
                name: name, id: id,
                failure: r.failure ?? TaskFailure(type: "UnknownError", arguments: [r.result], module: "celeriac"))
        }
    }
}

/// Declares the native delayed-delivery topology and binds work queues to it.
public enum DelayTopology {
    /// Declares the 28-level delay topology (``Topology/delayTopology(_:)``) and binds each of `queues` to the
    /// delivery exchange with the key `#.<queue>`.
    ///
    /// - Throws: `CeleriacError.broker(operation:underlying:)` when a declare or bind fails, e.g. when the levels
    ///   exist with other arguments.
    public static func declare(on connection: any TopologyDeclaring, queues: [String], type: QueueType = .classic)
        async throws
    {
        let t = Topology.delayTopology(type)
        do {
            for e in t.exchanges { try await connection.declare(e) }
            for q in t.queues { try await connection.declare(q) }
            for b in t.queueBindings { try await connection.bind(b) }
            for b in t.exchangeBindings { try await connection.bind(b) }
            // Work queues behind direct exchanges are bound straight to the delivery exchange, so delayed
            // messages come back to them too (kombu binds only topic exchanges).
            for q in queues {
                try await connection.bind(
                    BindingSpec(queue: q, exchange: Topology.delayedDeliveryExchange, routingKey: "#.\(q)"))
            }
        } catch {
            throw CeleriacError.broker(
                operation: "declare the delayed-delivery topology", underlying: error.description)
        }
    }
}

/// Publish waits that a reply may end early, by task id (``CeleriacClient/publishWithRetry(_:settleOnReplyTo:)``).
final class Settlers: Sendable {
    private let waiting = Mutex<[String: PublishSettler]>([:])
    func put(_ settler: PublishSettler, for id: String) { waiting.withLock { $0[id] = settler } }
    func take(_ id: String) -> PublishSettler? { waiting.withLock { $0.removeValue(forKey: id) } }
}
