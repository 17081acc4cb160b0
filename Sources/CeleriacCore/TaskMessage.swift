import FoundationEssentials

/// One task invocation in Celery's protocol v2: what a client sends and a worker receives.
///
/// The body on the wire is `[args, kwargs, embed]`; the other fields travel as AMQP headers and properties
/// (see `CeleriacAMQP`'s codec). Unknown user headers are kept in ``extraHeaders`` and passed on (retries keep
/// them, as Celery does).
public struct TaskMessage: Sendable, Equatable {
    /// The task id, a UUID string; the `id` header. Results and revokes name the task by it.
    public var id: String
    /// Task name as registered, e.g. `demo.add`; the `task` header.
    public var name: String
    /// Positional arguments; the body's first element.
    public var args: [JSONValue]
    /// Keyword arguments, in order; the body's second element.
    public var kwargs: JSONObject
    /// Callbacks, errbacks, chain and chord carried in the body's third element.
    public var embed: Embed
    /// Earliest time the task may run (`eta`, ISO 8601); nil runs it at once.
    public var eta: Date?
    /// Time after which the task is revoked instead of run (`expires`); nil never expires.
    public var expires: Date?
    /// How many times the task was retried before this message (`retries`); 0 for the first run.
    public var retries: Int
    /// Hard and soft time limits in seconds (`timelimit: [hard, soft]` on the wire).
    public var timeLimit: TimeLimit
    /// Id of the first task of the workflow (`root_id`); the initializer sets it to ``id`` when not given.
    public var rootID: String?
    /// Id of the task that sent this one (`parent_id`); nil for a task sent by a client.
    public var parentID: String?
    /// Id of the group this task belongs to (`group`); nil outside a group.
    public var groupID: String?
    /// Position of this task in its group (`group_index`), which orders a chord's results.
    public var groupIndex: Int?
    /// Name shown in logs and monitors instead of ``name`` (`shadow`); nil shows ``name``.
    public var shadow: String?
    /// Python repr of ``args`` for monitors (`argsrepr`), cut at 1024 characters; see ``PythonRepr``. Nil (what the
    /// initializer sets) means "of the arguments as they are": the codec and the events compute it when they need
    /// it, so it is never stale and a worker does not build it for a message it only runs.
    public var argsRepr: String?
    /// Python repr of ``kwargs`` for monitors (`kwargsrepr`), cut at 1024 characters; nil computes it from
    /// ``kwargs`` when needed, like ``argsRepr``.
    public var kwargsRepr: String?
    /// The sender's node name (`origin`), e.g. `gen42@host`.
    public var origin: String?
    /// nil means "the task's default" (Celery sends void from `send_task`).
    public var ignoreResult: Bool?
    /// How many times the task was replaced with `Task.replace` (`replaced_task_nesting`); 0 normally.
    public var replacedTaskNesting: Int
    /// Celery's stamping API: names of the headers that are stamps (`stamped_headers`); `null` when there are none.
    public var stampedHeaders: JSONValue
    /// Celery's stamping API: stamp values by name (`stamps`); passed on untouched.
    public var stamps: JSONValue
    /// User headers the protocol does not define (tracing context, unique locks, ...); sent and kept as they are.
    public var extraHeaders: JSONObject
    /// Queue the result goes to for `rpc://` (AMQP `reply_to`); nil when no result is wanted.
    public var replyTo: String?
    /// AMQP `correlation_id`: the task id, so a result can be matched to its call.
    public var correlationID: String?
    /// AMQP message priority, 0–255; a queue honours it up to its `x-max-priority`. Nil sends none.
    public var priority: UInt8?
    /// When the producer published it (Celeriac producers only; not re-encoded, the codec stamps each publish).
    public var sentAt: Date?

    /// Time limits for this message in seconds; a nil limit falls back to the task's option, then the worker's.
    public struct TimeLimit: Sendable, Equatable {
        /// Seconds of running after which the task is stopped by force and fails with `TimeLimitExceeded`.
        public var hard: Double?
        /// Seconds of running after which the task is cancelled and sees ``SoftTimeLimitExceeded``.
        public var soft: Double?
        /// Limits in seconds; nil leaves that limit to the task's option or the worker's default.
        public init(hard: Double? = nil, soft: Double? = nil) { self.hard = hard; self.soft = soft }
    }

