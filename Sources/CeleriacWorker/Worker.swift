import CeleriacBroker
import CeleriacMessaging
import CeleriacCoordination
import CeleriacCore
import CeleriacTracing
import FoundationEssentials
import Logging
import ServiceLifecycle
import Synchronization
import Tracing

/// Consumes task messages, runs them, publishes their results, then acknowledges them.
///
/// At-least-once: a delivery is acked only after its result (or its retry, or its dead-letter copy) has been
/// confirmed by the broker. Prefetch is per consumer (works on classic and quorum queues) and equals
/// concurrency × prefetch multiplier, so a busy worker does not hoard messages that an idle one could run.
///
/// ```swift
/// var registry = TaskRegistry()
/// registry.register(Tasks.add) { args, _ in args.x + args.y }
/// let broker = try AMQPBroker("amqp://guest:guest@localhost:5672/%2F")   // CeleriacAMQP
/// let worker = Worker(registry: registry, configuration: .init(), broker: broker, logger: logger)
/// try await ServiceGroup(services: [worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
/// ```
public final class Worker: Service, Sendable {
    public struct Configuration: Sendable {
        /// Queues to consume (`-Q a,b`).
        public var queues: [String]
        /// Tasks run at once (`-c N`).
        public var concurrency: Int
        /// Prefetch = concurrency × this (`--prefetch-multiplier`).
        public var prefetchMultiplier: Int
        /// Node name (`-n`), `celeriac@<hostname>` by default.
        public var hostname: String
        /// Warm shutdown: how long running tasks may finish after SIGTERM.
        public var gracePeriod: Duration
        /// Decoding limits (message size, JSON depth).
        public var limits: TaskCodec.Limits
        /// Declare work queues with `x-max-priority`.
        public var maxPriority: Int?
        /// The watchdog re-subscribes a queue that has messages ready and free slots but delivered nothing for
        /// this long (the "alive but not consuming" worker of celery#8030).
        public var watchdogInterval: Duration
        /// Ack when a task starts instead of after it finished (Celery's default; at-most-once for that task).
        public var acksEarly: Bool
        /// Send Celery events (`-E`): worker heartbeats and task events for Flower / `celery events`.
        public var events: Bool
        /// Worker-wide hard time limit in seconds (`--time-limit`), for tasks and messages that set none.
        public var timeLimit: Double?
        /// Worker-wide soft time limit in seconds (`--soft-time-limit`).
        public var softTimeLimit: Double?
        /// Replay and extend the broker's revocation log (`celeriac.revoked`, a stream queue) so revocations
        /// survive restarts and reach workers started later. Needs RabbitMQ ≥ 3.9.
        public var durableRevocations: Bool = true
        /// A consumer span per task run, producer spans for what it sends (README "Tracing"); off while `NoOpTracer`.
        public var tracer: (any Tracer)? = InstrumentationSystem.tracer
        /// Message signing and remote-control limits (Worker+Security.swift).
        public var security = Security()
        /// Limits shared by all workers through the broker (`--global-rate-limit`, `--global-concurrency`).
        public var globalLimits: [GlobalLimit] = []
        /// Completed task ids remembered to skip duplicate deliveries (0 = off).
        public var duplicateWindow: Int = 10_000
        /// Type of the queues this worker declares (`--queue-type`): quorum for RabbitMQ clusters.
        public var queueType: QueueType = .classic
        /// The time the worker reads for ETAs, `expires`, retries, time limits, rate limits and the watchdog
        /// (`ManualClock` in tests; the process pool's children keep their own real clock for time limits).
        public var clock: any CeleriacClock = SystemClock()

        public init(queues: [String] = [Topology.defaultQueue], concurrency: Int = 4, prefetchMultiplier: Int = 1,
                    hostname: String = "celeriac@\(Hostname.current)", gracePeriod: Duration = .seconds(30),
                    limits: TaskCodec.Limits = .init(), maxPriority: Int? = nil, watchdogInterval: Duration = .seconds(30),
                    acksEarly: Bool = false, events: Bool = false) {
            self.queues = queues
            self.concurrency = max(1, concurrency)
            self.prefetchMultiplier = max(1, prefetchMultiplier)
            self.hostname = hostname
            self.gracePeriod = gracePeriod
            self.limits = limits
            self.maxPriority = maxPriority
            self.watchdogInterval = watchdogInterval
            self.acksEarly = acksEarly
            self.events = events
        }

        public var prefetch: Int { concurrency * prefetchMultiplier }
    }

