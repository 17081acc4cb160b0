import CeleriacBroker
import CeleriacCore
import FoundationEssentials

/// The form a task message travels in.
///
/// Workers read both forms on every queue, always; the form is the producer's choice per destination queue
/// (``CeleriacClient/Configuration/compactQueues``, the worker's `compactQueues`, the CLI's `--compact-queues`).
public enum MessageForm: String, Sendable, CaseIterable {
    /// Celery's protocol v2: the protocol fields in about twenty AMQP headers, the body `[args, kwargs, embed]`.
    /// Every Celery 5 and Celeriac worker reads it.
    case celery
    /// Celeriac's compact form, for queues only Celeriac workers consume: no protocol headers, the fields in the
    /// body `[args, kwargs, embed, fields]`, marked by the AMQP `type` property ``TaskCodec/compactType``.
    ///
    /// A Celery 5 worker that meets one finds no `task` header, decodes the JSON body, finds a list where protocol
    /// v1 wants a dict, and rejects it without requeue (it never acks it): on a queue declared for the compact form
    /// (``Topology/workQueue(_:maxPriority:type:form:)``) the broker then moves it to the dead-letter queue.
    case compact
}

extension TaskCodec {
    /// The AMQP `type` property that marks a compact message (``MessageForm/compact``); the `1` is the layout's
    /// version.
    public static let compactType = "celeriac.compact.1"

    /// The compact message for `task` (see ``MessageForm/compact``).
    ///
    /// The fourth body element holds the protocol v2 fields under their header names (`task`, `id`, `root_id`,
    /// `parent_id`, `group`, `group_index`, `retries`, `eta`, `expires`, `timelimit`, `ignore_result`, `shadow`,
    /// `origin`, `replaced_task_nesting`, `stamped_headers`, `stamps`, `sent_at`) with absent and default values
    /// left out, and user headers under `headers`. Headers whose names start with `x-` stay AMQP headers, as in
    /// Celery's form: they are annotations (signatures, dead-letter and replay counts), never signed.
    static func encodeCompact(
        _ task: TaskMessage, routingKey: String, exchange: String, persistent: Bool, now: Date
    ) -> OutgoingMessage {
        var fields: [(String, JSONValue)] = [("task", .string(task.name)), ("id", .string(task.id))]
        func add(_ key: String, _ value: JSONValue?) { if let value { fields.append((key, value)) } }
        if let root = task.rootID, root != task.id { add("root_id", .string(root)) }
        add("parent_id", task.parentID.map { .string($0) })
        add("group", task.groupID.map { .string($0) })
        add("group_index", task.groupIndex.map { .int(Int64($0)) })
        if task.retries != 0 { add("retries", .int(Int64(task.retries))) }
        add("eta", task.eta.map { .string(ISOTime.format($0)) })
        add("expires", task.expires.map { .string(ISOTime.format($0)) })
        if task.timeLimit.hard != nil || task.timeLimit.soft != nil {
            add(
                "timelimit",
                .array([
                    task.timeLimit.hard.map { .double($0) } ?? .null, task.timeLimit.soft.map { .double($0) } ?? .null,
                ]))
        }
        add("ignore_result", task.ignoreResult.map { .bool($0) })
        add("shadow", task.shadow.map { .string($0) })
        add("origin", task.origin.map { .string($0) })
        if task.replacedTaskNesting != 0 { add("replaced_task_nesting", .int(Int64(task.replacedTaskNesting))) }
        if !task.stampedHeaders.isNull { add("stamped_headers", task.stampedHeaders) }
        if task.stamps != .object([:]) { add("stamps", task.stamps) }
        var annotations: [(key: String, value: FieldValue)] = []
        var user: [(String, JSONValue)] = []
        for (k, v) in task.extraHeaders where !HeaderKey.known.contains(k) {
            if k.hasPrefix("x-") { annotations.append((k, HeaderMapping.field(v))) } else { user.append((k, v)) }
        }
        if !user.isEmpty { add("headers", .object(JSONObject(user))) }
        add("sent_at", .double(now.timeIntervalSince1970))

        var embed: [(String, JSONValue)] = []
        if let c = task.embed.callbacks { embed.append(("callbacks", .array(c))) }
        if let e = task.embed.errbacks { embed.append(("errbacks", .array(e))) }
        if let c = task.embed.chain { embed.append(("chain", .array(c))) }
        if let c = task.embed.chord { embed.append(("chord", c)) }
        let body: JSONValue = .array([
            .array(task.args), .object(task.kwargs), .object(JSONObject(embed)), .object(JSONObject(fields)),
        ])
        var props = BasicProperties(
            contentType: "application/json", contentEncoding: "utf-8",
            headers: FieldTable(uniqueKeys: annotations),
            deliveryMode: persistent ? 2 : 1, priority: task.priority ?? 0,
            correlationID: task.correlationID ?? task.id, replyTo: task.replyTo ?? "")
        props.type = compactType
        if let expires = task.expires {
            props.expiration = String(max(0, Int((expires.timeIntervalSince(now) * 1000).rounded())))
        }
        return OutgoingMessage(exchange: exchange, routingKey: routingKey, body: body.jsonBytes, properties: props)
    }

