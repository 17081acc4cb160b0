import CeleriacBroker
import Foundation
import Logging
import Synchronization

/// Leader election through RabbitMQ: the leader is the beat whose connection owns the *exclusive* queue
/// `celeriac.beat.lock`.
///
/// Each beat tries to declare the queue every `retryInterval`; the broker answers 405 RESOURCE_LOCKED while
/// another connection owns it. When the owner's connection dies (process killed, host gone: detected by the TCP
/// close or by missed heartbeats) the broker deletes the queue and the next declare wins. The lock uses its own
/// connection with a short heartbeat; on any disconnect the leader steps down at once and campaigns again on a
/// fresh connection (the transport's automatic re-declare after a reconnect is not relied upon).
public final class QueueLeaderLock: LeaderElection {
    /// The exclusive queue whose owner is the leader (the CLI uses `NAME.lock`, by default `celeriac.beat.lock`).
    public let lockQueue: String
    let broker: any Broker
    let heartbeat: Int
    let retryInterval: Duration
    let logger: Logger
    private let leader = Mutex(false)
    private let connection = Mutex<(any BrokerConnection)?>(nil)
    private let sinks = Mutex<[AsyncStream<Bool>.Continuation]>([])

    /// A lock that campaigns through `broker` on its own connection.
    ///
    /// - Parameters:
    ///   - broker: where the lock queue lives; the lock opens a connection of its own.
    ///   - lockQueue: the exclusive queue whose holder leads (one name per group of candidates).
    ///   - logger: where leadership changes are logged.
    ///   - retryInterval: how often a standing-by beat retries the declare, and the pause before reconnecting.
    ///   - heartbeat: the AMQP heartbeat of the lock connection, in seconds; short, so a dead leader's queue goes soon.
    public init(
        broker: any Broker, lockQueue: String, retryInterval: Duration = .seconds(1), heartbeat: Int = 5, logger: Logger
    ) {
        self.broker = broker
        self.heartbeat = heartbeat
        self.lockQueue = lockQueue
        self.retryInterval = retryInterval
        self.logger = logger
    }

    /// True while this beat owns the lock queue and the lock connection is up.
    public var isLeader: Bool {
        leader.withLock { $0 } && (connection.withLock { $0 }?.isConnected ?? false)
    }

    /// A new stream of leadership changes: true when this beat acquires the lock, false when it loses it. Only changes
    /// are yielded (no initial false); the stream finishes when ``run()`` returns.
    public func changes() -> AsyncStream<Bool> {
        let (stream, c) = AsyncStream<Bool>.makeStream()
        sinks.withLock { $0.append(c) }
        return stream
    }

    private func set(_ value: Bool) {
        let changed = leader.withLock { old -> Bool in
            defer { old = value }; return old != value
        }
        guard changed else { return }
        for s in sinks.withLock({ $0 }) { s.yield(value) }
    }

    /// Campaigns until cancelled: connects, declares the lock queue until the declare succeeds, holds the lock until
    /// the connection drops, then starts again on a fresh connection after `retryInterval`. On return this beat is
    /// no longer the leader and every ``changes()`` stream has finished.
    public func run() async {
        defer {
            set(false)
            for s in sinks.withLock({ $0 }) { s.finish() }
        }
        while !Task.isCancelled {
            let conn = broker.connection(.init(name: "celeriac-beat-lock", confirms: false, maxHeartbeat: heartbeat))
            connection.withLock { $0 = conn }
            await campaign(conn)
            set(false)
            connection.withLock { $0 = nil }
            await conn.close()
            if !Task.isCancelled { try? await Task.sleep(for: retryInterval) }
        }
    }

    private func campaign(_ conn: any BrokerConnection) async {
        do throws(BrokerError) { try await conn.connect() } catch {
            logger.warning("beat lock: cannot connect; retrying", metadata: ["error": .string(error.description)])
            return
        }
        let events = conn.events()
        while !Task.isCancelled {
            do throws(BrokerError) {
                try await conn.declare(QueueSpec(lockQueue, durable: false, exclusive: true, autoDelete: true))
                break
            } catch  where error.replyCode == 405 {
                // Another beat holds the lock.
                try? await Task.sleep(for: retryInterval)
            } catch {
                logger.warning(
                    "beat lock: declare failed; reconnecting", metadata: ["error": .string(error.description)])
                return
            }
        }
        guard !Task.isCancelled else { return }
        logger.info("beat lock acquired: this beat is the leader", metadata: ["lock": .string(lockQueue)])
        set(true)
        for await event in events {
            switch event {
            case .disconnected(let error):
                logger.warning(
                    "beat lock: connection lost; stepping down", metadata: ["error": .string(error.description)])
                return
            case .closed:
                return
            default:
                continue
            }
        }
    }
}

/// The leader lock's name before it moved behind the broker ports.
@available(*, deprecated, renamed: "QueueLeaderLock")
public typealias AMQPLeaderLock = QueueLeaderLock
