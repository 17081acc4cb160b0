import CeleriacBroker
import CeleriacCore
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why a delivery cannot be a task. The message goes to the dead-letter queue with this reason.
public struct MessageRejection: Error, CustomStringConvertible, Sendable {
    /// What is wrong and what the producer should change; the worker logs it and stores it in the dead letter's
    /// `x-celeriac-reason` header.
    public let reason: String
    /// The message's task id, when it has one (the `id` header, else the correlation id).
    public let taskID: String?
    /// The message's `task` header, when it has one.
    public let taskName: String?
    /// The bounded metrics label (`celeriac_messages_dead_lettered_total{reason}`): `invalid`, `limit`, `signature`.
    public var label: String = "invalid"
    /// The ``reason``.
    public var description: String { reason }
}

/// Encodes task messages exactly as Celery 5 does (protocol v2, JSON) and decodes them defensively.
public enum TaskCodec {
    /// Limits applied while decoding; violations are rejections, never crashes or unbounded allocations.
    public struct Limits: Sendable {
        /// Largest body accepted, in bytes (default 10 MiB; the worker's `--max-message-size`).
        public var maxBodyBytes: Int
        /// Deepest JSON nesting accepted in the body and in headers (default 64; `--max-json-depth`).
        public var maxDepth: Int
        /// Most positional arguments, and most keyword arguments, a message may carry.
        public var maxArgs: Int
        /// Most AMQP headers a message may carry.
        public var maxHeaders: Int
        /// Limits with the given values; the defaults are 10 MiB, 64 levels, 1024 arguments and 256 headers.
        public init(
            maxBodyBytes: Int = 10 * 1024 * 1024, maxDepth: Int = 64, maxArgs: Int = 1024, maxHeaders: Int = 256
        ) {
            self.maxBodyBytes = maxBodyBytes
            self.maxDepth = maxDepth
            self.maxArgs = maxArgs
            self.maxHeaders = maxHeaders
        }
    }

    /// The AMQP message for `task`, to publish with exchange "" and routing key = queue (Celery's rule for direct
    /// queues), in Celery's form unless `form` says compact (see ``MessageForm``).
    public static func encode(
        _ task: TaskMessage, routingKey: String, exchange: String = "", persistent: Bool = true, now: Date = Date(),
        form: MessageForm = .celery
    ) -> OutgoingMessage {
        if form == .compact {
            return encodeCompact(task, routingKey: routingKey, exchange: exchange, persistent: persistent, now: now)
        }
        // Built as a list and made a table once: each header set through the subscript would look for its key
        // first. The keys are distinct: the known headers once each, then extras that are not known headers.
        var h: [(key: String, value: FieldValue)] = [
            (HeaderKey.lang, .string("swift")),
            (HeaderKey.task, .string(task.name)),
            (HeaderKey.id, .string(task.id)),
            (HeaderKey.shadow, task.shadow.map { .string($0) } ?? .void),
            (HeaderKey.eta, task.eta.map { .string(ISOTime.format($0)) } ?? .void),
            (HeaderKey.expires, task.expires.map { .string(ISOTime.format($0)) } ?? .void),
            (HeaderKey.group, task.groupID.map { .string($0) } ?? .void),
            (HeaderKey.groupIndex, task.groupIndex.map { .int($0) } ?? .void),
            (HeaderKey.retries, .int(task.retries)),
            (
                HeaderKey.timelimit,
                .array([
                    task.timeLimit.hard.map { .double($0) } ?? .void, task.timeLimit.soft.map { .double($0) } ?? .void,
                ])
            ),
            (HeaderKey.rootID, .string(task.rootID ?? task.id)),
            (HeaderKey.parentID, task.parentID.map { .string($0) } ?? .void),
            (HeaderKey.argsrepr, .string(task.argsRepr ?? PythonRepr.args(task.args))),
            (HeaderKey.kwargsrepr, .string(task.kwargsRepr ?? PythonRepr.kwargs(task.kwargs))),
            (HeaderKey.origin, .string(task.origin ?? Origin.current)),
            (HeaderKey.ignoreResult, task.ignoreResult.map { .bool($0) } ?? .void),
            (HeaderKey.replacedTaskNesting, .int(task.replacedTaskNesting)),
            (HeaderKey.stampedHeaders, HeaderMapping.field(task.stampedHeaders)),
            (HeaderKey.stamps, HeaderMapping.field(task.stamps)),
        ]
        for (k, v) in task.extraHeaders where !HeaderKey.known.contains(k) { h.append((k, HeaderMapping.field(v))) }
        h.append((HeaderKey.sentAt, .double(now.timeIntervalSince1970)))
        var props = BasicProperties(
            contentType: "application/json", contentEncoding: "utf-8", headers: FieldTable(uniqueKeys: h),
            deliveryMode: persistent ? 2 : 1,
            priority: task.priority ?? 0, correlationID: task.correlationID ?? task.id, replyTo: task.replyTo ?? "")
        if let expires = task.expires {
            let ms = max(0, Int((expires.timeIntervalSince(now) * 1000).rounded()))
            props.expiration = String(ms)
        }
        return OutgoingMessage(
            exchange: exchange, routingKey: routingKey, body: task.bodyJSON.jsonBytes, properties: props)
    }

