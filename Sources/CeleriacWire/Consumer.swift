/// A running consumer: its tag and its stream of deliveries.
public struct Consumer: Sendable {
    public let tag: String
    public let queue: String
    public let deliveries: DeliveryStream

    public init(tag: String, queue: String, deliveries: DeliveryStream) {
        self.tag = tag
        self.queue = queue
        self.deliveries = deliveries
    }
}

/// A consumer's deliveries, in order, for `for await` (one iterating task at a time). The stream goes on across
/// reconnects and ends when the consumer is cancelled (by this process or by the broker) or the connection closes.
public typealias DeliveryStream = UnboundedChannel<Delivery>.Stream
