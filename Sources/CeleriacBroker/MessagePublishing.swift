/// Publishing messages to exchanges, in order, confirmed by the broker.
///
/// Batched publishing is the hot path's tool: a batch is written in one go and waits once for all of its
/// confirms. Fire-and-forget traffic (events, graph records) uses ``publishInBackground(_:)``.
public protocol MessagePublishing: Sendable {
    /// Publishes `messages` in order and returns once the broker confirmed all of them (with confirms on), or
    /// once `settler` is settled first (a reply to the message proves that the broker took it).
    ///
    /// - Throws: `BrokerError` `notConnected`/`connectionLost` (not sent or not confirmed: safe to retry, may
    ///   duplicate), `publishNacked`, `unroutable` (a mandatory message matched no queue), `blocked`,
    ///   `channelClosed` (404: no such exchange).
    func publish(_ messages: [OutgoingMessage], settler: PublishSettler?) async throws(BrokerError)
    /// Publishes without waiting for a confirm; order with this connection's other publishes is kept and a
    /// failure is dropped.
    func publishInBackground(_ message: OutgoingMessage)
}

extension MessagePublishing {
    /// Publishes one message and waits for its confirm.
    public func publish(_ message: OutgoingMessage) async throws(BrokerError) {
        try await publish([message], settler: nil)
    }

    /// Publishes a batch and waits for all of its confirms.
    public func publish(_ messages: [OutgoingMessage]) async throws(BrokerError) {
        try await publish(messages, settler: nil)
    }
}
