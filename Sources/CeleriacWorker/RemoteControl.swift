import CeleriacBroker
import CeleriacCore
import CeleriacMessaging
import FoundationEssentials
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Celery's remote control ("pidbox", wire spec §9): answers `celery inspect` / `celery control` / Flower
/// requests sent to the fanout exchange `celery.pidbox`.
///
/// Supported: ping, stats, registered, active, reserved, scheduled, revoked, revoke (with terminate),
/// rate_limit, active_queues, clock, conf, report, shutdown, time_limit, pool_grow, pool_shrink, add_consumer, cancel_consumer. Unknown methods get `{"error": "KeyError('name')"}`.
struct RemoteControl: Sendable {
    static let exchange = "celery.pidbox"
    static let replyExchange = "reply.celery.pidbox"
    let worker: any RemoteControlTarget

    var queueName: String { "\(worker.configuration.hostname).celery.pidbox" }

    /// Declares the node's pidbox queue (flags exactly as Celery's) and consumes it.
    func start(on connection: any TopologyDeclaring & MessageConsuming) async throws -> Consumer {
        try await connection.declare(ExchangeSpec(Self.exchange, kind: .fanout, durable: false))
        try await connection.declare(
            QueueSpec(
                queueName, durable: false, exclusive: true, autoDelete: true,
                arguments: ["x-expires": .int32(10_000), "x-message-ttl": .int32(300_000)]))
        try await connection.bind(BindingSpec(queue: queueName, exchange: Self.exchange, routingKey: ""))
        return try await connection.consume(
            queue: queueName, prefetch: 0, tag: "\(worker.configuration.hostname)-pidbox", noAck: true)
    }

    func serve(_ consumer: Consumer) async {
        for await delivery in consumer.deliveries {
            await handle(delivery)
        }
    }

    /// Celery's `pool` fields, with what the executor adds (a process pool's child pids and counters).
    func poolStats(_ config: Worker.Configuration) -> JSONObject {
        var pool: JSONObject = [
            "implementation": "celeriac.async", "max-concurrency": .int(Int64(worker.concurrencyNow)),
            "processes": [.int(Int64(getpid()))], "max-tasks-per-child": nil, "put-guarded-by-semaphore": false,
            "timeouts": [config.timeLimit.map(JSONValue.double) ?? 0, config.softTimeLimit.map(JSONValue.double) ?? 0],
        ]
        for (key, value) in worker.poolStatistics { pool[key] = value }
        return pool
    }

    func handle(_ delivery: Delivery) async {
        guard let request = try? JSONValue.parse(delivery.body), let method = request["method"]?.stringValue else {
            worker.logger.warning("ignored a remote-control message that is not a JSON request")
            return
        }
        let clock = worker.tick()
        if case .array(let destinations)? = request["destination"],
            !destinations.contains(.string(worker.configuration.hostname))
        {
            return
        }
        let arguments = request["arguments"]?.objectValue ?? [:]
        let policy = worker.configuration.security.remoteControl
        guard policy.allows(method) else {
            worker.logger.warning(
                "refused a remote-control command (--remote-control)",
                metadata: ["method": .string(method), "policy": .string(policy.description)])
            await reply(
                request, clock: clock, method: method,
                value: ["error": .string("'\(method)' is disabled on this worker (--remote-control \(policy))")])
            return
        }
        let value = await answer(method, arguments)
        await reply(request, clock: clock, method: method, value: value)
    }

    private func reply(_ request: JSONValue, clock: Int, method: String, value: JSONValue?) async {
        guard let replyTo = request["reply_to"]?.objectValue, let exchange = replyTo["exchange"]?.stringValue,
            let key = replyTo["routing_key"]?.stringValue, let value
        else { return }
        let body: JSONValue = .object([worker.configuration.hostname: value])
        var headers: FieldTable = ["clock": .int(clock)]
        if let ticket = request["ticket"]?.stringValue { headers["ticket"] = .string(ticket) }
        let reply = OutgoingMessage(
            exchange: exchange, routingKey: key, body: body.jsonBytes,
            properties: BasicProperties(
                contentType: "application/json", contentEncoding: "utf-8", headers: headers, deliveryMode: 1))
        do {
            try await worker.replies.publish(reply)
        } catch {
            worker.logger.warning(
                "could not send a remote-control reply",
                metadata: ["method": .string(method), "error": .string(error.description)])
        }
    }

