import CeleriacBroker
import CeleriacCore
import CeleriacMessaging
import FoundationEssentials
import Logging
import Synchronization

/// Durable revocations (``RevocationLog``): the broker's revocation log (a stream queue) is replayed before the
/// worker takes its first task, followed while it runs, and extended with revocations that arrive only as a Celery
/// broadcast. It has a connection of its own: a stream RabbitMQ cannot serve for a while (its coordinator on a
/// lost cluster node) closes this connection, never the ones that consume and publish tasks.
final class RevocationFollower: Sendable {
    private let connection: any BrokerConnection
    /// Where replayed and followed revocations go (the execution's revoked set).
    private let revoked: RevokedSet
    /// Ids known to be in the broker's revocation log (so a broadcast is not written to it again).
    private let loggedRevocations = RevokedSet()
    private let hostname: String
    private let enabled: Bool
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)

    init(connection: any BrokerConnection, revoked: RevokedSet, hostname: String, enabled: Bool, logger: Logger) {
        self.connection = connection
        self.revoked = revoked
        self.hostname = hostname
        self.enabled = enabled
        self.logger = logger
    }

    /// Stops following the log and closes its connection.
    func stop() async {
        stopping.store(true, ordering: .relaxed)
        await connection.close()
    }

    /// Reads the broker's revocation log up to a marker this worker writes now, so every revocation recorded
    /// before start-up is known before the first task is consumed; then keeps following the log.
    func replay() async throws(BrokerError) {
        guard enabled else { return }
        try await connection.connect()
        let token = "\(hostname)-\(UUID().uuidString.lowercased())"
        let consumer = try await openRevocationLog(marker: token)
        let (replayed, replayedSink) = AsyncStream<Int>.makeStream()
        Task { await self.followRevocationLog(consumer, marker: token, replayed: replayedSink) }
        let count: Int? = await withTaskGroup(of: Int?.self) { group in
            group.addTask {
                for await n in replayed { return n }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(30))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        if let count {
            logger.info(
                "revocation log replayed",
                metadata: ["revoked": .stringConvertible(count), "queue": .string(RevocationLog.queue)])
        } else {
            logger.warning(
                "the revocation log was not replayed within 30 s; starting anyway: tasks revoked before now may run here",
                metadata: ["queue": .string(RevocationLog.queue)])
        }
    }

    /// Declares the log, writes the marker and starts reading from the first entry. Several workers starting at
    /// once on a fresh broker race to create the stream; the losers see it "not found" (RESOURCE_ERROR 506) or an
    /// INTERNAL_ERROR for a moment, and the broker closes their connection: wait for the reconnect and try again
    /// (up to `attempts` times, about 20 s for 10) instead of failing the start.
    ///
    /// The stream is declared without being re-declared after reconnects: the consumer is re-created by the
    /// transport, and if RabbitMQ cannot serve the stream then, that consumer alone is dropped and
    /// ``followRevocationLog`` opens it again later.
    private func openRevocationLog(marker token: String, attempts: Int = 10) async throws(BrokerError) -> Consumer {
        var attempt = 0
        while true {
            do {
                _ = try await connection.declare(RevocationLog.spec, recreateAfterReconnect: false)
                try await connection.publish(RevocationLog.marker(token))
                return try await connection.consume(
                    queue: RevocationLog.queue, prefetch: 1000,
                    tag: "\(hostname)-revocations-\(attempt)", noAck: false, exclusive: false,
                    arguments: RevocationLog.fromFirst)
            } catch {
                let transient = error.isConnectionLevel || error.code == .channelClosed
                guard transient, attempt < attempts else { throw error }
                attempt += 1
                logger.info(
                    "the revocation log is not ready yet; trying again",
                    metadata: [
                        "attempt": .stringConvertible(attempt), "error": .string(error.description),
                    ])
                _ = await connection.waitUntilConnected(timeout: .seconds(10))
                try? await Task.sleep(for: .milliseconds(200 * attempt))
            }
        }
    }

    /// Applies the log's entries, signals when this worker's marker is reached, and keeps following the log. When
    /// the broker drops the consumer (the stream became unavailable), the revocations already known stay in
    /// memory and the log is opened again every 10 s until it can be read; tasks keep running meanwhile.
    private func followRevocationLog(_ first: Consumer, marker: String, replayed: AsyncStream<Int>.Continuation) async {
        var count = 0
        var consumer = first
        var marker = marker
        while true {
            for await delivery in consumer.deliveries {
                switch RevocationLog.decode(delivery.body) {
                case .revoke(let id, let at, _)?:
                    if await revoked.insert(id, revokedAt: at) { count += 1 }
                    await loggedRevocations.insert(id, revokedAt: at)
                case .marker(let token)? where token == marker:
                    replayed.yield(count)
                    replayed.finish()
                default:
                    break
                }
                connection.ackInBackground(delivery.tag)
            }
            replayed.finish()
            if stopping.load(ordering: .relaxed) || Task.isCancelled { return }
            logger.warning(
                "the revocation log cannot be read; revocations known so far stay in effect, retrying every 10 s",
                metadata: ["queue": .string(RevocationLog.queue)])
            while true {
                try? await Task.sleep(for: .seconds(10))
                if stopping.load(ordering: .relaxed) || Task.isCancelled { return }
                marker = "\(hostname)-\(UUID().uuidString.lowercased())"
                if let fresh = try? await openRevocationLog(marker: marker, attempts: 0) {
                    consumer = fresh
                    logger.info("reading the revocation log again", metadata: ["queue": .string(RevocationLog.queue)])
                    break
                }
            }
        }
    }

    /// Records revocations that arrived as a broadcast only (e.g. `celery control revoke`) in the log, unless
    /// the log already has them. The short random wait lets the log deliver entries the sender wrote itself
    /// (``ControlClient/revoke(_:terminate:timeout:)`` writes first) and spreads the writers of a large cluster.
    func recordBroadcast(_ ids: [String], terminate: Bool) {
        guard enabled, !ids.isEmpty else { return }
        Task {
            try? await Task.sleep(for: .milliseconds(Int.random(in: 100...400)))
            var missing: [OutgoingMessage] = []
            for id in ids where !(await loggedRevocations.contains(id)) {
                missing.append(RevocationLog.entry(id: id, terminate: terminate, by: hostname))
            }
            guard !missing.isEmpty else { return }
            do {
                try await connection.publish(missing)
            } catch {
                logger.warning(
                    "could not record revocations in the broker's log; workers started later may run them",
                    metadata: ["ids": .string(ids.joined(separator: ",")), "error": .string(String(describing: error))])
            }
        }
    }
}
