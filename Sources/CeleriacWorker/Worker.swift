import CeleriacBroker
import CeleriacCanvas
import CeleriacCoordination
import CeleriacCore
import CeleriacMessaging
import CeleriacTracing
import FoundationEssentials
import Logging
import ServiceLifecycle
import Synchronization

/// Consumes task messages, runs them, publishes their results, then acknowledges them.
///
/// At-least-once: a delivery is acked only after its result (or its retry, or its dead-letter copy) has been
/// confirmed by the broker. Prefetch is per consumer (works on classic and quorum queues) and equals
/// concurrency × prefetch multiplier (or follows the worker's pace, with adaptive prefetch), so a busy worker does
/// not hoard messages that an idle one could run.
///
/// ```swift
/// var registry = TaskRegistry()
/// registry.register(Tasks.add) { args, _ in args.x + args.y }
/// let broker = try AMQPBroker("amqp://guest:guest@localhost:5672/%2F")   // CeleriacAMQP
/// let worker = Worker(registry: registry, configuration: .init(), broker: broker, logger: logger)
/// try await ServiceGroup(services: [worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
/// ```
///
/// The worker is a coordinator. It opens its connections, composes its components and runs them:
/// - `DeliveryIntake` brings deliveries in (consumers, prefetch, re-subscribe, the stall watchdog);
/// - `TaskPipeline` takes one delivery from decoding to ack, through `TaskExecution` (slots, running tasks,
///   time limits, revoke), `OutcomePublisher` (results, retries, dead letters), `CanvasFollowUps` and
///   `ChordJoiner`, and reports to the ``TaskMiddleware`` chain (metrics, events, tracing, workflow graph);
/// - `RemoteControl` answers Celery's inspect and control commands, `WorkerEvents` sends Celery events,
///   `RevocationFollower` keeps revocations durable, `WorkerCoordination` holds global limits and unique locks.
///
/// This file holds what is left: the start, the intake loop (a slot per delivery), and warm shutdown.
public final class Worker: Service, Sendable {
    /// The settings the worker was built with (run-time changes such as `pool_grow` do not change them).
    public let configuration: Configuration
    /// The broker the worker's connections come from.
    public let broker: any Broker
    let registry: TaskRegistry
    let logger: Logger
    let observer: any WorkerObserver
    let consumerConnection: any BrokerConnection
    let publisherConnection: any BrokerConnection

    let intake: DeliveryIntake
    let execution: TaskExecution
    let pipeline: TaskPipeline
    let events: WorkerEvents
    let revocations: RevocationFollower
    /// Global limits, unique locks, duplicate detection.
    let coordination: WorkerCoordination
    let rateLimiter: RateLimiter
    /// Lamport clock for remote control and events.
    let lamport = LamportClock()
    let startedAt = Date()

