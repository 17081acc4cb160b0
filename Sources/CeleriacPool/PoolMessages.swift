import CeleriacCore
import FoundationEssentials

/// Parent → child.
public enum PoolRequest: Equatable, Sendable {
    /// Run a task; `seq` numbers the run on this child.
    case run(seq: Int64, message: TaskMessage)
    /// Cancel run `seq` (soft time limit, revoke with terminate): the task's Swift Task is cancelled, or, if it has
    /// not started, it is answered `cancelled` without running. `softTimeLimit` says the soft limit (in seconds)
    /// is the reason, which the task sees as ``SoftTimeLimitExceeded``. Sent on the cancel pipe (fd 5).
    case cancel(seq: Int64, softTimeLimit: Double? = nil)

    /// The request as a frame's JSON: `{"t":"run","seq":N,"m":TASK}` or `{"t":"cancel","seq":N[,"soft":S]}`.
    public var json: JSONValue {
        switch self {
        case .run(let seq, let message): ["t": "run", "seq": .int(seq), "m": WireTask.json(message)]
        case .cancel(let seq, let soft):
            soft.map { ["t": "cancel", "seq": .int(seq), "soft": .double($0)] } ?? ["t": "cancel", "seq": .int(seq)]
        }
    }

    /// Reads a request frame; nil when it is not a well-formed `run` or `cancel`.
    public init?(json: JSONValue) {
        guard let seq = json["seq"]?.intValue else { return nil }
        switch json["t"]?.stringValue {
        case "run":
            guard let m = json["m"].flatMap(WireTask.message) else { return nil }
            self = .run(seq: seq, message: m)
        case "cancel": self = .cancel(seq: seq, softTimeLimit: json["soft"]?.doubleValue)
        default: return nil
        }
    }
}

/// Child → parent.
public enum PoolReply: Equatable, Sendable {
    case hello(version: Int64, pid: Int32)
    /// Run `seq` ended. `rss`: the child's resident bytes if it measured them (0: the parent reads /proc itself).
    case done(seq: Int64, result: RunResult, rss: Int64)
    /// Run `seq` reported an intermediate state (`context.updateState`); sent before its `done`.
    case state(seq: Int64, state: String, meta: JSONValue)

    /// How a run ended, as the child reports it.
    public enum RunResult: Equatable, Sendable {
        case success(JSONValue)
        case failure(TaskFailure)
        /// The task asked for a retry (or matched its autoretry errors).
        case retry(countdown: Double?, maxRetries: Int?, cause: TaskFailure?)
        /// The run was cancelled on request and ended with a cancellation.
        case cancelled
    }

    /// The reply as a frame's JSON: `{"t":"hello","v":V,"pid":P}`, `{"t":"done","seq":N,"rss":R,...}` with one of
    /// `ok`, `fail`, `retry` or `cancelled`, or `{"t":"state","seq":N,"state":S,"meta":M}`.
    public var json: JSONValue {
        switch self {
        case .hello(let version, let pid):
            return ["t": "hello", "v": .int(version), "pid": .int(Int64(pid))]
        case .done(let seq, let result, let rss):
            var o: JSONObject = ["t": "done", "seq": .int(seq), "rss": .int(rss)]
            switch result {
            case .success(let value): o["ok"] = value
            case .failure(let f): o["fail"] = Self.failureJSON(f)
            case .retry(let countdown, let maxRetries, let cause):
                o["retry"] = [
                    "countdown": countdown.map(JSONValue.double) ?? .null,
                    "max_retries": maxRetries.map { .int(Int64($0)) } ?? .null,
                    "cause": cause.map(Self.failureJSON) ?? .null,
                ]
            case .cancelled: o["cancelled"] = true
            }
            return .object(o)
        case .state(let seq, let state, let meta):
            return ["t": "state", "seq": .int(seq), "state": .string(state), "meta": meta]
        }
    }

    /// Reads a reply frame; nil when it is not a well-formed `hello`, `done` or `state`.
    public init?(json: JSONValue) {
        switch json["t"]?.stringValue {
        case "hello":
            guard let v = json["v"]?.intValue, let pid = json["pid"]?.intValue else { return nil }
            self = .hello(version: v, pid: Int32(truncatingIfNeeded: pid))
        case "done":
            guard let seq = json["seq"]?.intValue else { return nil }
            let rss = json["rss"]?.intValue ?? 0
            let result: RunResult
            if let ok = json["ok"] {
                result = .success(ok)
            } else if let f = json["fail"].flatMap(Self.failure) {
                result = .failure(f)
            } else if let r = json["retry"]?.objectValue {
                result = .retry(
                    countdown: r["countdown"]?.doubleValue, maxRetries: r["max_retries"]?.intValue.map { Int($0) },
                    cause: r["cause"].flatMap(Self.failure))
            } else if json["cancelled"] != nil {
                result = .cancelled
            } else {
                return nil
            }
            self = .done(seq: seq, result: result, rss: rss)
        case "state":
            guard let seq = json["seq"]?.intValue, let state = json["state"]?.stringValue else { return nil }
            self = .state(seq: seq, state: state, meta: json["meta"] ?? .null)
        default:
            return nil
        }
    }