    /// The reply value for a method, or nil for casts that send no reply (shutdown).
    func answer(_ method: String, _ args: JSONObject) async -> JSONValue? {
        let config = worker.configuration
        switch method {
        case "ping":
            return ["ok": "pong"]
        case "clock":
            return ["clock": .int(Int64(worker.lamportClock))]
        case "registered":
            return .array(worker.registeredTaskNames.map { .string($0) })
        case "revoked":
            return .array(await worker.revokedIDs().map { .string($0) })
        case "active":
            return .array(worker.activeTasks().map { requestInfo($0.message, queue: $0.queue, started: $0.startedAt) })
        case "reserved":
            // Prefetched, waiting for a slot: decoded on demand (undecodable ones are dead-lettered when their turn comes).
            let waiting = worker.reservedDeliveries()
            return .array(
                waiting.compactMap { d, queue in
                    (try? TaskCodec.decode(d, limits: config.limits)).map {
                        requestInfo($0, queue: queue, started: nil)
                    }
                })
        case "scheduled":
            // ETAs are held by the broker's delay queues, not by the worker.
            return .array([])
        case "revoke", "terminate":
            let ids: [String] =
                switch args["task_id"] {
                case .string(let id)?: [id]
                case .array(let list)?: list.compactMap(\.stringValue)
                default: []
                }
            let terminate = method == "terminate" || args["terminate"]?.boolValue == true
            for id in ids { await worker.revoke(id, terminate: terminate) }
            worker.recordBroadcastRevocations(ids, terminate: terminate)
            let set = "{" + ids.map { "'\($0)'" }.joined(separator: ", ") + "}"
            return ["ok": .string(terminate ? "terminate: \(set)" : "tasks \(set) flagged as revoked")]
        case "rate_limit":
            guard let task = args["task_name"]?.stringValue else { return ["error": "task_name is required"] }
            let text = args["rate_limit"].flatMap { $0.stringValue ?? $0.intValue.map { String($0) } }
            do {
                let limit = try text.flatMap { $0 == "0" ? nil : try RateLimit($0) }
                try await worker.setRateLimit(task, limit)
                return ["ok": "new rate limit set successfully"]
            } catch {
                let text = String(describing: error)
                return ["error": .string(text.contains("unknown task") ? "unknown task" : text)]
            }
        case "time_limit":
            guard let task = args["task_name"]?.stringValue, worker.registeredTaskNames.contains(task) else {
                return ["error": "unknown task"]
            }
            let soft = args["soft"]?.doubleValue, hard = args["hard"]?.doubleValue
            worker.setTimeLimit(task, TaskMessage.TimeLimit(hard: hard, soft: soft))
            return ["ok": "time limits set successfully"]
        case "pool_grow", "pool_shrink":
            let n = Int(args["n"]?.intValue ?? 1)
            guard n > 0 else { return ["error": "n must be a positive number"] }
            let now = await worker.resizePool(by: method == "pool_grow" ? n : -n)
            return ["ok": .string("pool will \(method == "pool_grow" ? "grow" : "shrink") to \(now)")]
        case "add_consumer":
            guard let queue = args["queue"]?.stringValue, !queue.isEmpty else { return ["error": "queue is required"] }
            do {
                return try await worker.addConsumer(queue)
                    ? ["ok": .string("add consumer \(queue)")]
                    : ["ok": .string("already consuming from \(queue)")]
            } catch {
                return ["error": .string(error.description)]
            }
        case "cancel_consumer":
            guard let queue = args["queue"]?.stringValue, !queue.isEmpty else { return ["error": "queue is required"] }
            do {
                return try await worker.cancelConsumer(queue)
                    ? ["ok": .string("no longer consuming from \(queue)")]
                    : ["error": .string("not consuming from \(queue)")]
            } catch {
                return ["error": .string(error.description)]
            }
        case "active_queues":
            return .array(
                worker.queuesConsumed.map { q in
                    [
                        "name": .string(q),
                        "exchange": [
                            "name": .string(q), "type": "direct", "arguments": nil, "durable": true,
                            "passive": false, "auto_delete": false, "delivery_mode": nil, "no_declare": false,
                        ],
                        "routing_key": .string(q), "queue_arguments": nil, "binding_arguments": nil,
                        "consumer_arguments": nil,
                        "durable": true, "exclusive": false, "auto_delete": false, "no_ack": false, "alias": nil,
                        "bindings": [],
                        "no_declare": nil, "expires": nil, "message_ttl": nil, "max_length": nil,
                        "max_length_bytes": nil,
                        "max_priority": config.maxPriority.map { .int(Int64($0)) } ?? nil,
                    ]
                })
        case "stats":
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            let broker = worker.brokerInfo
            return [
                "total": .object(
                    JSONObject(worker.totalsByTask.sorted { $0.key < $1.key }.map { ($0.key, .int(Int64($0.value))) })),
                "pid": .int(Int64(getpid())),
                "clock": .string(String(worker.lamportClock)),
                "uptime": .int(Int64(Date().timeIntervalSince(worker.startedAt))),
                "pool": .object(poolStats(config)),
                "broker": [
                    "hostname": .string(broker.host), "userid": .string(broker.user),
                    "virtual_host": .string(broker.virtualHost),
                    "port": .int(Int64(broker.port)), "insist": false, "ssl": .bool(broker.tls),
                    "transport": .string(broker.transport),
                    "connect_timeout": .double(broker.connectTimeout), "transport_options": [:],
                    "login_method": "PLAIN",
                    "uri_prefix": nil, "heartbeat": .double(broker.heartbeat), "failover_strategy": "round-robin",
                    "alternates": [],
                ],
                "prefetch_count": .int(Int64(worker.prefetchNow)),
                "rusage": [
                    "utime": .double(Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6),
                    "stime": .double(Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6),
                    "maxrss": .int(Int64(usage.ru_maxrss)),
                ],
            ]
        case "conf":
            return [
                "broker_url": .string(worker.brokerDescription), "worker_concurrency": .int(Int64(config.concurrency)),
                "worker_prefetch_multiplier": .int(Int64(config.prefetchMultiplier)),
                // Key ids only: secrets never leave the process.
                "celeriac_signing_key_ids": config.security.signer.map {
                    JSONValue.array($0.keyIDs.map { .string($0) })
                } ?? .null,
                "celeriac_remote_control": .string(config.security.remoteControl.description),
            ]
        case "report":
            return [
                "ok": .string("software -> celeriac:\(config.hostname) (swift)\nbroker -> \(worker.brokerDescription)")
            ]
        case "enable_events":
            worker.setEventsEnabled(true)
            return ["ok": "task events enabled"]
        case "disable_events":
            worker.setEventsEnabled(false)
            return ["ok": "task events disabled"]
        case "heartbeat":
            if worker.eventsEnabled { worker.sendHeartbeat() }
            return nil
        case "shutdown":
            worker.logger.warning("remote shutdown requested: warm shutdown")
            worker.requestShutdown()
            return nil
        default:
            return ["error": .string("KeyError('\(method)')")]
        }
    }

    func requestInfo(_ m: TaskMessage, queue: String, started: Date?) -> JSONValue {
        [
            "id": .string(m.id), "name": .string(m.name), "args": .array(m.args), "kwargs": .object(m.kwargs),
            "type": .string(m.name),
            "hostname": .string(worker.configuration.hostname),
            "time_start": started.map { .double($0.timeIntervalSince1970) } ?? .null,
            "acknowledged": false,
            "delivery_info": [
                "exchange": "", "routing_key": .string(queue), "priority": .int(Int64(m.priority ?? 0)),
                "redelivered": false,
            ],
            "worker_pid": .int(Int64(getpid())),
        ]
    }
}
