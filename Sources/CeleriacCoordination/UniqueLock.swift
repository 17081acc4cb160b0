import CeleriacBroker
import CeleriacCore
import FoundationEssentials
import Synchronization

/// A unique-task lock: one message in the queue `celeriac.unique.<key>`.
///
/// The queue holds one message at most and refuses more (`x-overflow: reject-publish`, so with publisher confirms
/// a second publish is nacked): the sender whose lock message is confirmed owns the key. The message carries the
/// task id and a per-message TTL (the backstop); the worker that finishes the task (success, failure, revoke or
/// dead-letter; not a retry, which is still the same task) takes it off the queue, so the lock lives exactly as
/// long as the task's message.
public enum UniqueLock {
    /// What a lock message says.
    public struct Holder: Sendable, Equatable {
        /// The unique key, as the sender gave it.
        public let key: String
        /// The id of the task holding the key.
        public let taskID: String
        /// The name of the task holding the key.
        public let task: String
        /// Unix seconds when it was taken.
        public let since: Double
        /// The lock's TTL in milliseconds: it ends by itself this long after ``since`` if no worker released it.
        public let ttlMilliseconds: Int
    }

    static func lockMessage(key: String, taskID: String, task: String, ttlMilliseconds: Int, to queue: String)
        -> OutgoingMessage
    {
        let body: JSONValue = [
            "key": .string(key), "task_id": .string(taskID), "task": .string(task),
            "since": .double(Date().timeIntervalSince1970), "ttl_ms": .int(Int64(ttlMilliseconds)),
        ]
        return OutgoingMessage(
            routingKey: queue, body: body.jsonBytes,
            properties: .init(
                contentType: "application/json", deliveryMode: 2, expiration: String(ttlMilliseconds), messageID: taskID
            ))
    }

    static func holder(_ delivery: Delivery) -> Holder? {
        guard let json = try? JSONValue.parse(delivery.body), let key = json["key"]?.stringValue,
            let id = json["task_id"]?.stringValue
        else { return nil }
        return Holder(
            key: key, taskID: id, task: json["task"]?.stringValue ?? "?", since: json["since"]?.doubleValue ?? 0,
            ttlMilliseconds: Int(json["ttl_ms"]?.intValue ?? 0))
    }

    /// Takes the lock: true when this send owns `key` now, false when another task holds it.
    public static func acquire(
        key: String, taskID: String, task: String, ttlMilliseconds: Int, on conn: any BrokerConnection
    ) async throws(BrokerError) -> Bool {
        let spec = CoordinationTopology.uniqueSpec(key)
        try await conn.declare(spec, recreateAfterReconnect: false)
        do {
            try await conn.publish(
                lockMessage(key: key, taskID: taskID, task: task, ttlMilliseconds: ttlMilliseconds, to: spec.name))
            return true
        } catch  where error.code == .publishNacked {
            return false
        }
    }

    /// Reads the holder without taking the lock (basic.get, then a requeue). Nil when the key is free.
    public static func peek(key: String, on conn: any BrokerConnection) async throws(BrokerError) -> Holder? {
        let spec = CoordinationTopology.uniqueSpec(key)
        try await conn.declare(spec, recreateAfterReconnect: false)
        guard let d = try await conn.get(queue: spec.name) else { return nil }
        await conn.reject(d.tag, requeue: true)
        return holder(d)
    }

    /// ``peek(key:on:)`` one at a time in this process: concurrent peeks would hide the message from each other.
    static func peekSerialized(key: String, on conn: any BrokerConnection) async throws(BrokerError) -> Holder? {
        let result = Mutex<Result<Holder?, BrokerError>>(.success(nil))
        await peeks.run {
            do throws(BrokerError) {
                let h = try await peek(key: key, on: conn)
                result.withLock { $0 = .success(h) }
            } catch {
                result.withLock { $0 = .failure(error) }
            }
        }
        return try result.withLock { $0 }.get()
    }

    static let peeks = Serial()

    /// Releases the lock if `taskID` holds it (another holder's lock, taken after this one's TTL ran out, stays).
    /// Returns true when a lock was released.
    @discardableResult
    public static func release(key: String, taskID: String, on conn: any BrokerConnection) async throws(BrokerError)
        -> Bool
    {
        // No declare first (one round trip less per task): a lock queue cleared by `locks clear` answers 404, which
        // closes only this connection's admin channel; the worker's releases run one at a time, so none is hit.
        let d: Delivery?
        do {
            d = try await conn.get(queue: CoordinationTopology.uniqueQueue(key))
        } catch  where error.replyCode == 404 {
            return false
        }
        guard let d else { return false }
        if holder(d)?.taskID == taskID || d.properties.messageID == taskID {
            return await conn.ack(d.tag)
        }
        await conn.reject(d.tag, requeue: true)
        return false
    }

    /// Deletes a key's lock queue (`celeriac locks clear`): the lock is gone whatever holds it.
    public static func clear(key: String, on conn: any BrokerConnection) async throws(BrokerError) {
        try await conn.deleteQueue(CoordinationTopology.uniqueQueue(key))
    }

    /// Every lock held now, from the index (index entries of released or expired locks are dropped on the way).
    /// `probe` is a second connection for the passive checks, whose 404s close their channel (and would requeue the
    /// index entries this connection holds).
    public static func list(on conn: any BrokerConnection, probe: any BrokerConnection) async throws(BrokerError)
        -> [Holder]
    {
        try await conn.declare(CoordinationTopology.uniqueIndexSpec)
        var entries: [(Delivery, Holder)] = []
        while let d = try await conn.get(queue: CoordinationTopology.uniqueIndex) {
            if let h = holder(d) { entries.append((d, h)) } else { await conn.ack(d.tag) }
        }
        var held: [Holder] = []
        var seen = Set<String>()
        for (d, h) in entries {
            let current = seen.contains(h.key) ? nil : try await peekIfExists(key: h.key, on: probe)
            if let current, current.taskID == h.taskID {
                seen.insert(h.key)
                held.append(current)
                await conn.reject(d.tag, requeue: true)
            } else {
                await conn.ack(d.tag)
            }
        }
        return held
    }

    private static func peekIfExists(key: String, on conn: any BrokerConnection) async throws(BrokerError) -> Holder? {
        do {
            _ = try await conn.inspect(queue: CoordinationTopology.uniqueQueue(key))
        } catch  where error.replyCode == 404 {
            return nil
        }
        return try await peek(key: key, on: conn)
    }

    /// The index entry published with an acquired lock (same TTL), for `locks list`.
    static func indexEntry(key: String, taskID: String, task: String, ttlMilliseconds: Int) -> OutgoingMessage {
        var m = lockMessage(
            key: key, taskID: taskID, task: task, ttlMilliseconds: ttlMilliseconds, to: CoordinationTopology.uniqueIndex
        )
        m.properties.deliveryMode = 2
        return m
    }
}
