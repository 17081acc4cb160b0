/// Consuming a queue with a prefetch bound.
///
/// A consumer holds at most `prefetch` unsettled deliveries (0 = unbounded); the broker sends more only as
/// deliveries are settled (``DeliverySettling``). A delivery left unsettled when its consumer or connection goes
/// away returns to its queue with `redelivered` set.
public protocol MessageConsuming: Sendable {
    /// Starts a consumer; its deliveries arrive in order on `Consumer.deliveries`. After a reconnect the
    /// consumer is re-created with the same tag and the stream goes on; the stream ends when the consumer is
    /// cancelled, by this process or by the broker (its queue was deleted).
    ///
    /// - Parameters:
    ///   - queue: the queue to consume.
    ///   - prefetch: unsettled deliveries this consumer may hold (per consumer, not per connection).
    ///   - tag: the consumer tag; a random one when nil.
    ///   - noAck: deliveries count as settled when sent (at-most-once).
    ///   - exclusive: no other consumer may consume the queue while this one does.
    ///   - arguments: `x-` arguments of `basic.consume`, e.g. a stream offset (`x-stream-offset`).
    /// - Throws: `BrokerError` `channelClosed` with 404 when the queue does not exist, 403/405 when it is
    ///   exclusive to another connection.
    func consume(
        queue: String, prefetch: UInt16, tag: String?, noAck: Bool, exclusive: Bool,
        arguments: FieldTable
    ) async throws(BrokerError) -> Consumer
    /// Cancels a consumer (basic.cancel); its stream finishes and its unsettled deliveries stay settleable.
    func cancel(_ consumer: Consumer) async throws(BrokerError)
}

extension MessageConsuming {
    /// Starts a consumer with a prefetch bound and no consumer arguments.
    public func consume(
        queue: String, prefetch: UInt16, tag: String? = nil, noAck: Bool = false,
        exclusive: Bool = false
    ) async throws(BrokerError) -> Consumer {
        try await consume(
            queue: queue, prefetch: prefetch, tag: tag, noAck: noAck, exclusive: exclusive, arguments: [:])
    }
}
