/// A typed task name: the wire name plus the Swift types of its input and output.
///
/// `Input` is a Codable struct whose coding keys are the task's parameters; `parameters` lists them in positional
/// order, so a Celery caller's `add.delay(2, 3)` (positional) and `add.delay(x=2, y=3)` (keywords) both decode.
///
/// ```swift
/// public enum Tasks {
///     public static let add = TaskName<AddArgs, Int>("demo.add", parameters: "x", "y")
/// }
/// ```
public struct TaskName<Input: Codable & Sendable, Output: Codable & Sendable>: Sendable, CustomStringConvertible {
    /// Task name as registered and sent, e.g. `demo.add`; Celery's `task` header.
    public let name: String
    /// The input's parameter names in positional order, mapping a caller's positional `args` onto `Input`'s keys.
    public let parameters: [String]

    /// A task name with its parameters listed in positional order, e.g. `TaskName("demo.add", parameters: "x", "y")`.
    public init(_ name: String, parameters: String...) {
        self.name = name
        self.parameters = parameters
    }

    /// A task name with its parameters given as an array, in positional order.
    public init(_ name: String, parameters: [String]) {
        self.name = name
        self.parameters = parameters
    }

    /// The wire name, ``name``.
    public var description: String { name }
}

/// The input of a task that takes no arguments.
public struct NoArguments: Codable, Sendable, Equatable {
    /// The (only) value: encodes as no arguments.
    public init() {}
}
