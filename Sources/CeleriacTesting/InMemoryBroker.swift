import CeleriacBroker
import CeleriacCore
import FoundationEssentials
import Synchronization

/// A broker that lives in the process: every port of `Broker` with RabbitMQ's behaviour, for fast tests of
/// tasks, workers and canvases without a RabbitMQ node.
///
/// It keeps Celery's message model and RabbitMQ's rules (exchanges and bindings, prefetch-bounded round-robin
/// delivery, late acks and requeues with the redelivered flag, queue and message TTLs with dead-lettering and
/// `x-death`, exclusive, auto-delete and expiring queues, priorities, length limits, streams read from an offset),
/// so the worker and client above it run exactly the code they run against RabbitMQ: Celery's delayed-delivery
/// topology, chord joins, leader locks and the revocation log included. The contract suite
/// (``BrokerContract``) holds it to RabbitMQ's behaviour: each case runs on both.
///
/// Time comes from a `CeleriacClock`: with a ``ManualClock``, TTLs and delays run out when the test advances it.
///
/// ```swift
/// let clock = ManualClock()
/// let broker = InMemoryBroker(clock: clock)
/// let client = CeleriacClient(broker: broker)
/// ```
public final class InMemoryBroker: Broker {
    let state: Mutex<MemoryBrokerState>
    /// The clock TTLs, delays and `x-expires` follow.
    public let clock: any CeleriacClock
    private let timer = Mutex<(deadline: Duration, task: Task<Void, Never>)?>(nil)
    private struct Waiter {
        let condition: @Sendable (MemoryBrokerState) -> Bool
        let continuation: CheckedContinuation<Bool, Never>
    }
    private let waiters = Mutex<(next: UInt64, all: [UInt64: Waiter])>((0, [:]))

    /// An empty broker (one virtual host, RabbitMQ's `amq.*` exchanges) on `clock`.
    public init(clock: any CeleriacClock = SystemClock()) {
        self.clock = clock
        var initial = MemoryBrokerState()
        initial.wallAtZero = clock.now.timeIntervalSince1970 - ManualClock.seconds(clock.uptime)
        self.state = Mutex(initial)
    }

    deinit {
        timer.withLock { $0?.task.cancel() }
    }

    /// A new connection to this broker, not yet connected; it follows `options` as an AMQP connection would.
    public func connection(_ options: ConnectionOptions) -> any BrokerConnection {
        InMemoryConnection(broker: self, options: options)
    }

    /// `memory` transport at `localhost`, user `guest`, the broker's one virtual host, no TLS or heartbeat.
    public var info: BrokerInfo {
        BrokerInfo(
            transport: "memory", host: "localhost", port: 0, user: "guest", virtualHost: MemoryBrokerState.vhost,
            tls: false, connectTimeout: 0, heartbeat: 0)
    }

    /// `memory://`.
    public var description: String { "memory://" }

    // MARK: What tests can look at and do

    /// The messages ready in a queue now, oldest first (nil when there is no such queue). Nothing is consumed;
    /// TTLs due by the clock's time are applied first.
    public func messages(in queue: String) -> [Delivery]? {
        _ = try? mutate { _, _, _ throws(BrokerError) in () }
        return state.withLock { s in
            guard let q = s.queues[queue] else { return nil }
            return (q.isStream ? q.log : q.ready).map {
                Delivery(
                    tag: DeliveryTag(generation: 0, channel: 0, value: $0.sequence), consumerTag: "",
                    redelivered: $0.redelivered,
                    exchange: $0.exchange, routingKey: $0.routingKey, properties: $0.properties, body: $0.body,
                    messageCount: nil)
            }
        }
    }

    /// The names of the queues that exist now.
    public var queueNames: [String] { state.withLock { $0.queues.keys.sorted() } }

    /// How many messages wait in Celery's delayed-delivery queues (`celery_delayed_*`) now, TTLs due applied first.
    public var delayedMessageCount: Int {
        _ = try? mutate { _, _, _ throws(BrokerError) in () }
        return state.withLock { s in
            s.queues.filter { $0.key.hasPrefix("celery_delayed_") }.values.reduce(0) { $0 + $1.ready.count }
        }
    }

    /// Blocks publishers, as RabbitMQ does under a memory or disk alarm (`connection.blocked`): publishes wait, and
    /// throw `BrokerError.Code.blocked` after their connection's `blockedTimeout`. `nil` lifts the block.
    public func setBlocked(_ reason: String?) {
        let sinks = state.withLock { s -> [AsyncStream<ConnectionEvent>.Continuation] in
            s.blockedReason = reason
            return s.connections.values.filter(\.open).flatMap(\.events)
        }
        for sink in sinks { sink.yield(reason.map { .blocked($0) } ?? .unblocked) }
    }