    /// The task id and name of a compact message, read for tools (`celeriac dlq list`); nil when it is not one or
    /// its body is not readable.
    public static func compactSummary(_ d: Delivery) -> (id: String?, name: String?)? {
        guard d.properties.type == compactType, case .array(let parts)? = try? JSONValue.parse(d.body),
            parts.count == 4, case .object(let fields) = parts[3]
        else { return nil }
        return (fields["id"]?.stringValue, fields["task"]?.stringValue)
    }

    /// Decodes a compact message with the same limits and the same care as Celery's form: every field's type is
    /// checked, and a wrong one is a rejection that names the field.
    static func decodeCompact(_ d: Delivery, limits: Limits) throws(MessageRejection) -> TaskMessage {
        var id = d.properties.correlationID
        var name: String?
        func reject(_ reason: String) -> MessageRejection {
            MessageRejection(reason: "compact message: " + reason, taskID: id, taskName: name)
        }
        let headers = TaskHeaders(d.properties.headers)
        if headers.task != nil {
            throw reject(
                "it also has a 'task' header; a message is either Celery's form (headers) or compact (type '\(compactType)'), never both"
            )
        }
        try checkLimits(d, headers: headers, limits: limits, reject: reject)
        guard d.properties.contentType == "application/json" else {
            throw reject(
                "content_type '\(d.properties.contentType ?? "")' is not application/json; compact messages are JSON")
        }
        let body = try parseBody(d.body, limits: limits, reject: reject)
        guard case .array(let parts) = body, parts.count == 4 else {
            throw reject("body must be [args, kwargs, embed, fields] (four elements)")
        }
        guard case .object(let f) = parts[3] else { throw reject("body[3] (fields) must be an object") }
        id = f["id"]?.stringValue ?? id
        name = f["task"]?.stringValue
        let fields = CompactFields(f, reject: reject)
        guard let name, !name.isEmpty else { throw reject("no 'task' field (the task name)") }
        guard let taskID = try fields.string("id"), !taskID.isEmpty else { throw reject("no 'id' field") }
        guard taskID.utf8.count <= 255 else {
            throw reject("task id is \(taskID.utf8.count) bytes; at most 255 (Celery ids are 36-character UUIDs)")
        }
        guard case .array(let args) = parts[0] else { throw reject("body[0] (args) must be a list") }
        guard case .object(let kwargs) = parts[1] else { throw reject("body[1] (kwargs) must be an object") }
        try checkArguments(args: args.count, kwargs: kwargs.count, limits: limits, reject: reject)
        guard case .object(let e) = parts[2] else { throw reject("body[2] (embed) must be an object") }
        var embed = TaskMessage.Embed()
        for key in ["callbacks", "errbacks", "chain"] {
            guard let v = e[key], !v.isNull else { continue }
            guard case .array(let list) = v else { throw reject("embed '\(key)' must be a list of signatures") }
            switch key {
            case "callbacks": embed.callbacks = list
            case "errbacks": embed.errbacks = list
            default: embed.chain = list
            }
        }
        if let chord = e["chord"], !chord.isNull { embed.chord = chord }

        var task = TaskMessage(id: taskID, name: name, args: args, kwargs: kwargs, embed: embed)
        task.eta = try fields.date("eta")
        task.expires = try fields.date("expires")
        task.retries = try fields.count("retries") ?? 0
        task.timeLimit = try fields.timeLimit()
        task.rootID = try fields.string("root_id") ?? taskID
        task.parentID = try fields.string("parent_id")
        task.groupID = try fields.string("group")
        task.groupIndex = try fields.count("group_index")
        task.shadow = try fields.string("shadow")
        task.origin = try fields.string("origin")
        task.ignoreResult = try fields.bool("ignore_result")
        task.replacedTaskNesting = try fields.count("replaced_task_nesting") ?? 0
        task.stampedHeaders = f["stamped_headers"] ?? .null
        task.stamps = f["stamps"] ?? .object([:])
        if let sent = f["sent_at"], !sent.isNull {
            guard let seconds = sent.doubleValue else { throw reject("field 'sent_at' must be a number") }
            task.sentAt = Date(timeIntervalSince1970: seconds)
        }
        var extra = JSONObject()
        if let user = f["headers"], !user.isNull {
            guard case .object(let o) = user else { throw reject("field 'headers' must be an object") }
            for (k, v) in o where !HeaderKey.known.contains(k) { extra[k] = v }
        }
        for (k, v) in headers.unknown { extra[k] = HeaderMapping.json(v) }
        task.extraHeaders = extra
        task.replyTo = d.properties.replyTo.flatMap { $0.isEmpty ? nil : $0 }
        task.correlationID = d.properties.correlationID ?? taskID
        task.priority = d.properties.priority
        return task
    }
}

