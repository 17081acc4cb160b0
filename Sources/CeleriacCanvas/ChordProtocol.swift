import CeleriacCore

/// What a chord's body does when a header member fails.
public enum ChordFailurePolicy: String, Sendable, Equatable {
    /// The default: the body is not run; its result is a FAILURE with `ChordError` naming the failed member.
    case failBody = "fail"
    /// The body runs with every member's outcome, results and errors side by side (``ChordPartOutcome``).
    case collectErrors = "collect"
}

/// The join facts of one chord, carried in the body signature's options under `celeriac_chord`.
///
/// Join design (README "How chords join"): every header member, when it finishes, publishes its outcome to the
/// chord's own durable queue (``joinQueue``, with `x-expires`), then reads the queue's message count; whoever
/// sees `size` parts publishes a `celeriac.chord_join` task. The joiner takes an exclusive lock queue, reads
/// the parts, publishes the body, then deletes the join queue. All state lives in RabbitMQ.
public struct ChordInfo: Sendable, Equatable {
    /// The chord's id: its `group_id`, which the header members carry as their `group`; names the join queues.
    public var id: String
    /// Number of header members; the join waits for this many parts.
    public var size: Int
    /// What the body does when a header member fails; the default fails it.
    public var policy: ChordFailurePolicy
    /// `x-expires` of the join queue: an abandoned chord's state disappears after this long unused.
    public var expiresMilliseconds: Int
    /// The queue the join task goes to (a queue Celeriac workers consume).
    public var queue: String
    /// Seconds after which the chord fails if its header is not complete.
    public var deadline: Double?
    /// The join queue is a quorum queue (a chord sent for a RabbitMQ cluster); every party declares it alike.
    public var quorum: Bool

    /// Join facts for chord `id` of `size` members. Defaults: fail the body on a member failure, a join queue that
    /// lives a day unused, no deadline, a classic (not quorum) queue.
    public init(
        id: String, size: Int, policy: ChordFailurePolicy = .failBody, expiresMilliseconds: Int = 86_400_000,
        queue: String, deadline: Double? = nil, quorum: Bool = false
    ) {
        self.quorum = quorum
        self.id = id
        self.size = size
        self.policy = policy
        self.expiresMilliseconds = expiresMilliseconds
        self.queue = queue
        self.deadline = deadline
    }

    /// Option key of the body signature that holds these facts (``json``).
    public static let optionKey = "celeriac_chord"
    /// Name of the built-in task that joins a chord: it reads the parts and publishes the body.
    public static let joinTaskName = "celeriac.chord_join"
    /// A built-in task returning its first argument: the body Celeriac gives a group nested in a chord header.
    public static let gatherTaskName = "celeriac.gather"

    /// The chord's durable join queue, `celeriac.chord.<id>`: each header member publishes its ``ChordPart`` to it.
    public var joinQueue: String { "celeriac.chord.\(id)" }
    /// The exclusive queue the joiner declares as a lock, `celeriac.chord.<id>.lock`, so only one joiner proceeds.
    public var lockQueue: String { "celeriac.chord.\(id).lock" }

    /// The facts as stored under ``optionKey``: `id`, `size`, `policy`, `expires_ms`, `queue`, plus `deadline` and
    /// `quorum` when set.
    public var json: JSONValue {
        var o: JSONObject = [
            "id": .string(id), "size": .int(Int64(size)), "policy": .string(policy.rawValue),
            "expires_ms": .int(Int64(expiresMilliseconds)), "queue": .string(queue),
        ]
        if let deadline { o["deadline"] = .double(deadline) }
        if quorum { o["quorum"] = true }
        return .object(o)
    }

    /// Reads facts written by ``json``; nil when `id`, `size` or `queue` is missing. Absent fields take the
    /// initializer's defaults.
    public init?(json: JSONValue?) {
        guard let o = json?.objectValue, let id = o["id"]?.stringValue, let size = o["size"]?.intValue,
            let queue = o["queue"]?.stringValue
        else { return nil }
        self.init(
            id: id, size: Int(size),
            policy: o["policy"]?.stringValue.flatMap(ChordFailurePolicy.init(rawValue:)) ?? .failBody,
            expiresMilliseconds: Int(o["expires_ms"]?.intValue ?? 86_400_000), queue: queue,
            deadline: o["deadline"]?.doubleValue,
            quorum: o["quorum"]?.boolValue ?? false)
    }
}

/// One header member's outcome as stored in the join queue.
public struct ChordPart: Sendable, Equatable {
    /// The member's position in the chord header (0-based); the body gets results in this order.
    public var index: Int
    /// Id of the header member's task.
    public var taskID: String
    /// What the member returned, or how it failed.
    public var outcome: Outcome

