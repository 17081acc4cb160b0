import CeleriacCore

/// A canvas tree without Swift types: what travels on the wire as Celery signature JSON (celery-wire.md §4).
///
/// The typed DSL (``Signature``, ``Step``) builds these; workers parse them back from `embed.chain`,
/// `embed.callbacks` and `embed.chord` and apply them with ``CanvasPlanner``.
public indirect enum CanvasNode: Sendable, Equatable {
    /// One task: name, partial arguments, send options.
    case task(TaskSignature)
    /// Steps run one after another; each mutable step gets the previous result as its first argument.
    case chain([CanvasNode], options: JSONObject)
    /// Members run in parallel; the result is the list of their results, in member order.
    case group([CanvasNode], options: JSONObject)
    /// A group (the header) whose results, in header order, are the first argument of the body.
    case chord(header: [CanvasNode], body: CanvasNode, options: JSONObject)

    /// The node's send options (Celery's signature `options`: `queue`, `countdown`, `link`, `task_id`, ...). Setting it
    /// replaces the options of this node only, not of its children.
    public var options: JSONObject {
        get {
            switch self {
            case .task(let t): t.options
            case .chain(_, let o), .group(_, let o), .chord(_, _, let o): o
            }
        }
        set {
            switch self {
            case .task(var t): t.options = newValue; self = .task(t)
            case .chain(let s, _): self = .chain(s, options: newValue)
            case .group(let m, _): self = .group(m, options: newValue)
            case .chord(let h, let b, _): self = .chord(header: h, body: b, options: newValue)
            }
        }
    }
}

/// A single task's signature: `{"task", "args", "kwargs", "options", "subtask_type", "immutable"}`.
public struct TaskSignature: Sendable, Equatable {
    /// Task name as registered, e.g. `demo.add`; the signature's `task`.
    public var name: String
    /// Partial positional arguments; a mutable step gets the previous result inserted before them.
    public var args: [JSONValue]
    /// Keyword arguments, in order.
    public var kwargs: JSONObject
    /// Send options: `queue`, `countdown`, `expires`, `priority`, `link`, `link_error`, `task_id`, ...
    public var options: JSONObject
    /// `.si()`: the previous step's result is not prepended to `args`.
    public var immutable: Bool
    /// `nil` for a plain task; Celery's `"xmap"`, `"xstarmap"` for its built-in map tasks.
    public var subtaskType: String?

    /// A signature for task `name`; everything else defaults to empty, mutable and a plain task.
    public init(
        name: String, args: [JSONValue] = [], kwargs: JSONObject = [:], options: JSONObject = [:],
        immutable: Bool = false, subtaskType: String? = nil
    ) {
        self.name = name
        self.args = args
        self.kwargs = kwargs
        self.options = options
        self.immutable = immutable
        self.subtaskType = subtaskType
    }
}

/// Why a JSON value is not a signature.
public struct CanvasDecodingError: Error, CustomStringConvertible, Sendable {
    /// What is missing or malformed, e.g. `no "task" name in ...`.
    public let reason: String
    /// `not a Celery signature: <reason>`.
    public var description: String { "not a Celery signature: \(reason)" }
}

extension CanvasNode {
    /// Celery's JSON form. Chains, groups and chords use the `celery.chain` / `celery.group` / `celery.chord` task
    /// names with their parts in `kwargs`, exactly as Celery 5 serializes them.
    public var json: JSONValue {
        switch self {
        case .task(let t):
            return Self.signature(
                t.name, args: t.args, kwargs: t.kwargs, options: t.options,
                type: t.subtaskType.map { .string($0) } ?? .null, immutable: t.immutable)
        case .chain(let steps, let options):
            return Self.signature(
                "celery.chain", args: [], kwargs: ["tasks": .array(steps.map(\.json))],
                options: options, type: "chain", immutable: false)
        case .group(let members, let options):
            return Self.signature(
                "celery.group", args: [], kwargs: ["tasks": .array(members.map(\.json))],
                options: options, type: "group", immutable: false)
        case .chord(let header, let body, let options):
            return Self.signature(
                "celery.chord", args: [],
                kwargs: ["kwargs": .object([:]), "header": .array(header.map(\.json)), "body": body.json],
                options: options, type: "chord", immutable: false)
        }
    }

    private static func signature(
        _ name: String, args: [JSONValue], kwargs: JSONObject, options: JSONObject,
        type: JSONValue, immutable: Bool
    ) -> JSONValue {
        .object([
            "task": .string(name), "args": .array(args), "kwargs": .object(kwargs), "options": .object(options),
            "subtask_type": type, "immutable": .bool(immutable),
        ])
    }

    /// Parses Celery signature JSON (unknown keys are ignored, as Celery 5.0's `chord_size`).
    public init(json: JSONValue) throws(CanvasDecodingError) {
        guard let object = json.objectValue else {
            throw CanvasDecodingError(reason: "expected an object, got \(json.jsonString.prefix(80))")
        }
        guard let name = object["task"]?.stringValue else {
            throw CanvasDecodingError(reason: "no \"task\" name in \(json.jsonString.prefix(80))")
        }
        let options = object["options"]?.objectValue ?? [:]
        let kwargs = object["kwargs"]?.objectValue ?? [:]
        let type = object["subtask_type"]?.stringValue
        func nodes(_ value: JSONValue?, _ what: String) throws(CanvasDecodingError) -> [CanvasNode] {
            // A nested group may appear as a list of signatures or as a group signature.
            if let list = value?.arrayValue {
                var out: [CanvasNode] = []
                for item in list { out.append(try CanvasNode(json: item)) }
                return out
            }
            if let value, value.objectValue != nil {
                let node = try CanvasNode(json: value)
                if case .group(let members, _) = node { return members }
                return [node]
            }
            throw CanvasDecodingError(reason: "\(name): \(what) must be a list of signatures")
        }
        switch type {
        case "chain":
            self = .chain(try nodes(kwargs["tasks"], "kwargs.tasks"), options: options)
        case "group":
            self = .group(try nodes(kwargs["tasks"], "kwargs.tasks"), options: options)
        case "chord":
            guard let body = kwargs["body"] else { throw CanvasDecodingError(reason: "celery.chord without a body") }
            self = .chord(
                header: try nodes(kwargs["header"], "kwargs.header"), body: try CanvasNode(json: body), options: options
            )
        case "chunks":
            // chunks(task, it, n) is a group of starmap tasks over slices of `it`.
            guard let task = kwargs["task"], let items = kwargs["it"]?.arrayValue, let n = kwargs["n"]?.intValue, n > 0
            else {
                throw CanvasDecodingError(reason: "celery.chunks needs kwargs task, it (a list) and n > 0")
            }
            self = Self.chunks(task: task, items: items, size: Int(n), options: options)
        default:
            self = .task(
                TaskSignature(
                    name: name, args: object["args"]?.arrayValue ?? [], kwargs: kwargs, options: options,
                    immutable: object["immutable"]?.boolValue ?? false, subtaskType: type))
        }
    }

    /// `celery.starmap` over consecutive slices of `items`, one task per slice, as Celery's `chunks` does.
    static func chunks(task: JSONValue, items: [JSONValue], size: Int, options: JSONObject) -> CanvasNode {
        let slices = stride(from: 0, to: items.count, by: size).map { Array(items[$0..<min($0 + size, items.count)]) }
        return .group(
            slices.map { slice in
                .task(
                    TaskSignature(
                        name: "celery.starmap", kwargs: ["task": task, "it": .array(slice)], immutable: true,
                        subtaskType: "xstarmap"))
            }, options: options)
    }
}
