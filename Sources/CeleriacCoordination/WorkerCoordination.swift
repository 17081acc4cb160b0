import CeleriacBroker
import CeleriacCore
import CeleriacMessaging
import Logging
import Synchronization

/// A worker's share of the broker-only coordination: global rate and concurrency limits, unique-lock release,
/// duplicate detection by task id, and the dead-letter depth probe.
///
/// Permits and rate tokens are taken on the worker's *consumer* connection, the one that holds the task messages:
/// if it dies, the broker requeues the tasks and their permits together.
public final class WorkerCoordination: Sendable {
    /// What the worker coordinates through the broker; the CLI fills it from `--global-rate-limit`,
    /// `--global-concurrency`, `--limit-group` and `--duplicate-window`.
    public struct Configuration: Sendable {
        /// The global rate and concurrency limits (every worker running these tasks must configure the same ones).
        public var limits: [GlobalLimit]
        /// How many completed task ids are remembered for duplicate detection (0 = off), and for how long.
        public var duplicateWindow: Int
        /// How long a completed id counts for duplicate detection (default one hour).
        public var duplicateTTL: Duration
        /// How often the dead-letter queue's depth is read for metrics (only with an observer).
        public var deadLetterProbeInterval: Duration

        /// No limits, 10 000 completed ids remembered for an hour, dead-letter depth read every 15 s.
        public init(
            limits: [GlobalLimit] = [], duplicateWindow: Int = 10_000, duplicateTTL: Duration = .seconds(3600),
            deadLetterProbeInterval: Duration = .seconds(15)
        ) {
            self.limits = limits
            self.duplicateWindow = duplicateWindow
            self.duplicateTTL = duplicateTTL
            self.deadLetterProbeInterval = deadLetterProbeInterval
        }
    }

    /// Permits and tokens held by one running task.
    public struct Permits: Sendable {
        let held: [DeliveryTag]
        /// No permits (a task without global limits).
        public static let none = Permits(held: [])
    }

    /// The limits and windows this worker was configured with.
    public let configuration: Configuration
    let broker: any Broker
    let hostname: String
    let logger: Logger
    let observer: (any CoordinationObserver)?
    /// Unique-lock releases and the depth probe (never a consumer or a permit).
    let connection: any BrokerConnection
    private let byTask: [String: [GlobalLimit]]
    private let completed: CompletedIDs
    private let ratePools = Mutex<[String: TokenPool]>([:])
    private let permitPools = Mutex<[String: TokenPool]>([:])
    private let background = Mutex<[Task<Void, Never>]>([])
    private let consumer = Mutex<(any BrokerConnection)?>(nil)
    private let releases = Serial()

    /// Coordination for the worker `hostname` (which names its connections); nothing connects before
    /// ``start(consumer:concurrency:)``. `observer` gets waits, duplicates, refiller leadership and dead-letter depth.
    public init(
        configuration: Configuration, broker: any Broker, hostname: String, logger: Logger,
        observer: (any CoordinationObserver)?
    ) {
        self.configuration = configuration
        self.broker = broker
        self.hostname = hostname
        self.logger = logger
        self.observer = observer
        var byTask: [String: [GlobalLimit]] = [:]
        for limit in configuration.limits.sorted(by: { $0.name < $1.name }) {
            for task in limit.tasks { byTask[task, default: []].append(limit) }
        }
        self.byTask = byTask
        self.completed = CompletedIDs(capacity: configuration.duplicateWindow, ttl: configuration.duplicateTTL)
        self.connection = broker.connection(.init(name: "\(hostname)-coordination", confirms: true))
    }

    /// True when task `task` is under a global limit, i.e. ``acquire(task:)`` may wait.
    public func hasLimits(_ task: String) -> Bool { byTask[task] != nil }

    /// Connects, seeds permit queues, starts the refiller candidates and the dead-letter probe.
    public func start(consumer: any BrokerConnection, concurrency: Int) async throws(BrokerError) {
        try await connection.connect()
        self.consumer.withLock { $0 = consumer }
        for limit in configuration.limits {
            if let permits = limit.concurrency {
                try await SemaphoreSeeder.ensureSeeded(
                    limit: limit.name, permits: permits, broker: broker, logger: logger)
                let pool = TokenPool(
                    queue: CoordinationTopology.semaphoreQueue(limit.name), connection: consumer, prefetch: concurrency)
                permitPools.withLock { $0[limit.name] = pool }
            }
            if let rate = limit.rate {
                try await connection.declare(CoordinationTopology.rateQueueSpec(limit.name, burst: limit.burst))
                // Tokens are acked as soon as they arrive, so a prefetch of one per slot only lets waiting tasks take
                // them in parallel (one per round trip would cap a worker at ~400 tokens/s here).
                let pool = TokenPool(
                    queue: CoordinationTopology.rateQueue(limit.name), connection: consumer, prefetch: concurrency)
                ratePools.withLock { $0[limit.name] = pool }
                let refiller = TokenRefiller(
                    broker: broker, limit: limit.name, perSecond: rate.perSecond, burst: limit.burst,
                    connectionName: "\(hostname)-refiller-\(limit.name)", logger: logger)
                let observer = self.observer
                // Both live as long as the worker and are cancelled by stop().
                let run = Task { await refiller.run() }
                let watch = Task {
                    for await leader in refiller.leadership {
                        observer?.refillerLeadership(limit: limit.name, leader: leader)
                    }
                }
                background.withLock { $0 += [run, watch] }
            }
        }
        if let observer {
            let interval = configuration.deadLetterProbeInterval
            let connection = self.connection
            let releases = self.releases
            // A periodic gauge refresh for as long as the worker runs; cancelled by stop(). It takes its turn with the
            // lock releases: a 404 (queue deleted by hand) closes the admin channel a release's get/ack needs.
            let probe = Task {
                while !Task.isCancelled {
                    await releases.run {
                        if let info = try? await connection.inspect(queue: Topology.deadLetterQueue) {
                            observer.deadLetterDepth(Int(info.messageCount))
                        }
                    }
                    try? await Task.sleep(for: interval)
                }
            }
            background.withLock { $0.append(probe) }
        }
    }