/// Typed reads of a compact message's fields; each wrong type is a rejection naming the field.
private struct CompactFields {
    let fields: JSONObject
    let reject: TaskCodec.Reject

    init(_ fields: JSONObject, reject: @escaping TaskCodec.Reject) {
        self.fields = fields
        self.reject = reject
    }

    func string(_ key: String) throws(MessageRejection) -> String? {
        guard let v = fields[key], !v.isNull else { return nil }
        guard let s = v.stringValue else { throw reject("field '\(key)' must be a string") }
        return s
    }

    func count(_ key: String) throws(MessageRejection) -> Int? {
        guard let v = fields[key], !v.isNull else { return nil }
        guard case .int(let n) = v, n >= 0, n <= Int64(Int32.max) else {
            throw reject("field '\(key)' must be a non-negative integer")
        }
        return Int(n)
    }

    func bool(_ key: String) throws(MessageRejection) -> Bool? {
        guard let v = fields[key], !v.isNull else { return nil }
        guard let b = v.boolValue else { throw reject("field '\(key)' must be true or false") }
        return b
    }

    func date(_ key: String) throws(MessageRejection) -> Date? {
        guard let s = try string(key) else { return nil }
        guard let date = ISOTime.parse(s) else {
            throw reject("field '\(key)' is not an ISO 8601 time: '\(s.prefix(64))'")
        }
        return date
    }

    func timeLimit() throws(MessageRejection) -> TaskMessage.TimeLimit {
        guard let v = fields["timelimit"], !v.isNull else { return .init() }
        guard case .array(let pair) = v, pair.count == 2 else {
            throw reject("field 'timelimit' must be a pair [hard, soft] of seconds or null")
        }
        var limits: [Double?] = []
        for limit in pair {
            if limit.isNull {
                limits.append(nil)
                continue
            }
            guard let seconds = limit.doubleValue, seconds.isFinite, seconds >= 0 else {
                throw reject("field 'timelimit' must be a pair [hard, soft] of non-negative seconds or null")
            }
            limits.append(seconds)
        }
        return .init(hard: limits[0], soft: limits[1])
    }
}