    public let configuration: Configuration
    /// The broker the worker's connections come from.
    public let broker: any Broker
    let registry: TaskRegistry
    let logger: Logger
    let observer: any WorkerObserver
    /// Runs task bodies: in process (async pool) or in child processes (process pool).
    let executor: any TaskExecutor
    /// nil when tracing is off.
    let tracing: TaskTracing?
    /// The workflow-graph exchange was declared on the publisher connection (Worker+Graph).
    let graphExchangeDeclared = Atomic<Bool>(false)
    let consumerConnection: any BrokerConnection
    let publisherConnection: any BrokerConnection
    /// Reads and writes the revocation log (a stream queue) on a connection of its own: a stream RabbitMQ cannot
    /// serve for a while (its coordinator on a lost cluster node) closes this connection, never the ones that
    /// consume and publish tasks.
    let revocationConnection: any BrokerConnection
    /// Global limits, unique locks, duplicate detection (Worker+Coordination.swift).
    let coordination: WorkerCoordination
    let revoked = RevokedSet()
    /// Ids known to be in the broker's revocation log (so a broadcast is not written to it again).
    let loggedRevocations = RevokedSet()
    let rateLimiter: RateLimiter
    /// One chord join at a time per worker: a join holds parts unacked on the publisher connection's admin
    /// channel, which a concurrent join's failed lock declare (405) would close.
    let joinGate = Slots(1)
    let running = Mutex<[String: RunningTask]>([:])
    /// Ids asked to terminate that were not (yet) in `running`: a task that passed its revoked check but has not
    /// registered its Swift Task yet checks this after registering, so a terminate in that window is not lost.
    let terminateRequests = Mutex<Set<String>>([])
    let stopping = Atomic<Bool>(false)
    let consumers = Mutex<[String: Consumer]>([:])
    /// Celery events (`-E`; `enable_events` / `disable_events` control commands).
    let events: WorkerEvents
    /// Lamport clock for remote control and events.
    let lamport = LamportClock()
    /// Tasks run so far, by name (remote control `stats`).
    let totals = Mutex<[String: Int]>([:])
    /// Set by the remote `shutdown` command; checked by run().
    let shutdownRequests: AsyncStream<Void>
    let shutdownSink: AsyncStream<Void>.Continuation
    let slots: Slots
    let processed = Atomic<Int>(0)
    /// When the last delivery arrived (``Configuration/clock``'s uptime).
    let lastDelivery = Mutex<Duration>(.zero)
    let readyState = Atomic<Bool>(false)
    let stalled = Atomic<Bool>(false)
    /// Chords whose join queue is being counted now, with the members waiting for the next count.
    let chordCounts = Mutex<[String: [CheckedContinuation<Bool?, Never>]]>([:])
    /// Deliveries received and not started yet (remote control `reserved`).
    let reservedDeliveryTable = Mutex<[DeliveryTag: (Delivery, String)]>([:])
    /// Per-task time limits set at run time (`time_limit` control command); they win over the task's options.
    let timeLimitOverrides = Mutex<[String: TaskMessage.TimeLimit]>([:])
    /// Concurrency now (`-c`, changed by `pool_grow` / `pool_shrink`).
    let concurrencyNowCounter: Atomic<Int>
    /// Queues consumed now (`-Q`, changed by `add_consumer` / `cancel_consumer`).
    let queuesNow: Mutex<[String]>
    /// Where consumers added at run time forward their deliveries (set while consuming).
    let intake = Mutex<(sink: UnboundedChannel<(Delivery, String)>, forwarders: Forwarders)?>(nil)
    let startedAt = Date()

    struct RunningTask: Sendable {
        let message: TaskMessage
        let work: Task<JSONValue, any Error>
        let startedAt: Date
        let queue: String
    }

    /// A worker that runs `registry`'s tasks from `broker`'s queues; it connects when it runs.
    public init(registry: TaskRegistry, configuration: Configuration = .init(), broker: any Broker, logger: Logger, observer: any WorkerObserver = NoObserver(),
                executor: any TaskExecutor = InProcessExecutor()) {
        self.registry = registry
        self.executor = executor
        self.configuration = configuration
        self.broker = broker
        var logger = logger
        logger[metadataKey: "worker"] = .string(configuration.hostname)
        self.logger = logger
        self.observer = observer
        self.tracing = TaskTracing(configuration.tracer)
        self.slots = Slots(configuration.concurrency + executor.extraSlots)
        self.rateLimiter = RateLimiter(clock: configuration.clock)
        self.lastDelivery.withLock { $0 = configuration.clock.uptime }
        self.concurrencyNowCounter = Atomic(configuration.concurrency)
        self.queuesNow = Mutex(configuration.queues)
        (self.shutdownRequests, self.shutdownSink) = AsyncStream<Void>.makeStream()
        self.consumerConnection = broker.connection(.init(name: "\(configuration.hostname)-consume", confirms: false))
        self.publisherConnection = broker.connection(.init(name: "\(configuration.hostname)-publish", confirms: true))
        self.revocationConnection = broker.connection(.init(name: "\(configuration.hostname)-revocations", confirms: true))
        self.events = WorkerEvents(hostname: configuration.hostname, enabled: configuration.events, publisher: publisherConnection,
                                   lamport: lamport)
        self.coordination = WorkerCoordination(configuration: .init(limits: configuration.globalLimits, duplicateWindow: configuration.duplicateWindow),
                                               broker: broker, hostname: configuration.hostname, logger: logger,
                                               observer: observer as? any CoordinationObserver)
    }