    /// Waits until `count` messages wait in Celery's delayed-delivery queues (a countdown, an ETA or a retry was
    /// published), at most `limit` of real time: the event to wait for before advancing the clock past a delay.
    ///
    /// - Throws: ``ContractViolation`` naming what did not happen by the deadline.
    public func waitForDelayedMessages(_ count: Int = 1, within limit: Duration = .seconds(10)) async throws {
        try await wait("\(count) delayed message(s)", within: limit) { s in
            s.queues.filter { $0.key.hasPrefix("celery_delayed_") }.values.reduce(0) { $0 + $1.ready.count } >= count
        }
    }

    /// Waits until `count` messages are ready in `queue`, at most `limit` of real time.
    public func waitForMessages(in queue: String, _ count: Int = 1, within limit: Duration = .seconds(10)) async throws
    {
        try await wait("\(count) message(s) ready in '\(queue)'", within: limit) { s in
            (s.queues[queue]?.ready.count ?? 0) >= count
        }
    }

    /// Waits until exactly `count` queues have names starting with `prefix` (0: until they are all gone, as chord
    /// join queues once their chord has joined), at most `limit` of real time.
    public func waitForQueues(prefixed prefix: String, count: Int, within limit: Duration = .seconds(10)) async throws {
        try await wait("\(count) queue(s) named '\(prefix)…'", within: limit) { s in
            s.queues.keys.filter { $0.hasPrefix(prefix) }.count == count
        }
    }

    /// Resumes when `condition` holds after some change of state (checked after every change, never polled).
    func wait(_ what: String, within limit: Duration, until condition: @escaping @Sendable (MemoryBrokerState) -> Bool)
        async throws
    {
        let met: Bool = await withTaskGroup(of: Bool.self) { group in
            let id = waiters.withLock { w -> UInt64 in
                w.next += 1
                return w.next
            }
            group.addTask {
                await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                    let now = self.state.withLock { condition($0) }
                    if now {
                        c.resume(returning: true)
                        return
                    }
                    self.waiters.withLock { $0.all[id] = Waiter(condition: condition, continuation: c) }
                    // A change between the look and the registration is caught by looking once more.
                    self.checkWaiters()
                }
            }
            group.addTask {
                try? await Task.sleep(for: limit)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            self.waiters.withLock { $0.all.removeValue(forKey: id) }?.continuation.resume(returning: false)
            return first
        }
        if !met { throw ContractViolation("waited \(limit) for \(what) in the in-memory broker") }
    }

    private func checkWaiters() {
        let pending = waiters.withLock { $0.all }
        guard !pending.isEmpty else { return }
        let met = state.withLock { s in pending.filter { $0.value.condition(s) }.map(\.key) }
        let resumed = waiters.withLock { w in met.compactMap { w.all.removeValue(forKey: $0) } }
        for waiter in resumed { waiter.continuation.resume(returning: true) }
    }

    // MARK: Running state changes

    /// Runs `body` on the state at the clock's time now, carries out its effects, and re-arms the timer.
    func mutate<T>(_ body: (inout MemoryBrokerState, Duration, inout MemoryBrokerState.Outbox) throws(BrokerError) -> T)
        throws(BrokerError) -> T
    {
        let now = clock.uptime
        var outbox = MemoryBrokerState.Outbox()
        // The effects are carried out under the lock, in the order of the changes that made them: a delivery made
        // by one call (an ack that freed prefetch room) must reach its consumer before another call's cancel ends
        // that consumer's stream, as RabbitMQ's channel keeps deliveries ahead of `cancel-ok`. Yielding and
        // finishing never block or call back into the broker.
        let result: Result<(T, Duration?), BrokerError> = state.withLock { s in
            s.advance(to: now, outbox: &outbox)
            let result: Result<(T, Duration?), BrokerError>
            do throws(BrokerError) {
                let value = try body(&s, now, &outbox)
                result = .success((value, s.nextDeadline()))
            } catch {
                result = .failure(error)
            }
            carryOut(outbox)
            return result
        }
        checkWaiters()
        switch result {
        case .success(let (value, deadline)):
            arm(deadline)
            return value
        case .failure(let error):
            throw error
        }
    }

    func carryOut(_ outbox: MemoryBrokerState.Outbox) {
        for (channel, delivery) in outbox.deliveries { channel.yield(delivery) }
        for channel in outbox.finished { channel.finish() }
        for (sink, event) in outbox.events { sink.yield(event) }
    }

    /// Wakes at the next TTL or `x-expires` deadline (on the broker's clock) to apply it.
    private func arm(_ deadline: Duration?) {
        guard let deadline else { return }
        timer.withLock { current in
            if let current, current.deadline <= deadline { return }
            current?.task.cancel()
            let clock = self.clock
            // A plain Task: the timer belongs to the broker, not to whichever caller happened to arm it.
            let task = Task { [weak self] in
                do { try await clock.sleep(until: deadline) } catch { return }
                self?.fire(deadline)
            }
            current = (deadline, task)
        }
    }

    private func fire(_ deadline: Duration) {
        timer.withLock { current in
            if current?.deadline == deadline { current = nil }
        }
        _ = try? mutate { _, _, _ throws(BrokerError) in () }
    }
}
