/// Declaring and removing exchanges, queues and bindings.
///
/// Declarations are idempotent when the arguments match and fail with 406 (`channelClosed`, PRECONDITION_FAILED)
/// when they differ. A connection re-declares what it declared after a reconnect, unless asked not to.
public protocol TopologyDeclaring: Sendable {
    /// Declares an exchange.
    func declare(_ exchange: ExchangeSpec) async throws(BrokerError)
    /// Declares a queue and returns its counts. With `recreateAfterReconnect` false the queue is not replayed
    /// after a reconnect (queues whose absence means something: locks, chord join queues).
    ///
    /// - Throws: `BrokerError` `channelClosed` with 405 (RESOURCE_LOCKED) when the queue is exclusive to
    ///   another connection, 406 when it exists with other arguments.
    @discardableResult
    func declare(_ queue: QueueSpec, recreateAfterReconnect: Bool) async throws(BrokerError) -> QueueDeclareOK
    /// Binds a queue to an exchange.
    func bind(_ binding: BindingSpec) async throws(BrokerError)
    /// Binds an exchange to an exchange.
    func bind(_ binding: ExchangeBindingSpec) async throws(BrokerError)
    /// Deletes a queue; returns how many messages it held.
    @discardableResult
    func deleteQueue(_ name: String, ifUnused: Bool, ifEmpty: Bool) async throws(BrokerError) -> UInt32
    /// Deletes an exchange.
    func deleteExchange(_ name: String) async throws(BrokerError)
    /// Removes every ready message from a queue; returns how many.
    @discardableResult
    func purge(queue name: String) async throws(BrokerError) -> UInt32
}

extension TopologyDeclaring {
    /// Declares a queue that is re-declared after a reconnect.
    @discardableResult
    public func declare(_ queue: QueueSpec) async throws(BrokerError) -> QueueDeclareOK {
        try await declare(queue, recreateAfterReconnect: true)
    }

    /// Deletes a queue whatever it holds.
    @discardableResult
    public func deleteQueue(_ name: String) async throws(BrokerError) -> UInt32 {
        try await deleteQueue(name, ifUnused: false, ifEmpty: false)
    }
}
