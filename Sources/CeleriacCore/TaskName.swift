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
    public let name: String
    public let parameters: [String]

    public init(_ name: String, parameters: String...) {
        self.name = name
        self.parameters = parameters
    }

    public init(_ name: String, parameters: [String]) {
        self.name = name
        self.parameters = parameters
    }

    public var description: String { name }
}

/// The input of a task that takes no arguments.
public struct NoArguments: Codable, Sendable, Equatable {
    public init() {}
}
