import AMQPTransport
import CeleriacAMQP
import CeleriacCoordination
import CeleriacCore
import CeleriacMessaging
import CeleriacWorker
import Foundation
import ServiceLifecycle
import Synchronization
import Testing

/// Records what the coordination features report, as streams a test can wait on (a worker observer too, so it
/// can be the worker's only observer and still be found as its `CoordinationObserver`).
final class CoordinationRecorder: WorkerObserver, CoordinationObserver {
    let recording = RecordingObserver()
    let duplicates: AsyncStream<String>
    private let duplicatesSink: AsyncStream<String>.Continuation
    let waits = Mutex<[String: Int]>([:])

    init() { (duplicates, duplicatesSink) = AsyncStream<String>.makeStream() }

    func stateChanged(ready: Bool) { recording.stateChanged(ready: ready) }
    func taskFinished(name: String, queue: String, outcome: TaskFinishedOutcome, seconds: Double) {
        recording.taskFinished(name: name, queue: queue, outcome: outcome, seconds: seconds)
    }
    func taskStarted(name: String, queue: String) { recording.taskStarted(name: name, queue: queue) }
    func messageRequeued(queue: String) { recording.messageRequeued(queue: queue) }
    func messageDeadLettered(queue: String, reason: String) {
        recording.messageDeadLettered(queue: queue, reason: reason)
    }
    func duplicateSkipped(task: String, queue: String) { duplicatesSink.yield(task) }
    func globalLimitWaited(task: String, limit: String, kind: String, seconds: Double) {
        waits.withLock { $0[kind, default: 0] += 1 }
    }
}

/// Starts a worker with global limits and waits until it consumes.
func startCoordinatedWorker(
    _ registry: TaskRegistry, url: AMQPURL, queue: String, limits: [GlobalLimit] = [], concurrency: Int = 4,
    hostname: String = "it-\(UUID().uuidString.prefix(8))@test"
) async throws -> (RunningWorker, CoordinationRecorder) {
    let recorder = CoordinationRecorder()
    let logger = testLogger("it.coord")
    var config = Worker.Configuration(queues: [queue], concurrency: concurrency, hostname: hostname)
    config.globalLimits = limits
    let worker = Worker(
        registry: registry, configuration: config, broker: AMQPBroker(url: url), logger: logger, observer: recorder)
    let group = ServiceGroup(configuration: .init(services: [.init(service: worker)], logger: logger))
    let task = Task { try await group.run() }
    _ = try await first(recorder.recording.readyEvents, within: .seconds(30), "the worker to be ready") { $0 }
    return (RunningWorker(worker: worker, observer: recorder.recording, group: group, task: task), recorder)
}

/// Bounded polling of the broker's view (message and consumer counts have no event to wait on).
func waitForBroker(
    _ what: String, within timeout: Duration = .seconds(30), _ condition: @escaping @Sendable () async -> Bool
) async throws {
    try await within(timeout, what) {
        while !(await condition()) { try await Task.sleep(for: .milliseconds(20)) }
    }
}

/// Times of events from several tasks, kept in order of arrival.
final class Ledger: Sendable {
    private let times = Mutex<[Double]>([])
    func record() { times.withLock { $0.append(Date().timeIntervalSince1970) } }
    var all: [Double] { times.withLock { $0 } }
}

/// The most intervals that overlap at any instant (an end at the same instant as a start does not overlap).
func maxOverlap(_ intervals: [(start: Double, end: Double)]) -> Int {
    var events: [(Double, Int)] = []
    for i in intervals {
        events.append((i.start, 1))
        events.append((i.end, -1))
    }
    events.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
    var now = 0, most = 0
    for e in events {
        now += e.1
        most = max(most, now)
    }
    return most
}

/// A counter shared with `@Sendable` predicates.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    /// Adds one and returns the new count.
    func increment() -> Int { value.add(1, ordering: .relaxed).newValue }
    var count: Int { value.load(ordering: .relaxed) }
}
