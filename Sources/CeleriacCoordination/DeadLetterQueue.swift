import CeleriacBroker
import CeleriacCore
import CeleriacMessaging
import FoundationEssentials

/// Reads and repairs the dead-letter queue `celeriac.dead` (`celeriac dlq list|replay|purge`).
///
/// Listing takes every message with basic.get and leaves them unacked, so nothing is lost if the tool dies: they go
/// back when its connection closes. Replay republishes a message to the queue it was dead-lettered from (header
/// `x-celeriac-queue`), with publisher confirms, and acks the dead copy only after the broker confirmed the new one.
public struct DeadLetterQueue: Sendable {
    /// One dead-lettered message, as `dlq list` shows it.
    public struct Entry: Sendable {
        /// The task id (the `id` header, else the correlation id; `?` when neither is there).
        public let taskID: String
        /// The task name (`task` header), or `?`.
        public let task: String
        /// The worker's reason (the first error), or RabbitMQ's own (`x-death`: rejected, expired, maxlen).
        public let reason: String
        /// The queue it was dead-lettered from, where a replay sends it back.
        public let queue: String
        /// Seconds since it was dead-lettered (nil when the message does not say).
        public let age: Double?
        /// How many times `dlq replay` has republished it (0 for a first failure).
        public let replays: Int
    }

    let connection: any BrokerConnection
    /// The dead-letter queue's name (`celeriac.dead` by default).
    public let queue: String

    /// `connection` must have publisher confirms on (replay relies on them).
    public init(connection: any BrokerConnection, queue: String = Topology.deadLetterQueue) {
        self.connection = connection
        self.queue = queue
    }

    static func entry(_ d: Delivery, now: Double) -> Entry {
        let h = d.properties.headers ?? [:]
        func text(_ key: String) -> String? { if case .string(let s)? = h[key] { return s }; return nil }
        var reason = text(HeaderKey.deadReason)
        let compact = TaskCodec.compactSummary(d)
        if reason == nil, case .array(let deaths)? = h["x-death"], case .table(let first)? = deaths.first,
            case .string(let r)? = first["reason"]
        {
            reason = "broker: \(r)"
            if compact != nil, r == "rejected" {
                let from = first["queue"]?.stringValue ?? Topology.stripDelayPrefix(d.routingKey)
                reason =
                    "broker: rejected by a consumer of '\(from)' that cannot read Celeriac's compact form (a Celery worker?); let only Celeriac workers consume '\(from)', then `celeriac dlq replay`"
            }
        }
        let deadAt =
            h[CoordinationTopology.deadAtHeader]?.intValue.map(Double.init) ?? d.properties.timestamp.map(Double.init)
        return Entry(
            taskID: text(HeaderKey.id) ?? compact?.id ?? d.properties.correlationID ?? "?",
            task: text(HeaderKey.task) ?? compact?.name ?? "?",
            reason: reason ?? "?", queue: text(HeaderKey.deadQueue) ?? Topology.stripDelayPrefix(d.routingKey),
            age: deadAt.map { max(0, now - $0) }, replays: Int(h[CoordinationTopology.replaysHeader]?.intValue ?? 0))
    }

    /// Takes every message (unacked) in queue order; the caller settles each.
    func takeAll() async throws(BrokerError) -> [Delivery] {
        var all: [Delivery] = []
        while let d = try await connection.get(queue: queue) { all.append(d) }
        return all
    }

    /// Every message in the queue, oldest first. The messages stay in the queue.
    public func list() async throws(BrokerError) -> [Entry] {
        let all = try await takeAll()
        let now = Date().timeIntervalSince1970
        let entries = all.map { Self.entry($0, now: now) }
        for d in all { await connection.reject(d.tag, requeue: true) }
        return entries
    }

    /// Republishes the matching messages to their original queues and removes them from the dead-letter queue.
    ///
    /// - Parameters:
    ///   - id: one task id, or nil for all.
    ///   - task: only messages of this task name.
    /// - Returns: the replayed entries.
    public func replay(id: String?, task: String?) async throws(BrokerError) -> [Entry] {
        let all = try await takeAll()
        let now = Date().timeIntervalSince1970
        var replayed: [Entry] = []
        var failure: BrokerError?
        for d in all {
            let e = Self.entry(d, now: now)
            guard failure == nil, id == nil || e.taskID == id, task == nil || e.task == task else {
                await connection.reject(d.tag, requeue: true)
                continue
            }
            var props = d.properties
            var headers = props.headers ?? [:]
            for key in [
                HeaderKey.deadReason, HeaderKey.deadQueue, HeaderKey.deadWorker, CoordinationTopology.deadAtHeader,
                "x-death",
                "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
            ] { headers[key] = nil }
            headers[CoordinationTopology.replaysHeader] = .int64(Int64(e.replays + 1))
            props.headers = headers
            do {
                try await connection.publish(OutgoingMessage(routingKey: e.queue, body: d.body, properties: props))
                await connection.ack(d.tag)
                replayed.append(e)
            } catch {
                failure = error
                await connection.reject(d.tag, requeue: true)
            }
        }
        if let failure { throw failure }
        return replayed
    }

    /// Removes every message; returns how many.
    public func purge() async throws(BrokerError) -> Int { Int(try await connection.purge(queue: queue)) }

    /// Declares the dead-letter exchange and queue (as workers do), so the tools work on a fresh broker too. An
    /// existing queue is left as it is (whatever its type), a missing one is created classic.
    public func declare() async throws(BrokerError) {
        let (x, q, b) = Topology.deadLetter()
        try await connection.declare(x)
        if (try? await connection.inspect(queue: queue)) == nil { try await connection.declare(q) }
        try await connection.bind(b)
    }
}
