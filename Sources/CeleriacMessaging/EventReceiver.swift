import CeleriacBroker
import CeleriacCore
import FoundationEssentials

/// Reads Celery events (wire spec §8) from the `celeryev` exchange, as `celery events` and Flower do: a private
/// queue bound with `#`, both single events and `task.multi` batches, one `JSONObject` per event.
///
/// ```swift
/// let receiver = EventReceiver(broker: broker)
/// for await event in try await receiver.start() { print(event["type"]?.stringValue ?? "?") }
/// ```
public final class EventReceiver: Sendable {
    /// Celery's event exchange (topic, durable); routing keys are event types such as `task.succeeded` or
    /// `worker.heartbeat`.
    public static let exchange = "celeryev"
    let connection: any BrokerConnection
    /// The broker, as logs show it (never with its password).
    let brokerDescription: String
    let queue = "celeryev.\(UUID().uuidString.lowercased())"

    /// A receiver of `broker`'s events; nothing is connected before `start()`.
    public init(broker: any Broker, connectionName: String = "celeriac-events") {
        brokerDescription = broker.description
        connection = broker.connection(.init(name: connectionName, confirms: false))
    }

    /// Connects, binds a private queue to every event, and returns the events as they arrive.
    public func start(routingKey: String = "#") async throws(CeleriacError) -> AsyncStream<JSONObject> {
        let consumer: Consumer
        do {
            try await connection.connect()
            try await connection.declare(ExchangeSpec(Self.exchange, kind: .topic, durable: true))
            // Celery's receiver flags: transient, auto-deleted, expiring (§1.1 / §8.3).
            _ = try await connection.declare(
                QueueSpec(
                    queue, durable: false, exclusive: true, autoDelete: true,
                    arguments: ["x-message-ttl": .int32(5000), "x-expires": .int32(60000)]))
            try await connection.bind(BindingSpec(queue: queue, exchange: Self.exchange, routingKey: routingKey))
            consumer = try await connection.consume(queue: queue, prefetch: 0, noAck: true, exclusive: true)
        } catch {
            throw .broker(
                operation: "subscribe to Celery events on \(brokerDescription)", underlying: error.description)
        }
        let (events, sink) = AsyncStream<JSONObject>.makeStream()
        Task {
            for await delivery in consumer.deliveries {
                switch try? JSONValue.parse(delivery.body) {
                case .object(let event)?: sink.yield(event)
                case .array(let batch)?: for case .object(let event) in batch { sink.yield(event) }
                default: continue
                }
            }
            sink.finish()
        }
        return events
    }

    /// Closes the connection; the private, exclusive event queue goes with it.
    public func close() async { await connection.close() }

    /// One readable line for an event: time, node, type and the fields that matter for its type.
    public static func describe(_ event: JSONObject) -> String {
        let time = event["timestamp"]?.doubleValue.map { ISOTime.format(Date(timeIntervalSince1970: $0)) } ?? "-"
        let type = event["type"]?.stringValue ?? "?"
        let node = event["hostname"]?.stringValue ?? "?"
        var parts = ["\(time) \(node) \(type)"]
        for key in ["uuid", "name", "args", "kwargs", "result", "runtime", "exception", "active", "processed", "queue"]
        {
            guard let value = event[key], value != .null else { continue }
            parts.append("\(key)=\(value.stringValue ?? value.jsonString)")
        }
        return parts.joined(separator: " ")
    }
}
