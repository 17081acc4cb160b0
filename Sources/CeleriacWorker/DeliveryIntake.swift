import CeleriacBroker
import CeleriacCore
import CeleriacMessaging
import Logging
import Synchronization

/// What the intake needs to know of execution: how many tasks may run now (prefetch follows it) and whether a
/// slot is free (the watchdog's test for a stall).
protocol IntakeCapacity: Sendable {
    var concurrency: Int { get }
    func hasFreeSlots() async -> Bool
}

extension TaskExecution: IntakeCapacity {}

/// Brings deliveries into a worker: one consumer per queue with prefetch = concurrency × multiplier, all forwarded
/// into one stream of `(delivery, queue)`. It re-subscribes a consumer that ends while the worker runs (the queue
/// was deleted, prefetch changed, the watchdog cancelled it), keeps the table of prefetched deliveries that wait
/// for a slot (remote control `reserved`), adds and cancels queues at run time, and watches for the stall of
/// celery#8030: messages ready, slots free, nothing delivered.
final class DeliveryIntake: Sendable {
    struct Settings: Sendable {
        var hostname: String
        var queues: [String]
        var prefetchMultiplier: Int
        /// Prefetch follows the tasks' run times (nil: fixed at concurrency × `prefetchMultiplier`).
        var adaptivePrefetch: Worker.AdaptivePrefetch? = nil
        var watchdogInterval: Duration
        var maxPriority: Int?
        var queueType: QueueType
        /// Queues declared for the compact form (with the dead-letter exchange).
        var compactQueues: Set<String> = []
        var clock: any CeleriacClock
    }

    let settings: Settings
    /// The consuming connection: consumers, the watchdog's queue counts, connection events.
    private let connection: any BrokerLink & MessageConsuming & QueueInspecting
    /// Where work queues are declared again (the publishing connection).
    private let topology: any TopologyDeclaring
    private let capacity: any IntakeCapacity
    private let observer: any WorkerObserver
    private let logger: Logger

