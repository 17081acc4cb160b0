/// Looking into a queue without consuming it: its counts, or one message at a time.
public protocol QueueInspecting: Sendable {
    /// The queue's ready-message and consumer counts (a passive declare).
    ///
    /// - Throws: `BrokerError` `channelClosed` with 404 when the queue does not exist.
    func inspect(queue name: String) async throws(BrokerError) -> QueueDeclareOK
    /// Takes one message (basic.get) or returns nil when the queue is empty. Settle it through
    /// ``DeliverySettling`` on the same connection unless `noAck`.
    func get(queue: String, noAck: Bool) async throws(BrokerError) -> Delivery?
}

extension QueueInspecting {
    /// Takes one message to settle later, or nil when the queue is empty.
    public func get(queue: String) async throws(BrokerError) -> Delivery? {
        try await get(queue: queue, noAck: false)
    }
}