    private let readyState = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)
    /// Set by the remote `shutdown` command; checked by run().
    private let shutdownRequests: AsyncStream<Void>
    private let shutdownSink: AsyncStream<Void>.Continuation

    /// A worker that runs `registry`'s tasks from `broker`'s queues; it connects when it runs.
    public init(
        registry: TaskRegistry, configuration: Configuration = .init(), broker: any Broker, logger: Logger,
        observer: any WorkerObserver = NoObserver(), executor: any TaskExecutor = InProcessExecutor()
    ) {
        self.registry = registry
        self.configuration = configuration
        self.broker = broker
        var logger = logger
        logger[metadataKey: "worker"] = .string(configuration.hostname)
        self.logger = logger
        self.observer = observer
        (self.shutdownRequests, self.shutdownSink) = AsyncStream<Void>.makeStream()
        let hostname = configuration.hostname, clock = configuration.clock
        consumerConnection = broker.connection(.init(name: "\(hostname)-consume", confirms: false))
        publisherConnection = broker.connection(.init(name: "\(hostname)-publish", confirms: true))
        coordination = WorkerCoordination(
            configuration: .init(limits: configuration.globalLimits, duplicateWindow: configuration.duplicateWindow),
            broker: broker, hostname: hostname, logger: logger, observer: observer as? any CoordinationObserver)
        rateLimiter = RateLimiter(clock: clock)
        events = WorkerEvents(
            hostname: hostname, enabled: configuration.events, publisher: publisherConnection, lamport: lamport)

        execution = TaskExecution(
            settings: .init(
                hostname: hostname, timeLimit: configuration.timeLimit, softTimeLimit: configuration.softTimeLimit,
                acksEarly: configuration.acksEarly, clock: clock, trackStarted: configuration.trackStarted),
            executor: executor, concurrency: configuration.concurrency, statePublisher: publisherConnection)
        intake = DeliveryIntake(
            settings: .init(
                hostname: hostname, queues: configuration.queues, prefetchMultiplier: configuration.prefetchMultiplier,
                adaptivePrefetch: configuration.adaptivePrefetch, watchdogInterval: configuration.watchdogInterval,
                maxPriority: configuration.maxPriority,
                queueType: configuration.queueType, compactQueues: configuration.compactQueues, clock: clock),
            connection: consumerConnection, topology: publisherConnection, capacity: execution, observer: observer,
            logger: logger)
        revocations = RevocationFollower(
            connection: broker.connection(.init(name: "\(hostname)-revocations", confirms: true)),
            revoked: execution.revoked, hostname: hostname, enabled: configuration.durableRevocations, logger: logger)

        let tracing = TaskTracing(configuration.tracer)
        let coordination = self.coordination
        let publisher = OutcomePublisher(
            settings: .init(
                hostname: hostname, gracePeriod: configuration.gracePeriod,
                signer: configuration.security.signer, clock: clock, compactQueues: configuration.compactQueues),
            connection: publisherConnection, settler: consumerConnection, observer: observer, logger: logger,
            tracing: tracing, releaseUnique: { await coordination.releaseUnique(of: $0) })
        let planner = CanvasPlanner(defaultQueue: configuration.queues.first ?? Topology.defaultQueue)
        let graph = GraphRecorder(publisher: publisherConnection, hostname: hostname, logger: logger)
        let chords = ChordJoiner(
            connection: publisherConnection, publisher: publisher, execution: execution, observer: observer,
            clock: clock, planner: planner)
        let canvas = CanvasFollowUps(publisher: publisher, chords: chords, graph: graph, clock: clock, planner: planner)
        var middleware: [any TaskMiddleware] = []
        if let tracing { middleware.append(TracingMiddleware(tracing: tracing, worker: hostname)) }
        middleware += [ObserverMiddleware(observer: observer), EventMiddleware(events: events), graph]
        if configuration.adaptivePrefetch != nil { middleware.append(PrefetchMiddleware(intake: intake)) }
        middleware += configuration.middleware
        pipeline = TaskPipeline(
            settings: .init(
                limits: configuration.limits, signer: configuration.security.signer,
                acksEarly: configuration.acksEarly, clock: clock),
            registry: registry, execution: execution, publisher: publisher, canvas: canvas, coordination: coordination,
            rateLimiter: rateLimiter, middleware: MiddlewareChain(middleware), observer: observer, logger: logger)
    }

    /// True while connected and consuming (for `/readyz`).
    /// Not ready while the watchdog sees a stall (messages ready, slots free, nothing delivered) until the next
    /// delivery arrives.
    public var isReady: Bool { readyState.load(ordering: .relaxed) && intake.isReady }
    /// True from a stall the watchdog detected until the next delivery.
    public var isStalled: Bool { intake.isStalled }
    /// Tasks executed so far.
    public var processedCount: Int { execution.processedCount }
    /// The names of the tasks this worker runs.
    public var registeredTaskNames: [String] { registry.names }
    /// Ids of the tasks running now.
    public var activeTaskIDs: [String] { execution.runningIDs }
    /// What worker events report of this worker now.
    var eventStatus: WorkerEvents.Status { .init(active: execution.runningCount, processed: execution.processedCount) }

    /// Connects, declares the topology, replays the revocation log, then consumes and runs tasks until a warm
    /// shutdown (SIGTERM through `ServiceGroup`, or the remote `shutdown` command) has let the running tasks finish.
    /// Cancelling the task that runs it is a cold shutdown: running tasks stop and their messages go back to the
    /// queue. Throws `CeleriacError` when the broker cannot be reached at start, with what to check.
    public func run() async throws {
        try registry.validate()
        for (name, task) in registry.tasks {
            if let rl = task.options.rateLimit { await rateLimiter.set(name, perSecond: rl.perSecond) }
        }
        do {
            try await consumerConnection.connect()
            try await publisherConnection.connect()
            try await declareTopology()
            try await revocations.replay()
            try await coordination.start(consumer: consumerConnection, concurrency: configuration.concurrency)
        } catch let error as BrokerError {
            throw CeleriacError.broker(
                operation: "start worker \(configuration.hostname) on \(broker.description)",
                underlying: error.description)
        }
        defer { readyState.store(false, ordering: .relaxed) }
        let executor = execution.executor
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
        await revocations.stop()
    }

    private func declareTopology() async throws {
        let c = publisherConnection
        for queue in configuration.queues { try await intake.declareWorkQueue(queue) }
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

    private func consumeAndRun() async throws {
        try await intake.start()
        // Remote control: `celery inspect ping`, `control.revoke`, Flower's queries.
        let control = RemoteControl(worker: self)
        let pidbox: Consumer?
        do {
            pidbox = try await control.start(on: consumerConnection)
        } catch {
            throw CeleriacError.broker(
                operation:
                    "declare the remote-control queue '\(configuration.hostname).celery.pidbox' (is another worker running with the same -n name?)",
                underlying: String(describing: error))
        }
        readyState.store(true, ordering: .relaxed)
        observer.stateChanged(ready: true)
        logger.info(
            "worker ready",
            metadata: [
                "queues": .string(configuration.queues.joined(separator: ",")),
                "concurrency": .stringConvertible(configuration.concurrency),
                "broker": .string(broker.description),
            ])

        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { helpers in
                helpers.addTask { await self.intake.watchConnection() }
                helpers.addTask { await self.intake.watchdog() }
                helpers.addTask { await self.events.heartbeats { self.eventStatus } }
                helpers.addTask { await self.events.flusher() }
                helpers.addTask {
                    for await _ in self.shutdownRequests {
                        self.beginWarmShutdown()
                        return
                    }
                }
                if let pidbox { helpers.addTask { await control.serve(pidbox) } }
                await runIntakeLoop()
                helpers.cancelAll()
            }
        } onGracefulShutdown: {
            self.beginWarmShutdown()
        }
    }

    /// Takes each delivery as a slot frees up and hands it to the pipeline. Ends when the consumers were cancelled
    /// (warm shutdown) and the running tasks have finished; ServiceGroup escalates to cancellation after the grace
    /// period.
    private func runIntakeLoop() async {
        let slots = execution.slots, intake = self.intake, pipeline = self.pipeline
        // With the process pool a task's handling starts here and now, up to its first suspension (handing the run
        // to a child): nothing of the task's own runs on this thread. The async pool's bodies may compute without
        // suspending, so there each task starts as a task of its own and the loop goes on at once.
        let startImmediately = !(execution.executor is InProcessExecutor)
        await withDiscardingTaskGroup { group in
            group.addTask { await intake.forwardAll() }
            for await (delivery, queue) in intake.deliveries {
                intake.took()
                // Reserved (prefetched, waiting for a slot) since the intake took it, until it starts or goes back.
                defer { intake.leftReserve(delivery, queue: queue) }
                // Prefetched but not started while stopping: give it back now, so another worker can take it.
                guard !stopping.load(ordering: .relaxed), await slots.acquire() else {
                    await giveBack(delivery, queue: queue)
                    continue
                }
                if stopping.load(ordering: .relaxed) {
                    await slots.release()
                    await giveBack(delivery, queue: queue)
                    continue
                }
                let handle = { @Sendable () async in
                    await pipeline.handle(delivery, queue: queue)
                    await slots.release()
                }
                if startImmediately {
                    group.addImmediateTask { await handle() }
                } else {
                    group.addTask { await handle() }
                }
            }
        }
    }

    private func giveBack(_ delivery: Delivery, queue: String) async {
        await consumerConnection.nack(delivery.tag, requeue: true)
        observer.messageRequeued(queue: queue)
    }

    /// Starts a warm shutdown from inside (remote `shutdown` command).
    public func requestShutdown() { shutdownSink.yield() }

    private func beginWarmShutdown() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        readyState.store(false, ordering: .relaxed)
        intake.markStopping()
        observer.stateChanged(ready: false)
        logger.info(
            "warm shutdown: no new tasks; running tasks may finish",
            metadata: [
                "running": .stringConvertible(execution.runningCount), "grace": .string("\(configuration.gracePeriod)"),
            ])
        shutdownSink.finish()
        // A plain Task because the graceful-shutdown handler is synchronous: it closes the slots (prefetched
        // messages go back at once) and cancels the consumers, which ends the intake loop.
        let slots = execution.slots, coordination = self.coordination, intake = self.intake
        Task {
            await slots.close()
            await coordination.stopWaiting()
            await intake.stop()
        }
    }
}