    /// True while connected and consuming (for `/readyz`).
    /// Not ready while the watchdog sees a stall (messages ready, slots free, nothing delivered) until the next
    /// delivery arrives.
    public var isReady: Bool { readyState.load(ordering: .relaxed) && consumerConnection.isConnected && !stalled.load(ordering: .relaxed) }
    /// True from a stall the watchdog detected until the next delivery.
    public var isStalled: Bool { stalled.load(ordering: .relaxed) }
    /// Tasks executed so far.
    public var processedCount: Int { processed.load(ordering: .relaxed) }
    /// What worker events report of this worker now.
    var eventStatus: WorkerEvents.Status { .init(active: running.withLock { $0.count }, processed: processedCount) }
    public var registeredTaskNames: [String] { registry.names }
    public var activeTaskIDs: [String] { running.withLock { Array($0.keys) } }

    public func run() async throws {
        try registry.validate()
        for (name, task) in registry.tasks { if let rl = task.options.rateLimit { await rateLimiter.set(name, perSecond: rl.perSecond) } }
        do {
            try await consumerConnection.connect()
            try await publisherConnection.connect()
            try await declareTopology()
            try await replayRevocationLog()
            try await coordination.start(consumer: consumerConnection, concurrency: configuration.concurrency)
        } catch let error as BrokerError {
            throw CeleriacError.broker(operation: "start worker \(configuration.hostname) on \(broker.description)", underlying: error.description)
        }
        defer { readyState.store(false, ordering: .relaxed) }
        try await executor.start(logger: logger)
        // Cold shutdown (this task cancelled) kills the pool's children at once; a warm one stops them below.
        do {
            try await withTaskCancellationHandler {
                try await consumeAndRun()
            } onCancel: {
                executor.abort()
            }
        } catch {
            executor.abort()
            throw error
        }
        await executor.stop()
        events.offline(eventStatus)
        logger.info("worker stopped", metadata: ["processed": .stringConvertible(processedCount)])
        await coordination.stop()
        await consumerConnection.close()
        await publisherConnection.close()
        await revocationConnection.close()
    }