    /// `embed`: link callbacks, errbacks, the rest of a chain (next step last) and a chord body.
    public struct Embed: Sendable, Equatable {
        /// Signatures (Celery signature dicts) to call with the result on success (`link`).
        public var callbacks: [JSONValue]?
        /// Signatures to call with the task id when the task fails (`link_error`).
        public var errbacks: [JSONValue]?
        /// The chain's remaining steps as signature dicts, the next one last; nil outside a chain.
        public var chain: [JSONValue]?
        /// The chord's body (a signature dict) to run once the chord's header group finishes; nil outside a chord.
        public var chord: JSONValue?
        /// An embed with the given parts; nil parts are sent as JSON `null`.
        public init(
            callbacks: [JSONValue]? = nil, errbacks: [JSONValue]? = nil, chain: [JSONValue]? = nil,
            chord: JSONValue? = nil
        ) {
            self.callbacks = callbacks
            self.errbacks = errbacks
            self.chain = chain
            self.chord = chord
        }
        /// The `embed` object: `callbacks`, `errbacks`, `chain` and `chord`, each `null` when absent.
        public var json: JSONValue {
            .object([
                "callbacks": callbacks.map { .array($0) } ?? .null,
                "errbacks": errbacks.map { .array($0) } ?? .null,
                "chain": chain.map { .array($0) } ?? .null,
                "chord": chord ?? .null,
            ])
        }
    }

    /// A message ready to publish. `rootID` defaults to `id`; `argsRepr`/`kwargsRepr` are left nil (computed from the
    /// arguments when the message is encoded), and the correlation id is `id`. `ignoreResult` defaults to `false`, which keeps the result even for a task
    /// whose options ignore it; pass nil to let the task's option decide.
    public init(
        id: String = TaskMessage.newID(), name: String, args: [JSONValue] = [], kwargs: JSONObject = [:],
        embed: Embed = Embed(), eta: Date? = nil, expires: Date? = nil, retries: Int = 0,
        timeLimit: TimeLimit = TimeLimit(), rootID: String? = nil, parentID: String? = nil,
        groupID: String? = nil, groupIndex: Int? = nil, shadow: String? = nil, origin: String? = nil,
        ignoreResult: Bool? = false, replyTo: String? = nil, priority: UInt8? = nil,
        extraHeaders: JSONObject = [:]
    ) {
        self.id = id
        self.name = name
        self.args = args
        self.kwargs = kwargs
        self.embed = embed
        self.eta = eta
        self.expires = expires
        self.retries = retries
        self.timeLimit = timeLimit
        self.rootID = rootID ?? id
        self.parentID = parentID
        self.groupID = groupID
        self.groupIndex = groupIndex
        self.shadow = shadow
        self.argsRepr = nil
        self.kwargsRepr = nil
        self.origin = origin
        self.ignoreResult = ignoreResult
        self.replacedTaskNesting = 0
        self.stampedHeaders = .null
        self.stamps = .object([:])
        self.extraHeaders = extraHeaders
        self.replyTo = replyTo
        self.correlationID = id
        self.priority = priority
    }

    /// A new random task id (a lower-case version 4 UUID, like Celery's).
    public static func newID() -> String { TaskID.random() }

    /// The `[args, kwargs, embed]` body.
    public var bodyJSON: JSONValue { .array([.array(args), .object(kwargs), embed.json]) }
}

/// Python-style reprs for `argsrepr` / `kwargsrepr`, which monitors (Flower) show verbatim. Cut at 1024 chars.
public enum PythonRepr {
    /// `args` as a Python tuple, e.g. `(2, 'x')`, or `(2,)` for one element.
    public static func args(_ args: [JSONValue]) -> String {
        cut("(" + args.map(repr).joined(separator: ", ") + (args.count == 1 ? ",)" : ")"))
    }
    /// `kwargs` as a Python dict, e.g. `{'n': 3}`, keys in order.
    public static func kwargs(_ kwargs: JSONObject) -> String {
        cut("{" + kwargs.pairs.map { "'\($0.key)': \(repr($0.value))" }.joined(separator: ", ") + "}")
    }
    /// One value in Python's syntax: `None`, `True`/`False`, quoted strings, lists and dicts.
    public static func repr(_ v: JSONValue) -> String {
        switch v {
        case .null: "None"
        case .bool(let b): b ? "True" : "False"
        case .int(let i): String(i)
        case .double(let d): "\(d)"
        case .string(let s): "'" + s.replacing("\\", with: "\\\\").replacing("'", with: "\\'") + "'"
        case .array(let a): "[" + a.map(repr).joined(separator: ", ") + "]"
        case .object(let o): "{" + o.pairs.map { "'\($0.key)': \(repr($0.value))" }.joined(separator: ", ") + "}"
        }
    }
    private static func cut(_ s: String) -> String { s.count > 1024 ? String(s.prefix(1021)) + "..." : s }
}