    /// Warm shutdown: tasks still waiting for a permit or token stop waiting (their messages go back to the queue).
    public func stopWaiting() async {
        for pool in permitPools.withLock({ Array($0.values) }) + ratePools.withLock({ Array($0.values) }) {
            await pool.close()
        }
    }

    /// Stops taking permits (waiters get `CancellationError`), stops the refillers and closes the connection.
    public func stop() async {
        await stopWaiting()
        let tasks = background.withLock { t -> [Task<Void, Never>] in
            defer { t = [] }; return t
        }
        for t in tasks { t.cancel() }
        for t in tasks { await t.value }
        await connection.close()
    }

    /// Waits for every global limit of `task`: concurrency permits first (in limit-name order, so two tasks sharing
    /// two limits cannot deadlock), then rate tokens, so the rate paces starts, not queueing.
    ///
    /// - Throws: `CancellationError` when the worker stops or the task is cancelled; permits taken so far are returned.
    public func acquire(task: String) async throws -> Permits {
        guard let limits = byTask[task], let consumer = consumer.withLock({ $0 }) else { return .none }
        var held: [DeliveryTag] = []
        do {
            for limit in limits where limit.concurrency != nil {
                guard let pool = permitPools.withLock({ $0[limit.name] }) else { continue }
                let t0 = ContinuousClock.now
                held.append(try await pool.take())
                observer?.globalLimitWaited(
                    task: task, limit: limit.name, kind: "concurrency", seconds: seconds(ContinuousClock.now - t0))
            }
            for limit in limits where limit.rate != nil {
                guard let pool = ratePools.withLock({ $0[limit.name] }) else { continue }
                let t0 = ContinuousClock.now
                let token = try await pool.take()
                consumer.ackInBackground(token)
                observer?.globalLimitWaited(
                    task: task, limit: limit.name, kind: "rate", seconds: seconds(ContinuousClock.now - t0))
            }
        } catch {
            await release(Permits(held: held))
            throw error
        }
        return Permits(held: held)
    }

    /// Gives permits back (reject with requeue: the same permit message returns to the queue).
    public func release(_ permits: Permits) async {
        guard !permits.held.isEmpty, let consumer = consumer.withLock({ $0 }) else { return }
        for tag in permits.held { await consumer.reject(tag, requeue: true) }
    }

    // MARK: Duplicates

    /// True when this worker already completed `id` (within the window).
    public func alreadyCompleted(_ id: String) async -> Bool {
        configuration.duplicateWindow > 0 ? completed.contains(id) : false
    }

    /// Remembers that this worker completed task `id` (the worker calls it for final outcomes, not retries); no-op
    /// when the duplicate window is 0.
    public func markCompleted(_ id: String) async {
        if configuration.duplicateWindow > 0 { completed.insert(id) }
    }

    /// Tells the observer that a delivery of `task` on `queue` was skipped as a duplicate.
    public func reportDuplicate(task: String, queue: String) { observer?.duplicateSkipped(task: task, queue: queue) }

    // MARK: Unique locks

    /// The unique key a task message carries, if any.
    public static func uniqueKey(headers: JSONObject) -> String? {
        headers[CoordinationTopology.uniqueKeyHeader]?.stringValue
    }

    /// The unique key in a delivery's AMQP headers, if the task was sent with one.
    public static func uniqueKey(headers: FieldTable?) -> String? {
        if case .string(let key)? = headers?[CoordinationTopology.uniqueKeyHeader] { return key }
        return nil
    }

    /// Releases the unique lock `taskID` holds on `key` (logged, never thrown: the TTL is the backstop).
    public func releaseUnique(key: String, taskID: String) async {
        let connection = self.connection
        let logger = self.logger
        await releases.run {
            do throws(BrokerError) {
                try await UniqueLock.release(key: key, taskID: taskID, on: connection)
            } catch {
                logger.error(
                    "could not release a unique lock; its TTL will",
                    metadata: ["key": .string(key), "task.id": .string(taskID), "error": .string(error.description)])
            }
        }
    }
}

/// Runs async bodies one at a time (a basic.get and its ack share the admin channel with the next release).
/// (An actor alone is not enough: it is re-entered at every await.)
actor Serial {
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func run(_ body: @Sendable () async -> Void) async {
        if busy { await withCheckedContinuation { waiters.append($0) } } else { busy = true }
        await body()
        if waiters.isEmpty { busy = false } else { waiters.removeFirst().resume() }
    }
}
