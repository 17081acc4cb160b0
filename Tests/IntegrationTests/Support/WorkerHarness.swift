import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import CeleriacWorker
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// Records what a worker reports, as streams a test can wait on.
final class RecordingObserver: WorkerObserver {
    let readyEvents: AsyncStream<Bool>
    private let readySink: AsyncStream<Bool>.Continuation
    let finished: AsyncStream<(String, TaskFinishedOutcome)>
    private let finishedSink: AsyncStream<(String, TaskFinishedOutcome)>.Continuation
    let deadLettered = Mutex<[String]>([])
    let parked = Mutex<Int>(0)
    let started: AsyncStream<String>
    private let startedSink: AsyncStream<String>.Continuation
    let requeued: AsyncStream<String>
    private let requeuedSink: AsyncStream<String>.Continuation
    let chords: AsyncStream<String>
    private let chordsSink: AsyncStream<String>.Continuation

    init() {
        (chords, chordsSink) = AsyncStream<String>.makeStream()
        (readyEvents, readySink) = AsyncStream<Bool>.makeStream()
        (finished, finishedSink) = AsyncStream<(String, TaskFinishedOutcome)>.makeStream()
        (started, startedSink) = AsyncStream<String>.makeStream()
        (requeued, requeuedSink) = AsyncStream<String>.makeStream()
    }
    func messageRequeued(queue: String) { requeuedSink.yield(queue) }
    func chordEvent(_ event: String) { chordsSink.yield(event) }
    func stateChanged(ready: Bool) { readySink.yield(ready) }
    func taskFinished(name: String, queue: String, outcome: TaskFinishedOutcome, seconds: Double) {
        finishedSink.yield((name, outcome))
    }
    func taskStarted(name: String, queue: String) { startedSink.yield(name) }
    func messageDeadLettered(queue: String, reason: String) { deadLettered.withLock { $0.append(reason) } }
    func taskParked(name: String, queue: String) { parked.withLock { $0 += 1 } }
}

struct RunningWorker {
    let worker: Worker
    let observer: RecordingObserver
    let group: ServiceGroup
    let task: Task<Void, any Error>

    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }
}

func testLogger(_ label: String) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel =
        ProcessInfo.processInfo.environment["CELERIAC_TEST_LOGLEVEL"].flatMap { Logger.Level(rawValue: $0) }
        ?? .critical
    return logger
}

/// Starts a worker in a ServiceGroup and waits (on its readiness event) until it consumes.
func startWorker(
    _ registry: TaskRegistry, url: AMQPURL, queues: [String], concurrency: Int = 4, prefetchMultiplier: Int = 1,
    hostname: String = "it-\(UUID().uuidString.prefix(8))@test", gracePeriod: Duration = .seconds(30),
    limits: TaskCodec.Limits = .init(), observers: [any WorkerObserver] = [], events: Bool = false,
    maxPriority: Int? = nil, watchdogInterval: Duration = .seconds(30), queueType: QueueType = .classic,
    adaptivePrefetch: Worker.AdaptivePrefetch? = nil, clock: (any CeleriacClock)? = nil,
    compactQueues: Set<String> = []
) async throws -> RunningWorker {
    let observer = RecordingObserver()
    let logger = testLogger("it.worker")
    var configuration = Worker.Configuration(
        queues: queues, concurrency: concurrency, prefetchMultiplier: prefetchMultiplier, hostname: hostname,
        gracePeriod: gracePeriod, limits: limits, maxPriority: maxPriority, watchdogInterval: watchdogInterval,
        events: events)
    configuration.queueType = queueType
    configuration.adaptivePrefetch = adaptivePrefetch
    configuration.compactQueues = compactQueues
    if let clock { configuration.clock = clock }
    let worker = Worker(
        registry: registry, configuration: configuration, broker: AMQPBroker(url: url), logger: logger,
        observer: FanOut(observers: [observer] + observers))
    let group = ServiceGroup(configuration: .init(services: [.init(service: worker)], logger: logger))
    let task = Task { try await group.run() }
    _ = try await first(observer.readyEvents, within: .seconds(30), "the worker to be ready") { $0 }
    return RunningWorker(worker: worker, observer: observer, group: group, task: task)
}

