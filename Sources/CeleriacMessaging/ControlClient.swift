import CeleriacBroker
import CeleriacCore
import FoundationEssentials
import Synchronization

/// Celery's remote control from Swift (`celery inspect` / `celery control`, wire spec §9): broadcasts a request
/// on the fanout exchange `celery.pidbox` and collects the replies on a private reply queue.
///
/// Celery and Celeriac workers answer alike, so this drives both.
///
/// ```swift
/// let control = ControlClient(broker: try AMQPBroker("amqp://localhost"))
/// try await control.start()
/// let pongs = try await control.call("ping")          // ["celeriac@host": {"ok": "pong"}]
/// try await control.revoke(["0f6c…"], terminate: true) // durable: workers that start later skip it too
/// ```
public final class ControlClient: Sendable {
    /// Celery's broadcast exchange for remote-control requests (fanout, not durable).
    public static let exchange = "celery.pidbox"
    /// Celery's exchange for remote-control replies (direct, keyed by each client's `oid`).
    public static let replyExchange = "reply.celery.pidbox"

    let connection: any BrokerConnection
    /// The broker, as logs show it (never with its password).
    let brokerDescription: String
    /// Routing key of this client's reply queue (Celery's `oid`).
    let oid = UUID().uuidString.lowercased()
    private let replies = Mutex<Consumer?>(nil)
    private let clock = Atomic<Int>(0)
    private let waiters = Mutex<[String: AsyncStream<(String, JSONValue)>.Continuation]>([:])

    /// A control client of `broker`; nothing is connected before ``start()``.
    public init(broker: any Broker, connectionName: String = "celeriac-control") {
        brokerDescription = broker.description
        connection = broker.connection(.init(name: connectionName, confirms: true))
    }

    var replyQueue: String { "\(oid).reply.celery.pidbox" }

    /// Connects and declares the exchanges (with Celery's flags) and this client's reply queue.
    public func start() async throws(CeleriacError) {
        do {
            try await connection.connect()
            try await connection.declare(ExchangeSpec(Self.exchange, kind: .fanout, durable: false))
            try await connection.declare(ExchangeSpec(Self.replyExchange, kind: .direct, durable: false))
            _ = try await connection.declare(QueueSpec(replyQueue, durable: false, exclusive: true, autoDelete: true))
            try await connection.bind(BindingSpec(queue: replyQueue, exchange: Self.replyExchange, routingKey: oid))
            let consumer = try await connection.consume(queue: replyQueue, prefetch: 0, noAck: true, exclusive: true)
            replies.withLock { $0 = consumer }
            Task { await self.route(consumer) }
        } catch {
            throw .broker(
                operation: "start the remote-control client on \(brokerDescription)", underlying: error.description)
        }
    }

    /// Closes the connection; the exclusive reply queue goes with it.
    public func close() async { await connection.close() }

    /// Sends `method` and collects replies for `timeout`, or until every node of `destination` answered.
    /// Returns node name → reply value (e.g. `{"ok": "pong"}`); an empty result means no node answered in time.
    public func call(
        _ method: String, arguments: JSONObject = [:], destination: [String]? = nil,
        timeout: Duration = .seconds(1)
    ) async throws(CeleriacError) -> [String: JSONValue] {
        guard replies.withLock({ $0 }) != nil else {
            throw .configuration("ControlClient.call before start(): call `try await control.start()` first")
        }
        let ticket = UUID().uuidString.lowercased()
        let (stream, sink) = AsyncStream<(String, JSONValue)>.makeStream()
        waiters.withLock { $0[ticket] = sink }
        defer { waiters.withLock { $0.removeValue(forKey: ticket) }?.finish() }
        try await publish(method, arguments: arguments, destination: destination, ticket: ticket, timeout: timeout)
        let wanted = destination?.count
        let deadline = ContinuousClock.now + timeout
        return await withTaskGroup(of: [String: JSONValue]?.self) { group in
            // The collector returns when every destination answered, or (cancelled at the deadline) with what it has.
            group.addTask {
                var collected: [String: JSONValue] = [:]
                for await (node, value) in stream {
                    collected[node] = value
                    if let wanted, collected.count >= wanted { break }
                }
                return collected
            }
            group.addTask {
                try? await Task.sleep(until: deadline)
                return nil
            }
            var result: [String: JSONValue] = [:]
            while let next = await group.next() {
                if let replies = next {
                    result = replies
                    break
                }
                group.cancelAll()
            }
            group.cancelAll()
            return result
        }
    }

    /// Reads the reply queue for the client's lifetime and hands each reply to the call that waits for its ticket.
    private func route(_ consumer: Consumer) async {
        for await delivery in consumer.deliveries {
            guard case .string(let ticket)? = delivery.properties.headers?["ticket"],
                let reply = try? JSONValue.parse(delivery.body), case .object(let byNode) = reply,
                let sink = waiters.withLock({ $0[ticket] })
            else { continue }
            for (node, value) in byNode { sink.yield((node, value)) }
        }
    }

    /// Sends `method` without asking for replies (a Celery "cast": `shutdown`, `enable_events`, ...).
    public func cast(_ method: String, arguments: JSONObject = [:], destination: [String]? = nil)
        async throws(CeleriacError)
    {
        try await publish(method, arguments: arguments, destination: destination, ticket: nil, timeout: .seconds(1))
    }

    /// Revokes tasks everywhere: records them in the broker's revocation log (``RevocationLog``, so workers that
    /// start later skip them too) and broadcasts `revoke` to the running workers. With `terminate`, a task
    /// running now is cancelled (async pool) or its child process is stopped (process pool).
    public func revoke(_ ids: [String], terminate: Bool = false, timeout: Duration = .seconds(1))
        async throws(CeleriacError) -> [String: JSONValue]
    {
        do {
            try await RevocationLog.declare(on: connection)
            try await connection.publish(ids.map { RevocationLog.entry(id: $0, terminate: terminate, by: "client") })
        } catch {
            throw .broker(operation: "record revocations in '\(RevocationLog.queue)'", underlying: error.description)
        }
        let args: JSONObject = [
            "task_id": .array(ids.map { .string($0) }), "terminate": .bool(terminate), "signal": "SIGTERM",
        ]
        return try await call("revoke", arguments: args, timeout: timeout)
    }

    private func publish(
        _ method: String, arguments: JSONObject, destination: [String]?, ticket: String?,
        timeout: Duration
    ) async throws(CeleriacError) {
        var body: JSONObject = [
            "method": .string(method), "arguments": .object(arguments),
            "destination": destination.map { .array($0.map { .string($0) }) } ?? .null,
            "pattern": .null, "matcher": .null,
        ]
        if let ticket {
            body["ticket"] = .string(ticket)
            body["reply_to"] = ["exchange": .string(Self.replyExchange), "routing_key": .string(oid)]
        }
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        let headers: FieldTable = [
            "clock": .int(clock.add(1, ordering: .relaxed).newValue),
            "expires": .double(Date().timeIntervalSince1970 + seconds),
        ]
        let message = OutgoingMessage(
            exchange: Self.exchange, routingKey: "", body: JSONValue.object(body).jsonBytes,
            properties: BasicProperties(
                contentType: "application/json", contentEncoding: "utf-8",
                headers: headers, deliveryMode: 2))
        do {
            try await connection.publish(message)
        } catch {
            throw .broker(operation: "send remote-control '\(method)'", underlying: error.description)
        }
    }
}
