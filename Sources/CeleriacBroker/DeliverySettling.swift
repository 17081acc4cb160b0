/// Settling deliveries: ack, requeue, or dead-letter.
///
/// Each method returns false when the tag is stale (the delivery came before a reconnect): the broker has
/// requeued that message already, so there is nothing left to settle.
public protocol DeliverySettling: Sendable {
    /// Acknowledges a delivery (with `multiple`, every unsettled one up to it).
    @discardableResult
    func ack(_ tag: DeliveryTag, multiple: Bool) async -> Bool
    /// Negatively acknowledges: with `requeue` the message goes back to its queue (redelivered); without, to the
    /// queue's dead-letter exchange, or away when it has none.
    @discardableResult
    func nack(_ tag: DeliveryTag, multiple: Bool, requeue: Bool) async -> Bool
    /// Rejects one delivery, as ``nack(_:multiple:requeue:)`` without `multiple`.
    @discardableResult
    func reject(_ tag: DeliveryTag, requeue: Bool) async -> Bool
    /// Queues an ack without waiting for it: acks leave in order with everything else the connection sends,
    /// and may be coalesced into one `multiple` ack (the hot path of a consumer).
    func ackInBackground(_ tag: DeliveryTag, multiple: Bool)
}

extension DeliverySettling {
    /// Acknowledges one delivery.
    @discardableResult
    public func ack(_ tag: DeliveryTag) async -> Bool { await ack(tag, multiple: false) }
    /// Negatively acknowledges one delivery.
    @discardableResult
    public func nack(_ tag: DeliveryTag, requeue: Bool) async -> Bool {
        await nack(tag, multiple: false, requeue: requeue)
    }
    /// Queues an ack for one delivery without waiting for it.
    public func ackInBackground(_ tag: DeliveryTag) { ackInBackground(tag, multiple: false) }
}
