import FoundationEssentials

/// One task invocation in Celery's protocol v2: what a client sends and a worker receives.
///
/// The body on the wire is `[args, kwargs, embed]`; the other fields travel as AMQP headers and properties
/// (see `CeleriacAMQP`'s codec). Unknown user headers are kept in ``extraHeaders`` and passed on (retries keep
/// them, as Celery does).
public struct TaskMessage: Sendable, Equatable {
    public var id: String
    public var name: String
    public var args: [JSONValue]
    public var kwargs: JSONObject
    public var embed: Embed
    public var eta: Date?
    public var expires: Date?
    public var retries: Int
    /// Hard and soft time limits in seconds (`timelimit: [hard, soft]` on the wire).
    public var timeLimit: TimeLimit
    public var rootID: String?
    public var parentID: String?
    public var groupID: String?
    public var groupIndex: Int?
    public var shadow: String?
    public var argsRepr: String?
    public var kwargsRepr: String?
    public var origin: String?
    /// nil means "the task's default" (Celery sends void from `send_task`).
    public var ignoreResult: Bool?
    public var replacedTaskNesting: Int
    public var stampedHeaders: JSONValue
    public var stamps: JSONValue
    public var extraHeaders: JSONObject
    public var replyTo: String?
    public var correlationID: String?
    public var priority: UInt8?
    /// When the producer published it (Celeriac producers only; not re-encoded, the codec stamps each publish).
    public var sentAt: Date?

    public struct TimeLimit: Sendable, Equatable {
        public var hard: Double?
        public var soft: Double?
        public init(hard: Double? = nil, soft: Double? = nil) { self.hard = hard; self.soft = soft }
    }

    /// `embed`: link callbacks, errbacks, the rest of a chain (next step last) and a chord body.
    public struct Embed: Sendable, Equatable {
        public var callbacks: [JSONValue]?
        public var errbacks: [JSONValue]?
        public var chain: [JSONValue]?
        public var chord: JSONValue?
        public init(callbacks: [JSONValue]? = nil, errbacks: [JSONValue]? = nil, chain: [JSONValue]? = nil, chord: JSONValue? = nil) {
            self.callbacks = callbacks
            self.errbacks = errbacks
            self.chain = chain
            self.chord = chord
        }
        public var json: JSONValue {
            .object([
                "callbacks": callbacks.map { .array($0) } ?? .null,
                "errbacks": errbacks.map { .array($0) } ?? .null,
                "chain": chain.map { .array($0) } ?? .null,
                "chord": chord ?? .null,
            ])
        }
    }

    public init(id: String = TaskMessage.newID(), name: String, args: [JSONValue] = [], kwargs: JSONObject = [:],
                embed: Embed = Embed(), eta: Date? = nil, expires: Date? = nil, retries: Int = 0,
                timeLimit: TimeLimit = TimeLimit(), rootID: String? = nil, parentID: String? = nil,
                groupID: String? = nil, groupIndex: Int? = nil, shadow: String? = nil, origin: String? = nil,
                ignoreResult: Bool? = false, replyTo: String? = nil, priority: UInt8? = nil,
                extraHeaders: JSONObject = [:]) {
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
        self.argsRepr = PythonRepr.args(args)
        self.kwargsRepr = PythonRepr.kwargs(kwargs)
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
    public static func args(_ args: [JSONValue]) -> String { cut("(" + args.map(repr).joined(separator: ", ") + (args.count == 1 ? ",)" : ")")) }
    public static func kwargs(_ kwargs: JSONObject) -> String {
        cut("{" + kwargs.pairs.map { "'\($0.key)': \(repr($0.value))" }.joined(separator: ", ") + "}")
    }
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
