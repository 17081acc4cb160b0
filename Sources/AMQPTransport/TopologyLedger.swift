/// The declarations a connection remembers so that it can make them again after a reconnect: exchanges, queues,
/// queue bindings and exchange bindings, each in the order first made.
///
/// The rules: a re-declared exchange or queue replaces the earlier declaration of that name and moves to the end
/// (the newest arguments win); a binding made twice is remembered once, where it was first made; a queue declared
/// with `recreateAfterReconnect: false` is not remembered (its absence after a reconnect means something: a lock,
/// a chord's join queue); deleting a queue forgets it and its bindings, deleting an exchange forgets it, the
/// queue bindings to it and the exchange bindings from or to it (RabbitMQ removes them with the exchange: replaying
/// one would fail with 404 and drop the connection again after every reconnect).
///
/// Pure: ``ConnectionCore`` records what succeeded on the broker and replays ``replayPlan`` with the C calls.
struct TopologyLedger {
    /// One declaration to make again.
    enum Step: Equatable {
        case exchange(ExchangeSpec)
        case queue(QueueSpec)
        case exchangeBinding(ExchangeBindingSpec)
        case binding(BindingSpec)
    }

    private(set) var exchanges: [ExchangeSpec] = []
    private(set) var queues: [QueueSpec] = []
    private(set) var bindings: [BindingSpec] = []
    private(set) var exchangeBindings: [ExchangeBindingSpec] = []

    mutating func declared(_ exchange: ExchangeSpec) {
        exchanges.removeAll { $0.name == exchange.name }
        exchanges.append(exchange)
    }

    /// Remembers `queue`, unless `recreateAfterReconnect` is false. Such a declaration leaves an earlier remembered
    /// one of the same name as it is.
    mutating func declared(_ queue: QueueSpec, recreateAfterReconnect: Bool = true) {
        guard recreateAfterReconnect else { return }
        queues.removeAll { $0.name == queue.name }
        queues.append(queue)
    }

    mutating func bound(_ binding: BindingSpec) {
        if !bindings.contains(binding) { bindings.append(binding) }
    }

    mutating func bound(_ binding: ExchangeBindingSpec) {
        if !exchangeBindings.contains(binding) { exchangeBindings.append(binding) }
    }

    mutating func deletedQueue(named name: String) {
        queues.removeAll { $0.name == name }
        bindings.removeAll { $0.queue == name }
    }

    mutating func deletedExchange(named name: String) {
        exchanges.removeAll { $0.name == name }
        bindings.removeAll { $0.exchange == name }
        exchangeBindings.removeAll { $0.source == name || $0.destination == name }
    }

    /// What to declare after a reconnect, in order: exchanges, then queues, then exchange bindings, then queue
    /// bindings, so that everything a binding names exists before it; within each kind, the order recorded.
    var replayPlan: [Step] {
        var plan: [Step] = []
        plan.reserveCapacity(exchanges.count + queues.count + exchangeBindings.count + bindings.count)
        plan += exchanges.map(Step.exchange)
        plan += queues.map(Step.queue)
        plan += exchangeBindings.map(Step.exchangeBinding)
        plan += bindings.map(Step.binding)
        return plan
    }
}