func startClient(url: AMQPURL, queue: String) async throws -> CeleriacClient {
    let client = CeleriacClient(
        configuration: .init(defaultQueue: queue, connectionName: "it-client"), broker: AMQPBroker(url: url))
    try await client.start()
    return client
}

/// A private queue bound to Celery's task events (`celeryev`, `task.#`) on a connection of its own, so a test can
/// wait for `task-started` of a worker run with `-E`. Close the connection at the end.
func watchTaskEvents(url: AMQPURL, name: String) async throws -> (AMQPConnection, AMQPConsumer) {
    let watcher = AMQPConnection(url: url, options: .init(name: name, confirms: false))
    try await watcher.connect()
    let events = uniqueName("ev")
    try await watcher.declare(ExchangeSpec("celeryev", kind: .topic, durable: true))
    try await watcher.declare(QueueSpec(events, durable: false, exclusive: true, autoDelete: true))
    try await watcher.bind(BindingSpec(queue: events, exchange: "celeryev", routingKey: "task.#"))
    return (watcher, try await watcher.consume(queue: events, prefetch: 0, noAck: true))
}

/// The events in one message from `celeryev`: a single event, or a `task.multi` batch (a JSON array).
func taskEvents(in body: [UInt8]) -> [JSONValue] {
    switch try? JSONValue.parse(body) {
    case .array(let batch)?: batch
    case let single?: [single]
    case nil: []
    }
}

/// Deletes test queues at the end of a test.
func deleteQueues(_ names: [String], url: AMQPURL) async {
    let c = AMQPConnection(url: url, options: .init(name: "it-cleanup", confirms: false))
    guard (try? await c.connect()) != nil else { return }
    for n in names {
        _ = try? await c.deleteQueue(n)
        try? await c.deleteExchange(n)
    }
    await c.close()
}

/// Sends every worker report to several observers.
struct FanOut: WorkerObserver {
    let observers: [any WorkerObserver]
    func taskReceived(name: String, queue: String) { observers.forEach { $0.taskReceived(name: name, queue: queue) } }
    func taskStarted(name: String, queue: String) { observers.forEach { $0.taskStarted(name: name, queue: queue) } }
    func taskQueueWait(name: String, queue: String, seconds: Double) {
        observers.forEach { $0.taskQueueWait(name: name, queue: queue, seconds: seconds) }
    }
    func tasksReserved(queue: String, delta: Int) { observers.forEach { $0.tasksReserved(queue: queue, delta: delta) } }
    func publishConfirmed(seconds: Double) { observers.forEach { $0.publishConfirmed(seconds: seconds) } }
    func resultPublishFailed() { observers.forEach { $0.resultPublishFailed() } }
    func rateLimitWait(name: String, seconds: Double) {
        observers.forEach { $0.rateLimitWait(name: name, seconds: seconds) }
    }
    func prefetchChanged(_ prefetch: Int) { observers.forEach { $0.prefetchChanged(prefetch) } }
    func taskFinished(name: String, queue: String, outcome: TaskFinishedOutcome, seconds: Double) {
        observers.forEach { $0.taskFinished(name: name, queue: queue, outcome: outcome, seconds: seconds) }
    }
    func messageDeadLettered(queue: String, reason: String) {
        observers.forEach { $0.messageDeadLettered(queue: queue, reason: reason) }
    }
    func taskParked(name: String, queue: String) { observers.forEach { $0.taskParked(name: name, queue: queue) } }
    func messageRequeued(queue: String) { observers.forEach { $0.messageRequeued(queue: queue) } }
    func consumerRestarted(queue: String, reason: String) {
        observers.forEach { $0.consumerRestarted(queue: queue, reason: reason) }
    }
    func connectionEvent(_ event: String) { observers.forEach { $0.connectionEvent(event) } }
    func chordEvent(_ event: String) { observers.forEach { $0.chordEvent(event) } }
    func stateChanged(ready: Bool) { observers.forEach { $0.stateChanged(ready: ready) } }
}
