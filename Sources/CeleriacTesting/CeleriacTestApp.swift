import CeleriacCore
import CeleriacMessaging
import CeleriacWorker
import Logging
import ServiceLifecycle
import Synchronization

/// A real `Worker` (async pool) and a `CeleriacClient` on an ``InMemoryBroker`` with a ``ManualClock``, in
/// this process: test what your tasks, retry policies and canvases do without a RabbitMQ node.
///
/// ```swift
/// let app = try await CeleriacTestApp(registry: registry)
/// let sum = try await app.client.delay(Tasks.add, .init(x: 2, y: 3)).get(timeout: .seconds(5))
/// await app.clock.advance(by: .seconds(10))          // countdowns, retries and time limits fire
/// try await app.shutdown()                             // warm shutdown, as on SIGTERM
/// ```
///
/// The worker, client and broker run the code they run in production; only the broker is in memory, held to
/// RabbitMQ's behaviour by ``BrokerContract``. Time moves only when the test calls `clock.advance(by:)`: a
/// task's own `context.sleep` and its time limits follow the same clock.
public final class CeleriacTestApp: Sendable {
    /// The in-memory broker (look into its queues with ``InMemoryBroker/messages(in:)``).
    public let broker: InMemoryBroker
    /// The clock the worker, the client and the broker read.
    public let clock: ManualClock
    /// A started client whose results come back to it.
    public let client: CeleriacClient
    /// The running worker.
    public let worker: Worker
    private let group: ServiceGroup
    private let running: Task<Void, any Error>

    /// Starts a worker for `registry` and a client, and returns once the worker consumes.
    ///
    /// - Parameters:
    ///   - registry: the tasks the worker runs.
    ///   - configuration: the worker's settings; its clock is replaced by `clock`.
    ///   - clock: the clock of the worker, the client and (unless given) the broker.
    ///   - broker: a broker to share with another app (a second worker, a restarted one); it must run on `clock`.
    ///   - observer: sees what the worker does (metrics, a test's recorder).
    ///   - logger: the worker's and the client's logger (quiet by default).
    public init(
        registry: TaskRegistry, configuration: Worker.Configuration = .init(hostname: "celeriac@test"),
        clock: ManualClock = ManualClock(), broker: InMemoryBroker? = nil, observer: any WorkerObserver = NoObserver(),
        logger: Logger = Logger(label: "celeriac.test", factory: { _ in SwiftLogNoOpLogHandler() })
    ) async throws {
        self.clock = clock
        self.broker = broker ?? InMemoryBroker(clock: clock)
        let broker = self.broker
        var configuration = configuration
        configuration.clock = clock
        let ready = ReadySignal()
        worker = Worker(
            registry: registry, configuration: configuration, broker: broker, logger: logger,
            observer: ReadyObserver(inner: observer, ready: ready))
        var clientConfiguration = CeleriacClient.Configuration(
            defaultQueue: configuration.queues.first ?? Topology.defaultQueue,
            connectionName: "celeriac-test-client")
        clientConfiguration.clock = clock
        clientConfiguration.maxPriority = configuration.maxPriority
        clientConfiguration.queueType = configuration.queueType
        client = CeleriacClient(configuration: clientConfiguration, broker: broker)
        var groupConfiguration = ServiceGroupConfiguration(services: [.init(service: worker)], logger: logger)
        // Warm shutdown escalates to a cold one after the worker's grace period (real time), as the CLI's does:
        // a test whose task never ends fails instead of hanging.
        groupConfiguration.maximumGracefulShutdownDuration = configuration.gracePeriod
        group = ServiceGroup(configuration: groupConfiguration)
        let group = self.group
        running = Task {
            do {
                try await group.run()
            } catch {
                ready.fail(error)
                throw error
            }
            ready.fail(CeleriacError.configuration("the test worker stopped before it was ready"))
        }
        try await client.start()
        try await ready.wait()
    }

    /// Warm shutdown: the worker stops taking tasks, lets running ones finish, and stops; the client closes.
    public func shutdown() async throws {
        await group.triggerGracefulShutdown()
        try await running.value
        await client.close()
    }
}

/// Passes everything on and reports when the worker first becomes ready.
private struct ReadyObserver: WorkerObserver {
    let inner: any WorkerObserver
    let ready: ReadySignal

    func stateChanged(ready: Bool) {
        if ready { self.ready.fire() }
        inner.stateChanged(ready: ready)
    }
    func taskReceived(name: String, queue: String) { inner.taskReceived(name: name, queue: queue) }
    func taskRedelivered(name: String, queue: String) { inner.taskRedelivered(name: name, queue: queue) }
    func taskStarted(name: String, queue: String) { inner.taskStarted(name: name, queue: queue) }
    func taskQueueWait(name: String, queue: String, seconds: Double) {
        inner.taskQueueWait(name: name, queue: queue, seconds: seconds)
    }
    func taskFinished(name: String, queue: String, outcome: TaskFinishedOutcome, seconds: Double) {
        inner.taskFinished(name: name, queue: queue, outcome: outcome, seconds: seconds)
    }
    func messageDeadLettered(queue: String, reason: String) { inner.messageDeadLettered(queue: queue, reason: reason) }
    func taskParked(name: String, queue: String) { inner.taskParked(name: name, queue: queue) }
    func messageRequeued(queue: String) { inner.messageRequeued(queue: queue) }
    func consumerRestarted(queue: String, reason: String) { inner.consumerRestarted(queue: queue, reason: reason) }
    func connectionEvent(_ event: String) { inner.connectionEvent(event) }
    func chordEvent(_ event: String) { inner.chordEvent(event) }
    func tasksReserved(queue: String, delta: Int) { inner.tasksReserved(queue: queue, delta: delta) }
    func publishConfirmed(seconds: Double) { inner.publishConfirmed(seconds: seconds) }
    func resultPublishFailed() { inner.resultPublishFailed() }
    func rateLimitWait(name: String, seconds: Double) { inner.rateLimitWait(name: name, seconds: seconds) }
    func prefetchChanged(_ prefetch: Int) { inner.prefetchChanged(prefetch) }
}

/// One-shot: `wait()` returns once `fire()` was called, or throws what `fail(_:)` was given first.
final class ReadySignal: Sendable {
    private struct State {
        var outcome: Result<Void, any Error>?
        var waiters: [CheckedContinuation<Void, any Error>] = []
    }
    private let state = Mutex(State())

    func fire() { settle(.success(())) }
    func fail(_ error: any Error) { settle(.failure(error)) }

    private func settle(_ outcome: Result<Void, any Error>) {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
            guard s.outcome == nil else { return [] }
            s.outcome = outcome
            defer { s.waiters = [] }
            return s.waiters
        }
        waiters.forEach { $0.resume(with: outcome) }
    }

    func wait() async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            let known = state.withLock { s -> Result<Void, any Error>? in
                if let outcome = s.outcome { return outcome }
                s.waiters.append(c)
                return nil
            }
            if let known { c.resume(with: known) }
        }
    }
}
