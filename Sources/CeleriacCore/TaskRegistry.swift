import FoundationEssentials

/// The tasks a worker can run, by name.
///
/// ```swift
/// var registry = TaskRegistry()
/// registry.register(Tasks.add) { args, _ in args.x + args.y }
/// try registry.validate()   // duplicate names stop start-up with a clear message
/// ```
public struct TaskRegistry: Sendable {
    /// The registered tasks by name; a name registered twice holds the last registration.
    public private(set) var tasks: [String: RegisteredTask] = [:]
    private var duplicates: [String] = []

    /// An empty registry.
    public init() {}

    /// Registers `body` under `task`'s name. Registering a name twice is reported by ``validate()``.
    public mutating func register<Input, Output>(
        _ task: TaskName<Input, Output>, options: TaskOptions = TaskOptions(),
        _ body: @escaping @Sendable (Input, TaskContext) async throws -> Output
    ) {
        if tasks[task.name] != nil { duplicates.append(task.name) }
        let parameters = task.parameters
        let name = task.name
        tasks[task.name] = RegisteredTask(name: name, parameters: parameters, options: options) { message, context in
            let input: Input = try ArgumentBinder.bind(
                task: name, parameters: parameters, args: message.args, kwargs: message.kwargs)
            let output = try await body(input, context)
            return try JSONBridge.encode(output)
        }
    }

    /// Throws when a task name was registered more than once.
    public func validate() throws(CeleriacError) {
        if !duplicates.isEmpty {
            throw .configuration(
                "task name(s) registered more than once: \(Set(duplicates).sorted().joined(separator: ", ")). Give each task a unique name"
            )
        }
    }

    /// The task registered under `name`, e.g. `demo.add`; nil when there is none.
    public subscript(name: String) -> RegisteredTask? { tasks[name] }
    /// The registered task names, sorted.
    public var names: [String] { tasks.keys.sorted() }
}

/// A registered task, type-erased: it takes a message's JSON arguments and returns JSON.
public struct RegisteredTask: Sendable {
    /// Task name as registered, e.g. `demo.add`; matched against a message's `task` header.
    public let name: String
    /// Parameter names in positional order, for binding positional `args`.
    public let parameters: [String]
    /// The task's options; the worker reads them on every run.
    public var options: TaskOptions
    /// Decodes the message's arguments, runs the task, and encodes its return value as JSON. Throws what the task
    /// throws, or `TypeError` (``BuiltinError``) when the arguments do not fit.
    public let run: @Sendable (TaskMessage, TaskContext) async throws -> JSONValue

    /// A task from its parts; ``TaskRegistry/register(_:options:_:)`` builds one from a typed body.
    public init(
        name: String, parameters: [String], options: TaskOptions,
        run: @escaping @Sendable (TaskMessage, TaskContext) async throws -> JSONValue
    ) {
        self.name = name
        self.parameters = parameters
        self.options = options
        self.run = run
    }
}

/// Maps positional args and kwargs onto a task's parameters and decodes the typed input.
public enum ArgumentBinder {
    /// Binds positional `args` to `parameters` in order and adds `kwargs`, then decodes the resulting object as
    /// `Input`. ``NoArguments`` binds to an empty call.
    ///
    /// - Throws: ``BuiltinError`` `TypeError` with a Python-like message (`demo.add() got an unexpected keyword
    ///   argument 'z'`) when there are too many positional arguments, an unknown or repeated keyword, or a value of the
    ///   wrong type.
    public static func bind<Input: Decodable>(task: String, parameters: [String], args: [JSONValue], kwargs: JSONObject)
        throws -> Input
    {
        if let direct = NoArguments() as? Input, args.isEmpty, kwargs.isEmpty { return direct }
        guard args.count <= parameters.count else {
            throw BuiltinError.typeError(
                "\(task)() takes \(parameters.count) positional argument\(parameters.count == 1 ? "" : "s") but \(args.count) were given"
            )
        }
        var object = JSONObject()
        for (i, value) in args.enumerated() { object.appendUnchecked(parameters[i], value) }
        for (key, value) in kwargs {
            guard parameters.contains(key) else {
                throw BuiltinError.typeError("\(task)() got an unexpected keyword argument '\(key)'")
            }
            if object[key] != nil {
                throw BuiltinError.typeError("\(task)() got multiple values for argument '\(key)'")
            }
            object.appendUnchecked(key, value)
        }
        do {
            return try JSONBridge.decode(Input.self, from: .object(object))
        } catch let error as DecodingError {
            throw BuiltinError.typeError("\(task)(): \(describe(error))")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ p: [any CodingKey]) -> String {
            guard let first = p.first else { return "the arguments" }
            let rest = p.dropFirst().map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return "argument '\(first.stringValue)'\(rest)"
        }
        switch error {
        case .keyNotFound(let key, let ctx):
            return ctx.codingPath.isEmpty
                ? "missing required argument '\(key.stringValue)'"
                : "\(path(ctx.codingPath)) is missing '\(key.stringValue)'"
        case .typeMismatch(let type, let ctx):
            return "\(path(ctx.codingPath)) must be \(typeName(type))"
        case .valueNotFound(let type, let ctx):
            return "\(path(ctx.codingPath)) must be \(typeName(type)), not null"
        case .dataCorrupted(let ctx):
            return "\(path(ctx.codingPath)): \(ctx.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is Int64.Type, is Int32.Type: "an integer"
        case is Double.Type, is Float.Type: "a number"
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        case is [Any].Type: "a list"
        default:
            "\(type)".hasPrefix("Array")
                ? "a list" : "\(type)".hasPrefix("Dictionary") ? "an object" : "of type \(type)"
        }
    }
}

/// Converts between Codable Swift values and ``JSONValue`` through JSON text.
public enum JSONBridge {
    /// Encodes `value` as JSON; a ``JSONValue``, `Int` or `String` is converted directly.
    ///
    /// - Throws: the `EncodingError` of `JSONEncoder`, or ``JSONParseError`` (e.g. an integer beyond `Int64`).
    public static func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        if let v = value as? JSONValue { return v }
        if let v = value as? Int { return .int(Int64(v)) }
        if let v = value as? String { return .string(v) }
        let data = try JSONEncoder().encode(value)
        return try JSONValue.parse([UInt8](data))
    }

    /// Decodes `json` as `T`; a ``JSONValue`` or an in-range `Int` is taken directly.
    ///
    /// - Throws: the `DecodingError` of `JSONDecoder` when `json` does not fit `T`.
    public static func decode<T: Decodable>(_ type: T.Type, from json: JSONValue) throws -> T {
        if let v = json as? T { return v }
        if T.self == Int.self, case .int(let i) = json, let v = Int(exactly: i) as? T { return v }
        return try JSONDecoder().decode(T.self, from: Data(json.jsonBytes))
    }
}