    /// Decodes a delivery into a task, or says why it is not one. Both forms are read (``MessageForm``): a
    /// message whose `type` property is ``compactType`` is decoded as the compact form.
    public static func decode(_ d: Delivery, limits: Limits = Limits()) throws(MessageRejection) -> TaskMessage {
        if d.properties.type == compactType { return try decodeCompact(d, limits: limits) }
        let headers = TaskHeaders(d.properties.headers)
        let id = headers.id?.stringValue ?? d.properties.correlationID
        let name = headers.task?.stringValue
        func reject(_ reason: String) -> MessageRejection {
            MessageRejection(reason: reason, taskID: id, taskName: name)
        }

        try checkLimits(d, headers: headers, limits: limits, reject: reject)
        guard let contentType = d.properties.contentType else {
            throw reject("message has no content_type; Celery task messages are application/json")
        }
        guard contentType == "application/json" else {
            throw reject(
                "content_type '\(contentType)' is not accepted (only application/json); set task_serializer='json' on the producer"
            )
        }
        if let c = headers.compression?.stringValue {
            throw reject("compressed messages ('\(c)') are not supported; turn task_compression off on the producer")
        }
        guard let name else {
            throw reject("no 'task' header: not a Celery protocol v2 message (protocol v1 is not supported)")
        }
        guard let id, !id.isEmpty else { throw reject("no 'id' header") }
        // The id becomes the result's correlation_id, an AMQP short string.
        guard id.utf8.count <= 255 else {
            throw reject("task id is \(id.utf8.count) bytes; at most 255 (Celery ids are 36-character UUIDs)")
        }
        let body = try parseBody(d.body, limits: limits, reject: reject)
        // Exactly three elements: a two-element body kills Python workers (wire spec §3.6), so it is never run.
        guard case .array(let parts) = body, parts.count == 3 else {
            throw reject("body must be [args, kwargs, embed] (three elements)")
        }
        guard case .array(let args) = parts[0] else { throw reject("body[0] (args) must be a list") }
        guard case .object(let kwargs) = parts[1] else { throw reject("body[1] (kwargs) must be an object") }
        try checkArguments(args: args.count, kwargs: kwargs.count, limits: limits, reject: reject)
        var embed = TaskMessage.Embed()
        do {
            guard case .object(let e) = parts[2] else { throw reject("body[2] (embed) must be an object") }
            embed.callbacks = e["callbacks"]?.arrayValue
            embed.errbacks = e["errbacks"]?.arrayValue
            embed.chain = e["chain"]?.arrayValue
            if let chord = e["chord"], !chord.isNull { embed.chord = chord }
        }

        var task = TaskMessage(id: id, name: name, args: args, kwargs: kwargs, embed: embed)
        if let eta = headers.eta, !eta.isVoid {
            guard let s = eta.stringValue, let date = ISOTime.parse(s) else {
                throw reject("invalid ETA value \(HeaderMapping.json(eta).jsonString)")
            }
            task.eta = date
        }
        if let expires = headers.expires, !expires.isVoid {
            guard let s = expires.stringValue, let date = ISOTime.parse(s) else {
                throw reject("invalid expires value \(HeaderMapping.json(expires).jsonString)")
            }
            task.expires = date
        }
        task.retries = Int(headers.retries?.intValue ?? 0)
        if case .array(let tl)? = headers.timelimit {
            task.timeLimit = .init(hard: tl.first?.doubleValue, soft: tl.count > 1 ? tl[1].doubleValue : nil)
        }
        task.rootID = headers.rootID?.stringValue ?? id
        task.parentID = headers.parentID?.stringValue
        task.groupID = headers.group?.stringValue
        task.groupIndex = headers.groupIndex?.intValue.map { Int($0) }
        task.shadow = headers.shadow?.stringValue
        task.argsRepr = headers.argsrepr?.stringValue
        task.kwargsRepr = headers.kwargsrepr?.stringValue
        task.origin = headers.origin?.stringValue
        task.ignoreResult = headers.ignoreResult?.boolValue
        task.replacedTaskNesting = Int(headers.replacedTaskNesting?.intValue ?? 0)
        task.stampedHeaders = headers.stampedHeaders.map(HeaderMapping.json) ?? .null
        task.stamps = headers.stamps.map(HeaderMapping.json) ?? .object([:])
        var extra = JSONObject()
        for (k, v) in headers.unknown { extra[k] = HeaderMapping.json(v) }
        task.extraHeaders = extra
        task.replyTo = d.properties.replyTo.flatMap { $0.isEmpty ? nil : $0 }
        task.correlationID = d.properties.correlationID ?? id
        task.priority = d.properties.priority
        task.sentAt = headers.sentAt?.doubleValue.map { Date(timeIntervalSince1970: $0) }
        return task
    }
}