    private func consumeAndRun() async throws {

        let intakeSink = UnboundedChannel<(Delivery, String)>()
        let intake = intakeSink.stream
        for queue in configuration.queues {
            let consumer = try await consumerConnection.consume(queue: queue, prefetch: UInt16(clamping: prefetchNow),
                                                                tag: "\(configuration.hostname)-\(queue)")
            consumers.withLock { $0[queue] = consumer }
        }
        // Remote control: `celery inspect ping`, `control.revoke`, Flower's queries.
        let pidbox: Consumer?
        do {
            pidbox = try await RemoteControl(worker: self).start(on: consumerConnection)
        } catch {
            throw CeleriacError.broker(operation: "declare the remote-control queue '\(configuration.hostname).celery.pidbox' (is another worker running with the same -n name?)",
                                       underlying: String(describing: error))
        }
        // Consumers added at run time (`add_consumer`) forward into the same intake: wired before the worker says
        // it is ready, so a command that follows readiness finds it.
        let forwarders = Forwarders(count: configuration.queues.count, sink: intakeSink)
        self.intake.withLock { $0 = (intakeSink, forwarders) }
        readyState.store(true, ordering: .relaxed)
        observer.stateChanged(ready: true)
        logger.info("worker ready", metadata: ["queues": .string(configuration.queues.joined(separator: ",")),
                                               "concurrency": .stringConvertible(configuration.concurrency),
                                               "broker": .string(broker.description)])

        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { helpers in
                helpers.addTask { await self.watchConnection() }
                helpers.addTask { await self.events.heartbeats { self.eventStatus } }
                helpers.addTask { await self.events.flusher() }
                helpers.addTask {
                    for await _ in self.shutdownRequests {
                        self.beginWarmShutdown()
                        return
                    }
                }
                if let pidbox {
                    let control = RemoteControl(worker: self)
                    helpers.addTask { await control.serve(pidbox) }
                }
                helpers.addTask { await self.watchdog(slots: self.slots) }
                await withDiscardingTaskGroup { group in
                    for queue in configuration.queues {
                        group.addTask {
                            await self.forward(queue: queue, into: intakeSink)
                            await forwarders.done()
                        }
                    }
                    for await (delivery, queue) in intake {
                        lastDelivery.withLock { $0 = configuration.clock.uptime }
                        if stalled.load(ordering: .relaxed) { stalled.store(false, ordering: .relaxed) }
                        // Reserved (prefetched, waiting for a slot) since forward(queue:) took it, until it starts
                        // or goes back.
                        defer {
                            observer.tasksReserved(queue: queue, delta: -1)
                            _ = reservedDeliveryTable.withLock { $0.removeValue(forKey: delivery.tag) }
                        }
                        if stopping.load(ordering: .relaxed) {
                            // Prefetched but not started: give it back now, so another worker can take it.
                            await consumerConnection.nack(delivery.tag, requeue: true)
                            observer.messageRequeued(queue: queue)
                            continue
                        }
                        guard await slots.acquire() else {
                            await consumerConnection.nack(delivery.tag, requeue: true)
                            observer.messageRequeued(queue: queue)
                            continue
                        }
                        if stopping.load(ordering: .relaxed) {
                            await self.slots.release()
                            await consumerConnection.nack(delivery.tag, requeue: true)
                            observer.messageRequeued(queue: queue)
                            continue
                        }
                        group.addTask {
                            await self.handle(delivery, queue: queue)
                            await self.slots.release()
                        }
                    }
                    // Intake closed: the consumers were cancelled (warm shutdown). The group now waits for the
                    // running tasks; ServiceGroup escalates to cancellation after the grace period.
                }
                helpers.cancelAll()
            }
        } onGracefulShutdown: {
            self.beginWarmShutdown()
        }
    }

    /// Forwards one queue's deliveries into the intake; re-subscribes when the consumer ends while running
    /// (cancelled by the watchdog or by the broker).
    func forward(queue: String, into sink: UnboundedChannel<(Delivery, String)>) async {
        var attempt = 0
        while true {
            guard let consumer = consumers.withLock({ $0[queue] }) else { return }
            for await d in consumer.deliveries {
                observer.tasksReserved(queue: queue, delta: 1)
                reservedDeliveryTable.withLock { $0[d.tag] = (d, queue) }
                sink.yield((d, queue))
            }
            if stopping.load(ordering: .relaxed) || Task.isCancelled { return }
            // Cancelled by `cancel_consumer`: no longer consumed.
            if consumers.withLock({ $0[queue] == nil }) { return }
            attempt += 1
            do {
                // The broker also cancels consumers of a deleted queue: declare it (and its delay binding) again, as
                // Celery does when it restarts a consumer. A no-op when the queue is there.
                try await declareWorkQueue(queue)
                try await publisherConnection.bind(BindingSpec(queue: queue, exchange: Topology.delayedDeliveryExchange, routingKey: "#.\(queue)"))
                let fresh = try await consumerConnection.consume(queue: queue, prefetch: UInt16(clamping: prefetchNow),
                                                                 tag: "\(configuration.hostname)-\(queue)-\(attempt)")
                consumers.withLock { $0[queue] = fresh }
                logger.warning("re-subscribed to queue", metadata: ["queue": .string(queue)])
                observer.consumerRestarted(queue: queue, reason: "resubscribed")
            } catch {
                logger.error("cannot re-subscribe to queue; retrying", metadata: ["queue": .string(queue), "error": .string(error.description)])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Starts a warm shutdown from inside (remote `shutdown` command).
    public func requestShutdown() { shutdownSink.yield() }

    private func beginWarmShutdown() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        readyState.store(false, ordering: .relaxed)
        observer.stateChanged(ready: false)
        logger.info("warm shutdown: no new tasks; running tasks may finish", metadata: [
            "running": .stringConvertible(running.withLock { $0.count }), "grace": .string("\(configuration.gracePeriod)")])
        let connection = consumerConnection
        let current = consumers.withLock { Array($0.values) }
        let slots = self.slots
        shutdownSink.finish()
        // A plain Task because the graceful-shutdown handler is synchronous: it closes the slots (prefetched
        // messages go back at once) and cancels the consumers, which ends the intake loop.
        let coordination = self.coordination
        Task {
            await slots.close()
            await coordination.stopWaiting()
            for c in current { try? await connection.cancel(c) }
        }
    }

    private func declareTopology() async throws {
        let c = publisherConnection
        for queue in configuration.queues { try await declareWorkQueue(queue) }
        try await WorkerEvents.declare(on: c)
        let (dlx, dlq, dlb) = Topology.deadLetter(configuration.queueType)
        try await c.declare(dlx)
        try await c.declare(dlq)
        try await c.bind(dlb)
        do {
            try await DelayTopology.declare(on: c, queues: configuration.queues, type: configuration.queueType)
        } catch let error as CeleriacError {
            throw BrokerError(.protocolError, operation: "declare delay topology", reason: error.description)
        }
    }

    /// Logs and counts connection events; consumers are re-created by the transport itself.
    private func watchConnection() async {
        for await event in consumerConnection.events() {
            if stopping.load(ordering: .relaxed) { return }
            switch event {
            case .disconnected(let error):
                logger.warning("broker connection lost; reconnecting", metadata: ["error": .string(error.description)])
                observer.connectionEvent("disconnected")
            case .connected(let generation) where generation > 1:
                logger.info("broker connection re-established; consumers re-subscribed")
                observer.connectionEvent("reconnected")
            case .consumerCancelled(let tag):
                logger.error("the broker cancelled a consumer (queue deleted?)", metadata: ["consumer": .string(tag)])
                observer.connectionEvent("consumer_cancelled")
            case .closed:
                return
            default:
                break
            }
        }
    }

    /// Notices "messages ready, free slots, no delivery for a while" and re-subscribes that queue.
    private func watchdog(slots: Slots) async {
        while !stopping.load(ordering: .relaxed) {
            do { try await configuration.clock.sleep(for: configuration.watchdogInterval) } catch { return }
            if stopping.load(ordering: .relaxed) { return }
            let idleFor = configuration.clock.uptime - lastDelivery.withLock { $0 }
            guard idleFor >= configuration.watchdogInterval, await slots.busy < concurrencyNowCounter.load(ordering: .relaxed), consumerConnection.isConnected else {
                stalled.store(false, ordering: .relaxed)
                continue
            }
            var stallSeen = false
            for (queue, consumer) in consumers.withLock({ $0 }) {
                guard let info = try? await consumerConnection.inspect(queue: queue), info.messageCount > 0 else { continue }
                logger.error("watchdog: messages are ready and slots are free but nothing was delivered; re-subscribing",
                             metadata: ["queue": .string(queue), "ready": .stringConvertible(info.messageCount), "idle": .string("\(idleFor)")])
                stallSeen = true
                stalled.store(true, ordering: .relaxed)
                observer.consumerRestarted(queue: queue, reason: "watchdog")
                // Cancelling ends the consumer's stream; forward(queue:) then subscribes afresh.
                try? await consumerConnection.cancel(consumer)
            }
            // Stalled (not ready) until a delivery arrives or a later check finds nothing waiting.
            if !stallSeen { stalled.store(false, ordering: .relaxed) }
        }
    }

    // MARK: Run-time control (used by remote control and tests)

    /// Marks a task id revoked; with `terminate`, cancels it if it runs here now.
    public func revoke(_ id: String, terminate: Bool = false) async {
        await revoked.insert(id)
        guard terminate else { return }
        terminateRequests.withLock {
            // Only the short window before a task registers matters, so stale ids (tasks that run elsewhere)
            // are dropped wholesale rather than kept forever.
            if $0.count >= 10_000 { $0.removeAll() }
            $0.insert(id)
        }
        if let task = running.withLock({ $0[id] }) {
            task.work.cancel()
            terminateRequests.withLock { _ = $0.remove(id) }
        }
    }

    public func revokedIDs() async -> [String] { await revoked.all }

    /// Changes a task's per-worker rate limit (nil removes it).
    public func setRateLimit(_ task: String, _ limit: RateLimit?) async throws(CeleriacError) {
        guard registry[task] != nil else { throw .configuration("unknown task '\(task)'") }
        await rateLimiter.set(task, perSecond: limit?.perSecond)
    }
}

/// Finishes the intake stream once every consumer's stream has finished.
actor Forwarders {
    private var remaining: Int
    /// One more forwarder (a consumer added at run time).
    func add() { remaining += 1 }
    private let sink: UnboundedChannel<(Delivery, String)>
    init(count: Int, sink: UnboundedChannel<(Delivery, String)>) {
        remaining = count
        self.sink = sink
        if count == 0 { sink.finish() }
    }
    func done() {
        remaining -= 1
        if remaining == 0 { sink.finish() }
    }
}