    private let sink = UnboundedChannel<(Delivery, String)>()
    private let consumers = Mutex<[String: Consumer]>([:])
    /// Queues consumed now, in the order they were added.
    private let queuesNow: Mutex<[String]>
    /// Forwarders still running; the stream ends when the last one ends.
    private let forwarders = Mutex(0)
    /// Deliveries received and not started yet.
    private let reservedTable = Mutex<[DeliveryTag: (Delivery, String)]>([:])
    /// When the last delivery was taken (the clock's uptime).
    private let lastDelivery: Mutex<Duration>
    /// Sizes the multiplier from run times when prefetch is adaptive.
    private let governor: Mutex<PrefetchGovernor?>
    /// The multiplier in force (prefetch = concurrency × this).
    private let multiplier: Atomic<Int>
    /// Consumers cancelled to take a new prefetch, by queue: their re-subscription is expected, not a fault.
    private let prefetchChanges = Mutex<Set<String>>([])
    private let consuming = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)
    private let stalled = Atomic<Bool>(false)

    init(
        settings: Settings, connection: any BrokerLink & MessageConsuming & QueueInspecting,
        topology: any TopologyDeclaring, capacity: any IntakeCapacity,
        observer: any WorkerObserver, logger: Logger
    ) {
        self.settings = settings
        self.connection = connection
        self.topology = topology
        self.capacity = capacity
        self.observer = observer
        self.logger = logger
        self.queuesNow = Mutex(settings.queues)
        self.lastDelivery = Mutex(settings.clock.uptime)
        self.multiplier = Atomic(settings.prefetchMultiplier)
        self.governor = Mutex(
            settings.adaptivePrefetch.map { adaptive in
                PrefetchGovernor(
                    policy: .init(
                        floor: settings.prefetchMultiplier,
                        ceiling: max(settings.prefetchMultiplier, adaptive.maxMultiplier),
                        reservedWork: seconds(adaptive.reservedWork)))
            })
    }

    /// Every delivery of every consumed queue, until ``stop()`` ended the consumers.
    var deliveries: UnboundedChannel<(Delivery, String)>.Stream { sink.stream }
    /// Prefetch per consumer now.
    var prefetch: Int { capacity.concurrency * prefetchMultiplier }
    /// The prefetch multiplier in force: the configured one, or what adaptive prefetch chose since.
    var prefetchMultiplier: Int { multiplier.load(ordering: .relaxed) }
    var queues: [String] { queuesNow.withLock { $0 } }
    /// Consuming, connected and not stalled.
    var isReady: Bool {
        consuming.load(ordering: .relaxed) && connection.isConnected && !stalled.load(ordering: .relaxed)
    }
    /// True from a stall the watchdog detected until the next delivery.
    var isStalled: Bool { stalled.load(ordering: .relaxed) }
    /// Prefetched deliveries waiting for a slot, with their queue.
    var reserved: [(Delivery, String)] { reservedTable.withLock { Array($0.values) } }

    /// Declares a work queue, its exchange and binding (Celery's flags).
    func declareWorkQueue(_ queue: String) async throws(BrokerError) {
        let form: MessageForm = settings.compactQueues.contains(queue) ? .compact : .celery
        let (exchange, spec, binding) = Topology.workQueue(
            queue, maxPriority: settings.maxPriority, type: settings.queueType, form: form)
        try await topology.declare(exchange)
        do {
            try await topology.declare(spec)
        } catch {
            throw Topology.explainingFormConflict(error, queue: queue, form: form)
        }
        try await topology.bind(binding)
    }

    /// Subscribes to every configured queue. Deliveries flow once ``forwardAll()`` runs.
    func start() async throws(BrokerError) {
        for queue in settings.queues {
            let consumer = try await connection.consume(
                queue: queue, prefetch: UInt16(clamping: prefetch), tag: "\(settings.hostname)-\(queue)")
            consumers.withLock { $0[queue] = consumer }
        }
        observer.prefetchChanged(prefetch)
        forwarders.withLock { $0 = settings.queues.count }
        if settings.queues.isEmpty { sink.finish() }
        consuming.store(true, ordering: .relaxed)
    }

    /// Forwards the configured queues' deliveries until their consumers end for good (``stop()``).
    func forwardAll() async {
        await withDiscardingTaskGroup { group in
            for queue in settings.queues {
                group.addTask { await self.forwarding(queue) }
            }
        }
    }

    /// The intake loop took a delivery: the worker is not stalled.
    func took() {
        lastDelivery.withLock { $0 = settings.clock.uptime }
        if stalled.load(ordering: .relaxed) { stalled.store(false, ordering: .relaxed) }
    }

    /// A delivery left the reserved table (it started, or went back to the queue).
    func leftReserve(_ delivery: Delivery, queue: String) {
        observer.tasksReserved(queue: queue, delta: -1)
        _ = reservedTable.withLock { $0.removeValue(forKey: delivery.tag) }
    }

    private func forwarding(_ queue: String) async {
        await forward(queue: queue)
        let last = forwarders.withLock { n -> Bool in
            n -= 1
            return n == 0
        }
        if last { sink.finish() }
    }

    /// Forwards one queue's deliveries into the stream; re-subscribes when the consumer ends while running.
    private func forward(queue: String) async {
        var attempt = 0
        while true {
            guard let consumer = consumers.withLock({ $0[queue] }) else { return }
            for await d in consumer.deliveries {
                observer.tasksReserved(queue: queue, delta: 1)
                reservedTable.withLock { $0[d.tag] = (d, queue) }
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
                try await topology.bind(
                    BindingSpec(queue: queue, exchange: Topology.delayedDeliveryExchange, routingKey: "#.\(queue)"))
                let fresh = try await connection.consume(
                    queue: queue, prefetch: UInt16(clamping: prefetch),
                    tag: "\(settings.hostname)-\(queue)-\(attempt)")
                consumers.withLock { $0[queue] = fresh }
                // A warm shutdown that took its list of consumers before this one was stored has not cancelled it:
                // cancel it here, or its stream, and the worker, would never end.
                if stopping.load(ordering: .relaxed) { try? await connection.cancel(fresh) }
                if prefetchChanges.withLock({ $0.remove(queue) != nil }) {
                    logger.debug(
                        "re-subscribed with a new prefetch",
                        metadata: ["queue": .string(queue), "prefetch": .stringConvertible(prefetch)])
                } else {
                    logger.warning("re-subscribed to queue", metadata: ["queue": .string(queue)])
                    observer.consumerRestarted(queue: queue, reason: "resubscribed")
                }
            } catch {
                logger.error(
                    "cannot re-subscribe to queue; retrying",
                    metadata: ["queue": .string(queue), "error": .string(error.description)])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Starts consuming `queue` (declaring it as Celery would). Returns false if it was consumed already.
    func add(queue: String) async throws(CeleriacError) -> Bool {
        guard consuming.load(ordering: .relaxed), !stopping.load(ordering: .relaxed) else {
            throw .configuration("the worker is not consuming (starting or stopping); try again")
        }
        if consumers.withLock({ $0[queue] != nil }) { return false }
        do {
            try await declareWorkQueue(queue)
            try await DelayTopology.declare(on: topology, queues: [queue], type: settings.queueType)
            let consumer = try await connection.consume(
                queue: queue, prefetch: UInt16(clamping: prefetch), tag: "\(settings.hostname)-\(queue)")
            consumers.withLock { $0[queue] = consumer }
        } catch let error as BrokerError {
            throw .broker(operation: "add consumer for '\(queue)'", underlying: error.description)
        } catch {
            throw .broker(operation: "add consumer for '\(queue)'", underlying: String(describing: error))
        }
        queuesNow.withLock { if !$0.contains(queue) { $0.append(queue) } }
        forwarders.withLock { $0 += 1 }
        Task { await self.forwarding(queue) }
        logger.info("consuming another queue", metadata: ["queue": .string(queue)])
        return true
    }

    /// Stops consuming `queue`; unacknowledged deliveries of it still finish. The last queue cannot be cancelled.
    func cancel(queue: String) async throws(CeleriacError) -> Bool {
        let consumer = consumers.withLock { c -> Consumer? in
            guard c.count > 1 else { return nil }
            return c.removeValue(forKey: queue)
        }
        guard let consumer else {
            if consumers.withLock({ $0[queue] == nil }) { return false }
            throw .configuration(
                "'\(queue)' is the worker's last queue; stop the worker with `control shutdown` instead")
        }
        queuesNow.withLock { $0.removeAll { $0 == queue } }
        try? await connection.cancel(consumer)
        logger.info("stopped consuming a queue", metadata: ["queue": .string(queue)])
        return true
    }

    /// Subscribes every queue afresh (prefetch is fixed per consumer, so a changed concurrency needs new ones).
    func resubscribeAll() async {
        let current = consumers.withLock { $0 }
        prefetchChanges.withLock { $0.formUnion(current.keys) }
        observer.prefetchChanged(prefetch)
        for consumer in current.values { try? await connection.cancel(consumer) }
    }

    /// A task finished: with adaptive prefetch, the governor may choose another multiplier from the worker's pace
    /// (a deeper one only when enough messages wait in the queues), and then the queues are subscribed afresh.
    func taskFinished() async {
        let now = seconds(settings.clock.uptime), concurrency = capacity.concurrency
        guard let proposal = governor.withLock({ $0?.finished(at: now, concurrency: concurrency) }) else { return }
        guard !stopping.load(ordering: .relaxed) else { return }
        let changed: Int
        switch proposal {
        case .shrank(let to):
            changed = to
        case .growIfBacklog(_, let needed):
            let share = await backlogShare(atLeast: needed)
            guard let grown = governor.withLock({ $0?.backlogChecked(share: share, concurrency: concurrency) }),
                !stopping.load(ordering: .relaxed)
            else { return }
            changed = grown
        }
        let before = multiplier.exchange(changed, ordering: .relaxed)
        logger.debug(
            "adaptive prefetch: new multiplier",
            metadata: [
                "from": .stringConvertible(before), "to": .stringConvertible(changed),
                "completions_per_second": .stringConvertible(governor.withLock { $0?.pace ?? 0 }),
            ])
        await resubscribeAll()
    }

    /// This worker's share of the messages waiting in its queues: each queue's ready messages divided by its
    /// consumers, summed until `needed` is reached (a queue that cannot be counted counts none).
    private func backlogShare(atLeast needed: Int) async -> Int {
        var share = 0
        for queue in queues where share < needed {
            if let info = try? await connection.inspect(queue: queue) {
                share += Int(info.messageCount) / max(1, Int(info.consumerCount))
            }
        }
        return share
    }

    /// Warm shutdown: cancels every consumer, which ends the stream once their deliveries are in.
    func stop() async {
        markStopping()
        for consumer in consumers.withLock({ Array($0.values) }) { try? await connection.cancel(consumer) }
    }

    /// Not ready from now on (warm shutdown began), before the consumers are cancelled.
    func markStopping() {
        stopping.store(true, ordering: .relaxed)
        consuming.store(false, ordering: .relaxed)
    }

    /// Logs and counts connection events; consumers are re-created by the transport itself.
    func watchConnection() async {
        for await event in connection.events() {
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
    func watchdog() async {
        let clock = settings.clock, interval = settings.watchdogInterval
        while !stopping.load(ordering: .relaxed) {
            do { try await clock.sleep(for: interval) } catch { return }
            if stopping.load(ordering: .relaxed) { return }
            let idleFor = clock.uptime - lastDelivery.withLock { $0 }
            guard idleFor >= interval, await capacity.hasFreeSlots(), connection.isConnected else {
                stalled.store(false, ordering: .relaxed)
                continue
            }
            var stallSeen = false
            for (queue, consumer) in consumers.withLock({ $0 }) {
                guard let info = try? await connection.inspect(queue: queue), info.messageCount > 0 else { continue }
                logger.error(
                    "watchdog: messages are ready and slots are free but nothing was delivered; re-subscribing",
                    metadata: [
                        "queue": .string(queue), "ready": .stringConvertible(info.messageCount),
                        "idle": .string("\(idleFor)"),
                    ])
                stallSeen = true
                stalled.store(true, ordering: .relaxed)
                observer.consumerRestarted(queue: queue, reason: "watchdog")
                // Cancelling ends the consumer's stream; forward(queue:) then subscribes afresh.
                try? await connection.cancel(consumer)
            }
            // Stalled (not ready) until a delivery arrives or a later check finds nothing waiting.
            if !stallSeen { stalled.store(false, ordering: .relaxed) }
        }
    }
}

private func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}
