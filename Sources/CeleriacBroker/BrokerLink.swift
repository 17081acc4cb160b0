/// A connection's life: connect, watch, close. Connections reconnect by themselves after a loss and replay their
/// declarations and consumers; ``events()`` tells what happened.
public protocol BrokerLink: Sendable {
    /// Connects (the first time). Later losses are repaired in the background.
    ///
    /// - Throws: `BrokerError` with a connection-level code (refused, access refused, timeout) and a hint.
    func connect() async throws(BrokerError)
    /// Closes the connection; consumer streams finish and later calls throw `BrokerError.Code.closed`.
    func close() async
    /// True while connected.
    var isConnected: Bool { get }
    /// True while the broker blocks publishers.
    var isBlocked: Bool { get }
    /// A new stream of connection events (each call gets its own).
    func events() -> AsyncStream<ConnectionEvent>
    /// Waits until connected, up to `timeout`. Returns false on timeout or when closed.
    func waitUntilConnected(timeout: Duration) async -> Bool
    /// The executor that runs this connection's work, when it has one of its own (the AMQP transport's
    /// connection thread). Code that mostly talks to this connection (a result router, a hot consume loop) runs
    /// there with `Task(executorPreference:)` and pays no thread hop per call; nil means "no preference".
    var preferredExecutor: (any TaskExecutor)? { get }
}
