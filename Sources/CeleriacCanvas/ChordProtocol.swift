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
    public var id: String
    public var size: Int
    public var policy: ChordFailurePolicy
    /// `x-expires` of the join queue: an abandoned chord's state disappears after this long unused.
    public var expiresMilliseconds: Int
    /// The queue the join task goes to (a queue Celeriac workers consume).
    public var queue: String
    /// Seconds after which the chord fails if its header is not complete.
    public var deadline: Double?
    /// The join queue is a quorum queue (a chord sent for a RabbitMQ cluster); every party declares it alike.
    public var quorum: Bool

    public init(id: String, size: Int, policy: ChordFailurePolicy = .failBody, expiresMilliseconds: Int = 86_400_000,
                queue: String, deadline: Double? = nil, quorum: Bool = false) {
        self.quorum = quorum
        self.id = id
        self.size = size
        self.policy = policy
        self.expiresMilliseconds = expiresMilliseconds
        self.queue = queue
        self.deadline = deadline
    }

    public static let optionKey = "celeriac_chord"
    public static let joinTaskName = "celeriac.chord_join"
    /// A built-in task returning its first argument: the body Celeriac gives a group nested in a chord header.
    public static let gatherTaskName = "celeriac.gather"

    public var joinQueue: String { "celeriac.chord.\(id)" }
    public var lockQueue: String { "celeriac.chord.\(id).lock" }

    public var json: JSONValue {
        var o: JSONObject = ["id": .string(id), "size": .int(Int64(size)), "policy": .string(policy.rawValue),
                             "expires_ms": .int(Int64(expiresMilliseconds)), "queue": .string(queue)]
        if let deadline { o["deadline"] = .double(deadline) }
        if quorum { o["quorum"] = true }
        return .object(o)
    }

    public init?(json: JSONValue?) {
        guard let o = json?.objectValue, let id = o["id"]?.stringValue, let size = o["size"]?.intValue,
              let queue = o["queue"]?.stringValue else { return nil }
        self.init(id: id, size: Int(size), policy: o["policy"]?.stringValue.flatMap(ChordFailurePolicy.init(rawValue:)) ?? .failBody,
                  expiresMilliseconds: Int(o["expires_ms"]?.intValue ?? 86_400_000), queue: queue, deadline: o["deadline"]?.doubleValue,
                  quorum: o["quorum"]?.boolValue ?? false)
    }
}

/// One header member's outcome as stored in the join queue.
public struct ChordPart: Sendable, Equatable {
    public var index: Int
    public var taskID: String
    public var outcome: Outcome

    public enum Outcome: Sendable, Equatable {
        case success(JSONValue)
        case failure(TaskFailure)
    }

    public init(index: Int, taskID: String, outcome: Outcome) {
        self.index = index
        self.taskID = taskID
        self.outcome = outcome
    }

    public var json: JSONValue {
        switch outcome {
        case .success(let value):
            .object(["index": .int(Int64(index)), "task_id": .string(taskID), "status": "SUCCESS", "result": value])
        case .failure(let failure):
            .object(["index": .int(Int64(index)), "task_id": .string(taskID), "status": "FAILURE", "exc": failure.json])
        }
    }

    public init?(json: JSONValue) {
        guard let o = json.objectValue, let index = o["index"]?.intValue, let id = o["task_id"]?.stringValue else { return nil }
        self.index = Int(index)
        self.taskID = id
        if o["status"]?.stringValue == "SUCCESS" {
            outcome = .success(o["result"] ?? .null)
        } else {
            outcome = .failure(o["exc"].flatMap { TaskFailure(json: $0, traceback: nil) }
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
            return .fail(chordError("chord \(info.id): its deadline of \(info.deadline.map { "\($0)" } ?? "?") s passed with \(info.size - missing.count) of \(info.size) header results in; missing members [\(shown)]"))
        }
        let ordered = (0..<info.size).map { byIndex[$0]! }
        switch info.policy {
        case .failBody:
            if let culprit = ordered.first(where: { if case .failure = $0.outcome { true } else { false } }),
               case .failure(let failure) = culprit.outcome {
                return .fail(chordError("Dependency \(culprit.taskID) raised \(failure.type)(\(failure.arguments.map(\.pythonRepr).joined(separator: ", "))) (header member \(culprit.index) of chord \(info.id))"))
            }
            return .runBody(.array(ordered.map { if case .success(let v) = $0.outcome { v } else { .null } }))
        case .collectErrors:
            return .runBody(.array(ordered.map { part in
                switch part.outcome {
                case .success(let v): .object(["status": "SUCCESS", "result": v])
                case .failure(let f): .object(["status": "FAILURE", "task_id": .string(part.taskID), "exc_type": .string(f.type),
                                                "exc_message": .array(f.arguments), "exc_module": .string(f.module)])
                }
            }))
        }
    }

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
