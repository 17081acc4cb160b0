import CeleriacBroker
import CeleriacCore
import Logging
import Synchronization

/// Publishes a global rate limit's tokens, on the worker that won the election for it.
///
/// Every worker with the limit runs one refiller candidate on a connection of its own. The candidate that declares
/// the exclusive queue `celeriac.rate.<limit>.refiller` leads (the broker answers 405 RESOURCE_LOCKED to the others,
/// who try again every `retryInterval`); it publishes `rate` tokens per second into the token queue, whose
/// `x-max-length` (the burst) makes the broker drop the oldest token when nobody takes them. When the leader's
/// connection dies, the broker deletes its lock queue and the next candidate takes over (beat's leader election,
/// see `QueueLeaderLock`).
public final class TokenRefiller: Sendable {
    /// The global limit's name; it names the token queue `celeriac.rate.<limit>` and the lock queue.
    public let limit: String
    let broker: any Broker
    let heartbeat: Int
    let perSecond: Double
    let burst: Int
    let retryInterval: Duration
    let logger: Logger
    let connectionName: String
    private let leader = Atomic<Bool>(false)
    private let changes: AsyncStream<Bool>.Continuation
    /// Leadership changes (true = this candidate now refills).
    public let leadership: AsyncStream<Bool>

    /// A candidate for `limit`; nothing connects before ``run()``.
    ///
    /// - Parameters:
    ///   - broker: where the token queue and the lock live; the refiller opens a connection of its own.
    ///   - limit: the name of the global limit (`--global-rate-limit NAME=…`) whose tokens it publishes.
    ///   - perSecond: tokens published per second while leading.
    ///   - burst: the token queue's `x-max-length` (at least 1): how many unused tokens may pile up.
    ///   - retryInterval: how often a candidate that is not leading retries the lock.
    ///   - heartbeat: the AMQP heartbeat of its own connection, in seconds; short, so a dead leader is replaced soon.
    ///   - connectionName: the connection's name in the broker's management UI.
    ///   - logger: where leadership changes and refill errors are logged.
    public init(
        broker: any Broker, limit: String, perSecond: Double, burst: Int, retryInterval: Duration = .seconds(1),
        heartbeat: Int = 5, connectionName: String = "celeriac-refiller", logger: Logger
    ) {
        self.broker = broker
        self.heartbeat = heartbeat
        self.limit = limit
        self.perSecond = perSecond
        self.burst = max(1, burst)
        self.retryInterval = retryInterval
        self.logger = logger
        self.connectionName = connectionName
        (leadership, changes) = AsyncStream<Bool>.makeStream(bufferingPolicy: .unbounded)
    }

    /// True while this candidate holds the lock and publishes the tokens.
    public var isLeader: Bool { leader.load(ordering: .relaxed) }

    private func set(_ value: Bool) {
        if leader.exchange(value, ordering: .relaxed) != value { changes.yield(value) }
    }

    /// Campaigns and refills until cancelled.
    public func run() async {
        defer {
            set(false)
            changes.finish()
        }
        while !Task.isCancelled {
            let conn = broker.connection(.init(name: connectionName, confirms: false, maxHeartbeat: heartbeat))
            await campaign(conn)
            set(false)
            await conn.close()
            if !Task.isCancelled { try? await Task.sleep(for: retryInterval) }
        }
    }

    private func campaign(_ conn: any BrokerConnection) async {
        let events = conn.events()
        do throws(BrokerError) {
            try await conn.connect()
            try await conn.declare(CoordinationTopology.rateQueueSpec(limit, burst: burst))
        } catch {
            logger.warning(
                "rate-limit refiller: cannot connect or declare the token queue; retrying",
                metadata: ["limit": .string(limit), "error": .string(error.description)])
            return
        }
        while !Task.isCancelled {
            do throws(BrokerError) {
                try await conn.declare(
                    QueueSpec(
                        CoordinationTopology.refillerLock(limit), durable: false, exclusive: true, autoDelete: true),
                    recreateAfterReconnect: false)
                break
            } catch  where error.replyCode == 405 {
                // Another worker refills this limit.
                try? await Task.sleep(for: retryInterval)
            } catch {
                logger.warning(
                    "rate-limit refiller: lock declare failed; reconnecting",
                    metadata: ["limit": .string(limit), "error": .string(error.description)])
                return
            }
        }
        guard !Task.isCancelled else { return }
        logger.info(
            "rate-limit refiller elected: this worker publishes the tokens",
            metadata: ["limit": .string(limit), "rate": .stringConvertible(perSecond)])
        set(true)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await event in events {
                    switch event {
                    case .disconnected, .closed: return
                    default: continue
                    }
                }
            }
            group.addTask { await self.refill(conn) }
            await group.next()
            group.cancelAll()
        }
        logger.warning("rate-limit refiller stepped down (connection lost)", metadata: ["limit": .string(limit)])
    }

    /// Publishes token k at start + k/rate (the first at once), in batches when the clock is behind.
    private func refill(_ conn: any BrokerConnection) async {
        let start = ContinuousClock.now
        var sent = 0
        let token = OutgoingMessage(
            routingKey: CoordinationTopology.rateQueue(limit), body: [], properties: .init(deliveryMode: 1))
        while !Task.isCancelled {
            let elapsed = ContinuousClock.now - start
            let due = Int((seconds(elapsed) * perSecond).rounded(.down)) + 1
            if due > sent {
                // After a stall the queue's x-max-length caps the burst; publishing more would only be dropped.
                let count = min(due - sent, burst)
                do throws(BrokerError) {
                    try await conn.publish(Array(repeating: token, count: count))
                } catch {
                    logger.warning(
                        "rate-limit refiller: publish failed; stepping down",
                        metadata: ["limit": .string(limit), "error": .string(error.description)])
                    return
                }
                sent = due
            }
            let next = start + .nanoseconds(Int64(Double(sent) / perSecond * 1e9))
            let floor = ContinuousClock.now + .milliseconds(2)
            do { try await Task.sleep(until: max(next, floor), clock: .continuous) } catch { return }
        }
    }
}

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
