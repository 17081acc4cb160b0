import CeleriacBroker
import FoundationEssentials

/// The type of the durable queues Celeriac declares: work queues, the dead-letter queue, the delay queues, chord
/// join queues and clients' reply queues.
///
/// `quorum` is for RabbitMQ clusters: a classic queue lives on one node and is unreachable while that node is
/// down (a worker that fails over to another node could not even re-declare it), a quorum queue is replicated and
/// survives the loss of a minority of nodes. Every worker and client of a virtual host must use the same type
/// (RabbitMQ refuses to re-declare a queue with another type: PRECONDITION_FAILED, inequivalent arg 'x-queue-type').
public enum QueueType: String, Sendable, CaseIterable {
    case classic, quorum
}

/// Every queue, exchange and header name Celeriac uses on the broker, in one place.
public enum Topology {
    /// Celery's default queue, exchange and routing key.
    public static let defaultQueue = "celery"

    /// Where the worker puts messages it cannot run (not JSON, not protocol v2, too large, unknown task, bad
    /// signature). A topic exchange; the routing key is the queue the message came from.
    public static let deadLetterExchange = "celeriac.dlx"
    /// The queue bound to ``deadLetterExchange`` for every key (`#`): inspect it with `rabbitmqctl list_queues`
    /// or drain it with a consumer. Each message keeps its body and headers and gains `x-celeriac-reason`,
    /// `x-celeriac-queue` and `x-celeriac-worker`.
    public static let deadLetterQueue = "celeriac.dead"

    /// A work queue as Celery declares it: durable, no arguments unless a max priority is configured, with a direct
    /// exchange of the same name bound by the same key.
    /// With ``QueueType/quorum`` the queue is a quorum queue (no priorities: RabbitMQ 3.x quorum queues have none).
    ///
    /// A queue for ``MessageForm/compact`` messages also gets `x-dead-letter-exchange` ``deadLetterExchange``: a
    /// consumer that cannot read the compact form (a Celery worker) rejects what it takes, and the broker moves it
    /// to ``deadLetterQueue`` instead of dropping it. Every declarer of the queue (workers, clients, and a Celery
    /// worker that shares it, through `queue_arguments`) must pass the same argument, or RabbitMQ refuses the
    /// declaration (PRECONDITION_FAILED, inequivalent arg 'x-dead-letter-exchange').
    public static func workQueue(
        _ name: String, maxPriority: Int? = nil, type: QueueType = .classic, form: MessageForm = .celery
    ) -> (ExchangeSpec, QueueSpec, BindingSpec) {
        var queue = QueueSpec(name, durable: true)
        if type == .quorum { queue = queue.quorum() } else if let maxPriority { queue = queue.maxPriority(maxPriority) }
        if form == .compact { queue.arguments["x-dead-letter-exchange"] = .string(deadLetterExchange) }
        return (
            ExchangeSpec(name, kind: .direct, durable: true), queue,
            BindingSpec(queue: name, exchange: name, routingKey: name)
        )
    }

    /// `error` with a hint that says what to do, when declaring work queue `queue` failed because it already exists
    /// declared for the other message form (PRECONDITION_FAILED on `x-dead-letter-exchange`); `error` as it is
    /// otherwise.
    public static func explainingFormConflict(_ error: BrokerError, queue: String, form: MessageForm) -> BrokerError {
        guard error.replyCode == 406, error.reason?.contains("x-dead-letter-exchange") == true else { return error }
        let hint =
            form == .compact
            ? "Queue '\(queue)' exists in Celery's form (without the dead-letter exchange), but is listed in --compact-queues here. List it on every worker and producer or on none; to make it compact, drain it, delete it (rabbitmqctl delete_queue \(queue)) and start the workers again (docs/compact-form.md)"
            : "Queue '\(queue)' exists for the compact form (declared with the dead-letter exchange), but is not listed in --compact-queues here. List it on every worker and producer (--compact-queues or CELERIAC_COMPACT_QUEUES), or drain and delete it to go back to Celery's form (docs/compact-form.md)"
        return BrokerError(error.code, operation: error.operation, replyCode: 406, reason: error.reason, hint: hint)
    }

    /// The client's reply queue for `rpc://` results (its name is the client's own: no other client declares it).
    ///
    /// Unlike Celery's (auto-delete), it outlives the client's connection: results published while the client is
    /// reconnecting (a broker restart, a network cut) wait in it, and the worker publishes them persistent, so a
    /// broker restart keeps them too. `x-expires` removes the queue of a client that died without closing;
    /// ``CeleriacClient/close()`` deletes it at once.
    public static func replyQueue(_ name: String, expiresMilliseconds: Int = 600_000, type: QueueType = .classic)
        -> QueueSpec
    {
        let queue = QueueSpec(name, durable: true, exclusive: false, autoDelete: false).expires(
            milliseconds: expiresMilliseconds)
        return type == .quorum ? queue.quorum() : queue
    }

    /// The dead-letter exchange, queue and catch-all binding (``deadLetterExchange``, ``deadLetterQueue``, key `#`),
    /// as workers declare them; the queue is a quorum queue with ``QueueType/quorum``.
    public static func deadLetter(_ type: QueueType = .classic) -> (ExchangeSpec, QueueSpec, BindingSpec) {
        let queue = QueueSpec(deadLetterQueue, durable: true)
        return (
            ExchangeSpec(deadLetterExchange, kind: .topic, durable: true),
            type == .quorum ? queue.quorum() : queue,
            BindingSpec(queue: deadLetterQueue, exchange: deadLetterExchange, routingKey: "#")
        )
    }

    // MARK: Native delayed delivery (kombu 5.x), wire spec §1.4

