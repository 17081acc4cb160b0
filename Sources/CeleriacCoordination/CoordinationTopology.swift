import CeleriacBroker

/// Every queue and header name of the broker-only coordination features, in one place.
///
/// All of them are plain RabbitMQ objects, so `rabbitmqctl list_queues` shows the whole state:
/// `celeriac.rate.<limit>` (tokens), `celeriac.rate.<limit>.refiller` (exclusive: the elected refiller),
/// `celeriac.sem.<limit>` (permits), `celeriac.sem.<limit>.ready` (seeded marker), `celeriac.unique.<key>` (one
/// lock message) and `celeriac.unique.index` (what `celeriac locks list` reads).
public enum CoordinationTopology {
    /// Header carried by a task sent with a unique key; the worker releases the lock when the task finishes.
    public static let uniqueKeyHeader = "x-celeriac-unique-key"
    /// Header added to dead-lettered copies: when (Unix seconds) the message was dead-lettered.
    public static let deadAtHeader = "x-celeriac-dead-at"
    /// Header added by `dlq replay`: how many times the message was replayed.
    public static let replaysHeader = "x-celeriac-replays"

    /// The token queue of global rate limit `limit`.
    public static func rateQueue(_ limit: String) -> String { "celeriac.rate.\(safe(limit))" }
    /// The exclusive queue whose owner publishes `limit`'s tokens (the elected refiller).
    public static func refillerLock(_ limit: String) -> String { "celeriac.rate.\(safe(limit)).refiller" }
    /// The permit queue of global concurrency limit `limit`.
    public static func semaphoreQueue(_ limit: String) -> String { "celeriac.sem.\(safe(limit))" }
    /// The marker queue that says `limit`'s permits were seeded (so they are seeded only once).
    public static func semaphoreReady(_ limit: String) -> String { "celeriac.sem.\(safe(limit)).ready" }
    /// The exclusive queue held by the worker seeding `limit`'s permits, so two workers never seed at once.
    public static func semaphoreSeedLock(_ limit: String) -> String { "celeriac.sem.\(safe(limit)).seed" }
    /// The lock queue of unique key `key` (long keys are shortened with a hash).
    public static func uniqueQueue(_ key: String) -> String { "celeriac.unique.\(safe(key))" }
    /// The durable queue of lock index entries that `celeriac locks list` reads.
    public static let uniqueIndex = "celeriac.unique.index"

    /// The token queue of a global rate limit: at most `burst` ready tokens; a full queue drops its oldest token.
    public static func rateQueueSpec(_ limit: String, burst: Int) -> QueueSpec {
        QueueSpec(rateQueue(limit), durable: true, arguments: ["x-max-length": .int(max(1, burst))])
    }

    /// The permit queue of a global concurrency limit (durable; its N persistent permits are seeded once).
    public static func semaphoreSpec(_ limit: String) -> QueueSpec { QueueSpec(semaphoreQueue(limit), durable: true) }

    /// The lock queue of a unique key: one message at most (a second publish is nacked), deleted by the broker one
    /// day after its last use.
    public static func uniqueSpec(_ key: String) -> QueueSpec {
        QueueSpec(
            uniqueQueue(key), durable: true,
            arguments: [
                "x-max-length": .int(1), "x-overflow": .string("reject-publish"), "x-expires": .int(uniqueQueueExpiry),
            ])
    }

    /// Lock TTLs are capped below this, so the queue can never be deleted while its lock message is still valid.
    public static let uniqueQueueExpiry = 86_400_000
    /// The longest unique-lock TTL accepted: 86 000 000 ms (just under 24 h).
    public static let maxUniqueTTLMilliseconds = 86_000_000

    /// The declaration of ``uniqueIndex``: durable, no arguments.
    public static var uniqueIndexSpec: QueueSpec { QueueSpec(uniqueIndex, durable: true) }

    /// Queue names allow 255 bytes: keys longer than 180 bytes keep a readable prefix and get a 64-bit FNV-1a hash.
    static func safe(_ key: String) -> String {
        let bytes = Array(key.utf8)
        guard bytes.count > 180 else { return key }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 }
        let prefix = String(decoding: bytes.prefix(100), as: UTF8.self)
        return prefix + "~" + String(hash, radix: 16)
    }
}