    /// A header member's result: its return value, or its failure.
    public enum Outcome: Sendable, Equatable {
        /// The member returned this value.
        case success(JSONValue)
        /// The member failed with this exception.
        case failure(TaskFailure)
    }

    /// A part from its parts.
    public init(index: Int, taskID: String, outcome: Outcome) {
        self.index = index
        self.taskID = taskID
        self.outcome = outcome
    }

    /// The part as published to the join queue: `index`, `task_id`, `status`, and `result` (SUCCESS) or `exc`
    /// (FAILURE).
    public var json: JSONValue {
        switch outcome {
        case .success(let value):
            .object(["index": .int(Int64(index)), "task_id": .string(taskID), "status": "SUCCESS", "result": value])
        case .failure(let failure):
            .object(["index": .int(Int64(index)), "task_id": .string(taskID), "status": "FAILURE", "exc": failure.json])
        }
    }

    /// Reads a part written by ``json``; nil without `index` or `task_id`. A non-SUCCESS part without a readable
    /// exception counts as a failure with a bare `Exception`.
    public init?(json: JSONValue) {
        guard let o = json.objectValue, let index = o["index"]?.intValue, let id = o["task_id"]?.stringValue else {
            return nil
        }
        self.index = Int(index)
        self.taskID = id
        if o["status"]?.stringValue == "SUCCESS" {
            outcome = .success(o["result"] ?? .null)
        } else {
            outcome = .failure(
                o["exc"].flatMap { TaskFailure(json: $0, traceback: nil) }
                    ?? TaskFailure(type: "Exception", arguments: [], module: "builtins"))
        }
    }
}

/// What the joiner does with the parts it read.
public enum ChordDecision: Sendable, Equatable {
    /// Some members have not reported yet (a trigger raced, or a duplicate part was counted).
    case incomplete(missing: [Int])
    /// Run the body with this first argument (results in header order).
    case runBody(JSONValue)
    /// The body fails with this (`ChordError`).
    case fail(TaskFailure)
}

/// The chord join's pure decision: given the parts read from a join queue, what to do with the body.
public enum ChordJoin {
    /// Decides from the parts read off the join queue. Duplicates (a member run twice after a crash) are ignored:
    /// the first part per index counts.
    public static func decide(parts: [ChordPart], info: ChordInfo, deadlinePassed: Bool = false) -> ChordDecision {
        var byIndex: [Int: ChordPart] = [:]
        for part in parts where part.index >= 0 && part.index < info.size && byIndex[part.index] == nil {
            byIndex[part.index] = part
        }
        let missing = (0..<info.size).filter { byIndex[$0] == nil }
        if !missing.isEmpty {
            guard deadlinePassed else { return .incomplete(missing: missing) }
            let shown = missing.prefix(10).map(String.init).joined(separator: ", ") + (missing.count > 10 ? ", …" : "")
            return .fail(
                chordError(
                    "chord \(info.id): its deadline of \(info.deadline.map { "\($0)" } ?? "?") s passed with \(info.size - missing.count) of \(info.size) header results in; missing members [\(shown)]"
                ))
        }
        let ordered = (0..<info.size).map { byIndex[$0]! }
        switch info.policy {
        case .failBody:
            if let culprit = ordered.first(where: { if case .failure = $0.outcome { true } else { false } }),
                case .failure(let failure) = culprit.outcome
            {
                return .fail(
                    chordError(
                        "Dependency \(culprit.taskID) raised \(failure.type)(\(failure.arguments.map(\.pythonRepr).joined(separator: ", "))) (header member \(culprit.index) of chord \(info.id))"
                    ))
            }
            return .runBody(.array(ordered.map { if case .success(let v) = $0.outcome { v } else { .null } }))
        case .collectErrors:
            return .runBody(
                .array(
                    ordered.map { part in
                        switch part.outcome {
                        case .success(let v): .object(["status": "SUCCESS", "result": v])
                        case .failure(let f):
                            .object([
                                "status": "FAILURE", "task_id": .string(part.taskID), "exc_type": .string(f.type),
                                "exc_message": .array(f.arguments), "exc_module": .string(f.module),
                            ])
                        }
                    }))
        }
    }

    /// A failure of type `celery.exceptions.ChordError` with `message`, as Celery reports a failed chord.
    public static func chordError(_ message: String) -> TaskFailure {
        TaskFailure(type: "ChordError", arguments: [.string(message)], module: "celery.exceptions")
    }
}

extension JSONValue {
    /// A short Python-like rendering for error messages.
    var pythonRepr: String {
        switch self {
        case .string(let s): "'\(s)'"
        default: jsonString
        }
    }
}