    static func failureJSON(_ f: TaskFailure) -> JSONValue {
        [
            "type": .string(f.type), "args": .array(f.arguments), "module": .string(f.module),
            "traceback": f.traceback.map(JSONValue.string) ?? .null,
        ]
    }

    static func failure(_ json: JSONValue) -> TaskFailure? {
        guard let type = json["type"]?.stringValue, let module = json["module"]?.stringValue else { return nil }
        return TaskFailure(
            type: type, arguments: json["args"]?.arrayValue ?? [], module: module,
            traceback: json["traceback"]?.stringValue)
    }
}

/// A ``TaskMessage`` as the child needs it (everything a ``TaskContext`` exposes), as JSON.
enum WireTask {
    static func json(_ m: TaskMessage) -> JSONValue {
        var o: JSONObject = [
            "id": .string(m.id), "task": .string(m.name), "args": .array(m.args), "kwargs": .object(m.kwargs),
            "retries": .int(Int64(m.retries)),
        ]
        func put(_ key: String, _ value: String?) { if let value { o[key] = .string(value) } }
        put("root_id", m.rootID); put("parent_id", m.parentID); put("group", m.groupID); put("shadow", m.shadow)
        put("origin", m.origin); put("reply_to", m.replyTo); put("correlation_id", m.correlationID)
        if let i = m.groupIndex { o["group_index"] = .int(Int64(i)) }
        if let eta = m.eta { o["eta"] = .double(eta.timeIntervalSince1970) }
        if let expires = m.expires { o["expires"] = .double(expires.timeIntervalSince1970) }
        if m.timeLimit.hard != nil || m.timeLimit.soft != nil {
            o["timelimit"] = [
                m.timeLimit.hard.map(JSONValue.double) ?? .null, m.timeLimit.soft.map(JSONValue.double) ?? .null,
            ]
        }
        if let p = m.priority { o["priority"] = .int(Int64(p)) }
        if let ignore = m.ignoreResult { o["ignore_result"] = .bool(ignore) }
        if m.embed != TaskMessage.Embed() { o["embed"] = m.embed.json }
        if !m.extraHeaders.isEmpty { o["headers"] = .object(m.extraHeaders) }
        return .object(o)
    }

    static func message(_ json: JSONValue) -> TaskMessage? {
        guard let id = json["id"]?.stringValue, let name = json["task"]?.stringValue else { return nil }
        var m = TaskMessage(
            id: id, name: name, args: json["args"]?.arrayValue ?? [], kwargs: json["kwargs"]?.objectValue ?? [:],
            retries: Int(json["retries"]?.intValue ?? 0), rootID: json["root_id"]?.stringValue,
            parentID: json["parent_id"]?.stringValue, groupID: json["group"]?.stringValue,
            shadow: json["shadow"]?.stringValue, origin: json["origin"]?.stringValue,
            ignoreResult: json["ignore_result"]?.boolValue, replyTo: json["reply_to"]?.stringValue,
            priority: json["priority"]?.intValue.map { UInt8(clamping: $0) },
            extraHeaders: json["headers"]?.objectValue ?? [:])
        m.correlationID = json["correlation_id"]?.stringValue
        m.groupIndex = json["group_index"]?.intValue.map { Int($0) }
        m.eta = json["eta"]?.doubleValue.map { Date(timeIntervalSince1970: $0) }
        m.expires = json["expires"]?.doubleValue.map { Date(timeIntervalSince1970: $0) }
        if let tl = json["timelimit"]?.arrayValue, tl.count == 2 {
            m.timeLimit = .init(hard: tl[0].doubleValue, soft: tl[1].doubleValue)
        }
        if let e = json["embed"] {
            m.embed = .init(
                callbacks: e["callbacks"]?.arrayValue, errbacks: e["errbacks"]?.arrayValue,
                chain: e["chain"]?.arrayValue,
                chord: e["chord"].flatMap { v -> JSONValue? in v.isNull ? Optional.none : v })
        }
        return m
    }
}
