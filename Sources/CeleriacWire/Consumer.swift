/// A running consumer: its tag and its stream of deliveries.
public struct Consumer: Sendable {
    /// The consumer tag the broker knows it by (`basic.consume`'s tag); cancel the consumer with it.
    public let tag: String
    /// Name of the queue it consumes from.
    public let queue: String
    /// Its deliveries in order; the stream ends when the consumer is cancelled or the connection closes.
    public let deliveries: DeliveryStream

    /// A consumer with its tag, queue and delivery stream; brokers create these, callers receive them.
    public init(tag: String, queue: String, deliveries: DeliveryStream) {
        self.tag = tag
        self.queue = queue
        self.deliveries = deliveries
    }
}

/// A consumer's deliveries, in order, for `for await` (one iterating task at a time). The stream goes on across
/// reconnects and ends when the consumer is cancelled (by this process or by the broker) or the connection closes.
public typealias DeliveryStream = UnboundedChannel<Delivery>.Stream
