import CeleriacBroker
import CeleriacCore
import FoundationEssentials
import Logging

/// What remote control may see and change of a worker: the whole surface ``RemoteControl`` is written against.
///
/// Remote control answers Celery's inspect and control commands; it needs the worker's identity and settings,
/// a look at its running and prefetched tasks, and the run-time changes Celery defines (revoke, rate and time
/// limits, pool size, queues, events, shutdown). Nothing else of the worker is reachable from it, so a command
/// cannot reach into the worker's state by accident, and remote control is tested against a fake.
protocol RemoteControlTarget: Sendable {
    /// The settings the worker was started with.
    var configuration: Worker.Configuration { get }
    /// Where replies are published (the worker's publishing connection).
    var replies: any MessagePublishing { get }
    /// The broker's address and settings for `stats` and `report`.
    var brokerInfo: BrokerInfo { get }
    var brokerDescription: String { get }
    var logger: Logger { get }
    /// Advances the Lamport clock for a received command and returns the new value.
    func tick() -> Int
    /// The Lamport clock now.
    var lamportClock: Int { get }
    var registeredTaskNames: [String] { get }
    var startedAt: Date { get }
    /// Concurrency and prefetch now (changed by `pool_grow`/`pool_shrink`).
    var concurrencyNow: Int { get }
    var prefetchNow: Int { get }
    /// Queues consumed now (changed by `add_consumer`/`cancel_consumer`).
    var queuesConsumed: [String] { get }
    /// Tasks run so far, by name.
    var totalsByTask: [String: Int] { get }
    /// Executor-specific `pool` fields (a process pool's child pids and counters).
    var poolStatistics: JSONObject { get }
    /// Running tasks: their message, queue and start.
    func activeTasks() -> [(message: TaskMessage, queue: String, startedAt: Date)]
    /// Prefetched deliveries waiting for a slot, with their queue.
    func reservedDeliveries() -> [(Delivery, String)]
    func revokedIDs() async -> [String]
    func revoke(_ id: String, terminate: Bool) async
    /// Writes revocations that came by broadcast into the durable log, when no worker did yet.
    func recordBroadcastRevocations(_ ids: [String], terminate: Bool)
    func setRateLimit(_ task: String, _ limit: RateLimit?) async throws(CeleriacError)
    func setTimeLimit(_ task: String, _ limit: TaskMessage.TimeLimit)
    func resizePool(by delta: Int) async -> Int
    func addConsumer(_ queue: String) async throws(CeleriacError) -> Bool
    func cancelConsumer(_ queue: String) async throws(CeleriacError) -> Bool
    /// Task events on or off (`enable_events`/`disable_events`).
    var eventsEnabled: Bool { get }
    func setEventsEnabled(_ on: Bool)
    /// Sends a `worker-heartbeat` event now.
    func sendHeartbeat()
    /// Starts a warm shutdown.
    func requestShutdown()
}

extension Worker: RemoteControlTarget {
    var replies: any MessagePublishing { publisherConnection }
    var brokerInfo: BrokerInfo { broker.info }
    var brokerDescription: String { broker.description }
    func tick() -> Int { lamport.tick() }
    var lamportClock: Int { lamport.now }
    var concurrencyNow: Int { execution.concurrency }
    var prefetchNow: Int { intake.prefetch }
    var queuesConsumed: [String] { intake.queues }
    var totalsByTask: [String: Int] { execution.totalsByTask }
    var poolStatistics: JSONObject { execution.executor.statistics }
    func activeTasks() -> [(message: TaskMessage, queue: String, startedAt: Date)] { execution.active() }
    func reservedDeliveries() -> [(Delivery, String)] { intake.reserved }
    func setTimeLimit(_ task: String, _ limit: TaskMessage.TimeLimit) { execution.setTimeLimit(task, limit) }
    func recordBroadcastRevocations(_ ids: [String], terminate: Bool) {
        revocations.recordBroadcast(ids, terminate: terminate)
    }
    var eventsEnabled: Bool { events.enabled }
    func setEventsEnabled(_ on: Bool) { events.setEnabled(on) }
    func sendHeartbeat() {
        events.send(
            "worker-heartbeat",
            ["freq": .double(5), "sw_ident": "celeriac", "sw_ver": .string(WorkerEvents.version), "sw_sys": "Linux"])
    }
}