/// `gen<pid>@<host>`, the `origin` header of messages this process produces.
public enum Origin {
    /// This process's origin, computed once: `gen<pid>@<hostname>`.
    public static let current: String = "gen\(getpid())@\(Hostname.current)"
}

/// This machine's host name, as `gethostname` reports it.
public enum Hostname {
    /// The host name, read once; `localhost` when it cannot be read. Default worker names are `celeriac@<host name>`.
    public static let current: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()
}

/// Encodes and decodes `rpc://` result messages (wire spec §6.2).
///
/// Results are persistent (delivery mode 2; Celery's default is transient): a result waiting in a reply queue
/// survives a broker restart. A reply queue with a consumer takes it without a disk write.
public enum ResultCodec {
    /// The JSON result message for the reply queue `replyTo`, on the default exchange, with the task's
    /// `correlationID` (the client matches results by it). Persistent unless `persistent` is false: intermediate
    /// states (`STARTED`, `PROGRESS`) are transient, as Celery sends them, since the final result supersedes them.
    public static func encode(_ result: ResultMessage, replyTo: String, correlationID: String, persistent: Bool = true)
        -> OutgoingMessage
    {
        OutgoingMessage(
            exchange: "", routingKey: replyTo, body: result.json.jsonBytes,
            properties: BasicProperties(
                contentType: "application/json", contentEncoding: "utf-8", headers: [:],
                deliveryMode: persistent ? 2 : 1,
                priority: 0, correlationID: correlationID))
    }

    /// Reads a result delivery; nil when the body is not JSON or not a result.
    public static func decode(_ d: Delivery) -> ResultMessage? {
        guard let json = try? JSONValue.parse(d.body) else { return nil }
        return ResultMessage(json: json, correlationID: d.properties.correlationID)
    }
}