    /// 28 levels: level n holds a message for 2^n seconds.
    public static let delayLevels = 28
    /// The topic exchange a delayed message leaves the delay topology through; work queues bind to it with
    /// `#.<routing key>` (kombu's name).
    public static let delayedDeliveryExchange = "celery_delayed_delivery"
    /// The name of delay level `n` (0...27), used for both its exchange and its queue: `celery_delayed_<n>`, as kombu
    /// names them.
    public static func delayLevel(_ n: Int) -> String { "celery_delayed_\(n)" }

    /// The routing key that makes the delay topology hold a message for `seconds` and then route it by `routingKey`.
    public static func delayRoutingKey(seconds: Int, routingKey: String) -> String {
        let s = max(0, min(seconds, (1 << delayLevels) - 1))
        var parts: [String] = []
        parts.reserveCapacity(delayLevels + 1)
        for level in stride(from: delayLevels - 1, through: 0, by: -1) {
            parts.append((s >> level) & 1 == 1 ? "1" : "0")
        }
        parts.append(routingKey)
        return parts.joined(separator: ".")
    }

    /// The whole seconds the delay topology holds a message due at `eta`, as seen at `now`.
    ///
    /// Rounded down, so the broker never releases it late; a release up to a second early is waited out by the
    /// worker, which never starts a task before its ETA. Half a millisecond of slack keeps an exact countdown (ETA
    /// computed as now + 30 s, whose floating-point difference may come out as 29.999…) a whole 30 s in the broker.
    public static func delaySeconds(until eta: Date, from now: Date) -> Int {
        Int((eta.timeIntervalSince(now) + 0.000_5).rounded(.down))
    }

    /// Strips a 28-bit delay prefix from a routing key (a retry of a delayed message gets a fresh one).
    public static func stripDelayPrefix(_ routingKey: String) -> String {
        let parts = routingKey.split(separator: ".", maxSplits: delayLevels, omittingEmptySubsequences: false)
        guard parts.count == delayLevels + 1, parts.prefix(delayLevels).allSatisfy({ $0 == "0" || $0 == "1" }) else {
            return routingKey
        }
        return String(parts[delayLevels])
    }

    /// The exchanges, queues and bindings of the delay topology.
    ///
    /// Each level `n` is a topic exchange and a classic queue with `x-message-ttl` 2^n s that dead-letters into
    /// level n-1 (level 0 into ``delayedDeliveryExchange``). A message enters at level 27; at each level, a key
    /// whose bit n is 1 goes to the level's queue (and waits), a key whose bit is 0 goes on to the next exchange.
    public static func delayTopology(_ type: QueueType = .classic) -> (
        exchanges: [ExchangeSpec], queues: [QueueSpec], queueBindings: [BindingSpec],
        exchangeBindings: [ExchangeBindingSpec]
    ) {
        var exchanges = [ExchangeSpec(delayedDeliveryExchange, kind: .topic, durable: true)]
        var queues: [QueueSpec] = []
        var queueBindings: [BindingSpec] = []
        var exchangeBindings: [ExchangeBindingSpec] = []
        for level in stride(from: delayLevels - 1, through: 0, by: -1) {
            let name = delayLevel(level)
            let next = level == 0 ? delayedDeliveryExchange : delayLevel(level - 1)
            exchanges.append(ExchangeSpec(name, kind: .topic, durable: true))
            var arguments: FieldTable = [
                "x-message-ttl": .int(Int((1 << level) * 1000)),
                "x-overflow": .string("reject-publish"),
                "x-dead-letter-exchange": .string(next),
                "x-queue-type": .string(type.rawValue),
            ]
            // As kombu declares them: a quorum level hands a message on with at-least-once dead lettering (it
            // needs reject-publish, above), so a crash between two levels cannot lose a delayed task; and with the
            // same arguments as Celery's, either side may declare the topology first.
            if type == .quorum { arguments["x-dead-letter-strategy"] = .string("at-least-once") }
            queues.append(QueueSpec(name, durable: true, arguments: arguments))
            let prefix = String(repeating: "*.", count: delayLevels - 1 - level)
            queueBindings.append(BindingSpec(queue: name, exchange: name, routingKey: prefix + "1.#"))
            exchangeBindings.append(ExchangeBindingSpec(destination: next, source: name, routingKey: prefix + "0.#"))
        }
        return (exchanges, queues, queueBindings, exchangeBindings)
    }
}

/// Names of the protocol v2 headers (wire spec §3.2).
public enum HeaderKey {
    public static let lang = "lang", task = "task", id = "id", shadow = "shadow", eta = "eta", expires = "expires"
    public static let group = "group", groupIndex = "group_index", retries = "retries", timelimit = "timelimit"
    public static let rootID = "root_id", parentID = "parent_id", argsrepr = "argsrepr", kwargsrepr = "kwargsrepr"
    public static let origin = "origin", ignoreResult = "ignore_result", replacedTaskNesting = "replaced_task_nesting"
    public static let stampedHeaders = "stamped_headers", stamps = "stamps", compression = "compression"
    /// Added by the worker to dead-lettered messages.
    public static let deadReason = "x-celeriac-reason", deadQueue = "x-celeriac-queue", deadWorker = "x-celeriac-worker"
    /// When the producer published the message (Unix seconds, a double): the worker's queue-wait histogram.
    /// Celery ignores unknown headers; messages without it (from Python producers) are not measured.
    public static let sentAt = "x-celeriac-sent-at"

    static let known: Set<String> = [
        lang, task, id, shadow, eta, expires, group, groupIndex, retries, timelimit, rootID,
        parentID, argsrepr, kwargsrepr, origin, ignoreResult, replacedTaskNesting,
        stampedHeaders, stamps, sentAt,
    ]
}
