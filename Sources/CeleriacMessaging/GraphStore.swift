import CeleriacBroker
import CeleriacCanvas
import CeleriacCore

/// Where workflow-graph records live in RabbitMQ (`GraphRecording`): a durable topic exchange, and one durable
/// queue per recorded workflow, bound by its root id, removed by the broker after `x-expires` unused.
public enum GraphStore {
    /// The durable topic exchange workflow-graph records are published to, with the workflow's root id as routing key.
    public static let exchangeSpec = ExchangeSpec(GraphRecording.exchange, kind: .topic, durable: true)

    /// The durable queue of workflow `root`; the broker deletes it once it has been unused for `keepFor` (`x-expires`,
    /// whole seconds).
    public static func queueSpec(root: String, keepFor: Duration) -> QueueSpec {
        QueueSpec(GraphRecording.queue(root: root), durable: true).expires(
            milliseconds: Int(keepFor.components.seconds * 1000))
    }

    /// One graph record of workflow `root` as a persistent JSON message to ``exchangeSpec``.
    public static func message(_ record: JSONValue, root: String) -> OutgoingMessage {
        OutgoingMessage(
            exchange: GraphRecording.exchange, routingKey: root, body: record.jsonBytes,
            properties: BasicProperties(contentType: "application/json", contentEncoding: "utf-8", deliveryMode: 2))
    }

    /// Declares the exchange and the workflow's queue and binding.
    public static func prepare(on connection: any BrokerConnection, root: String, keepFor: Duration)
        async throws(CeleriacError)
    {
        do {
            try await connection.declare(exchangeSpec)
            _ = try await connection.declare(queueSpec(root: root, keepFor: keepFor), recreateAfterReconnect: false)
            try await connection.bind(
                BindingSpec(
                    queue: GraphRecording.queue(root: root), exchange: GraphRecording.exchange, routingKey: root))
        } catch {
            throw .broker(
                operation: "declare the workflow-graph queue '\(GraphRecording.queue(root: root))'",
                underlying: error.description)
        }
    }

    /// Every record of a workflow, in arrival order, read without consuming them (they are requeued in place).
    ///
    /// - Throws: `CeleriacError.configuration(_:)` when the workflow has no queue (never recorded, or expired).
    public static func read(root: String, on connection: any BrokerConnection) async throws(CeleriacError)
        -> [JSONValue]
    {
        let queue = GraphRecording.queue(root: root)
        let ready: UInt32
        do {
            ready = try await connection.inspect(queue: queue).messageCount
        } catch  where error.replyCode == 404 {
            throw .configuration(
                "no workflow graph recorded for \(root) (queue '\(queue)' does not exist): send the canvas with CeleriacClient.applyRecorded, and read it before it expires"
            )
        } catch {
            throw .broker(operation: "inspect '\(queue)'", underlying: error.description)
        }
        var records: [JSONValue] = []
        var last: DeliveryTag?
        do {
            for _ in 0..<ready {
                guard let d = try await connection.get(queue: queue) else { break }
                last = d.tag
                if let json = try? JSONValue.parse(d.body) { records.append(json) }
            }
        } catch {
            if let last { _ = await connection.nack(last, multiple: true, requeue: true) }
            throw .broker(operation: "read '\(queue)'", underlying: error.description)
        }
        if let last { _ = await connection.nack(last, multiple: true, requeue: true) }
        return records
    }
}
