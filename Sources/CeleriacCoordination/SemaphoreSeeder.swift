import CeleriacBroker
import CeleriacCore
import Logging

/// Puts exactly N permits into a global concurrency limit's queue, once for the life of the queue.
///
/// Seeding happens under the exclusive queue `celeriac.sem.<limit>.seed` (only one worker seeds; a seeder that
/// dies drops it) and ends by declaring the durable marker `celeriac.sem.<limit>.ready`. Workers take permits only
/// once the marker exists, so nobody holds a permit while seeding: a seeder that died before the marker leaves
/// only ready permits behind, which the next seeder purges before publishing N afresh. Runs on a connection of its
/// own, because a 405 on the lock declare closes the channel it was sent on.
enum SemaphoreSeeder {
    static func ensureSeeded(
        limit: String, permits: Int, broker: any Broker, logger: Logger, retry: Duration = .milliseconds(200)
    ) async throws(BrokerError) {
        let conn = broker.connection(.init(name: "celeriac-semaphore-seed", confirms: true))
        try await conn.connect()
        defer { Task { await conn.close() } }
        let ready = CoordinationTopology.semaphoreReady(limit)
        while true {
            if try await exists(ready, on: conn) { return }
            do {
                try await conn.declare(
                    QueueSpec(
                        CoordinationTopology.semaphoreSeedLock(limit), durable: false, exclusive: true, autoDelete: true
                    ),
                    recreateAfterReconnect: false)
            } catch  where error.replyCode == 405 {
                // Another worker is seeding right now.
                try? await Task.sleep(for: retry)
                if Task.isCancelled {
                    throw BrokerError(.closed, operation: "seed permits of '\(limit)'", reason: "cancelled")
                }
                continue
            }
            if try await exists(ready, on: conn) {
                try await conn.deleteQueue(CoordinationTopology.semaphoreSeedLock(limit))
                return
            }
            let queue = CoordinationTopology.semaphoreSpec(limit)
            try await conn.declare(queue)
            try await conn.purge(queue: queue.name)
            let permitMessages = (0..<permits).map { i in
                OutgoingMessage(
                    routingKey: queue.name, body: Array("{\"permit\":\(i)}".utf8),
                    properties: .init(contentType: "application/json", deliveryMode: 2, messageID: "permit-\(i)"))
            }
            try await conn.publish(permitMessages)
            try await conn.declare(QueueSpec(ready, durable: true))
            try await conn.deleteQueue(CoordinationTopology.semaphoreSeedLock(limit))
            logger.info(
                "global concurrency permits seeded",
                metadata: ["limit": .string(limit), "permits": .stringConvertible(permits)])
            return
        }
    }

    /// True when the queue exists, false on 404; any other failure is thrown (never taken for "not seeded").
    static func exists(_ queue: String, on conn: any BrokerConnection) async throws(BrokerError) -> Bool {
        do {
            _ = try await conn.inspect(queue: queue)
            return true
        } catch  where error.replyCode == 404 {
            return false
        }
    }
}
