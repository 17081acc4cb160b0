import CeleriacCore

/// A canvas ready to send that produces an `Output`: a task with all its arguments, a chain, a group
/// (`Signature<[T]>`) or a chord. Send it with `client.apply(_:)`.
///
/// ```swift
/// let total = DemoTasks.add.s(2, 2) | DemoTasks.mul.s(4)          // Signature<Int>: mul(add(2, 2), 4)
/// ```
public struct Signature<Output: Codable & Sendable>: Sendable {
    /// The untyped canvas tree this signature sends.
    public var node: CanvasNode

    /// Wraps an untyped tree; the caller vouches that it produces `Output`.
    public init(node: CanvasNode) { self.node = node }

    /// The same canvas with its output type forgotten, e.g. to put different tasks in one group.
    public var erased: Signature<JSONValue> { Signature<JSONValue>(node: node) }
}

/// A canvas step waiting for its first argument: the previous step's result, of type `Input`.
///
/// `DemoTasks.mul.s(4)` is a `Step<Int, Int>`: it becomes `mul(previous, 4)`. A chain whose next step cannot
/// take the previous result does not compile.
public struct Step<Input: Codable & Sendable, Output: Codable & Sendable>: Sendable {
    /// The untyped canvas tree, with the previous result not yet in its arguments.
    public var node: CanvasNode

    /// Wraps an untyped tree; the caller vouches that it takes `Input` first and produces `Output`.
    public init(node: CanvasNode) { self.node = node }
}

/// A task input with one positional parameter; lets `TaskName` build typed signatures and steps.
///
/// ```swift
/// struct Numbers: Codable, Sendable, Arguments1 { var numbers: [Int]; init(_ numbers: [Int]) { self.numbers = numbers } }
/// ```
public protocol Arguments1: Codable, Sendable {
    associatedtype First: Codable & Sendable
    init(_ first: First)
}

/// A task input with two positional parameters.
public protocol Arguments2: Codable, Sendable {
    associatedtype First: Codable & Sendable
    associatedtype Second: Codable & Sendable
    init(_ first: First, _ second: Second)
}

/// A task input with three positional parameters.
public protocol Arguments3: Codable, Sendable {
    associatedtype First: Codable & Sendable
    associatedtype Second: Codable & Sendable
    associatedtype Third: Codable & Sendable
    init(_ first: First, _ second: Second, _ third: Third)
}

func encodeArgument<T: Encodable>(_ value: T) -> JSONValue {
    // Encoding a Codable value the caller just built cannot fail short of a broken Encodable conformance.
    (try? JSONBridge.encode(value)) ?? .null
}

extension TaskName {
    func task(_ args: [JSONValue], immutable: Bool = false) -> CanvasNode {
        .task(TaskSignature(name: name, args: args, immutable: immutable))
    }

    /// A signature from a whole typed input (positional in parameter order, like `client.delay`).
    public func signature(_ input: Input) -> Signature<Output> {
        let object = encodeArgument(input).objectValue ?? [:]
        var args: [JSONValue] = []
        var kwargs = object
        for p in parameters {
            guard let v = object[p] else { break }
            args.append(v)
            kwargs[p] = nil
        }
        return Signature(node: .task(TaskSignature(name: name, args: args, kwargs: kwargs)))
    }
}

extension TaskName where Input == NoArguments {
    /// A signature calling the task with no arguments. After `|` or in a ``chain(_:)`` it is made immutable, so it
    /// ignores the previous result.
    public func s() -> Signature<Output> { Signature(node: task([])) }
    /// Immutable: ignores the previous result when used as a step.
    public func si() -> Signature<Output> { Signature(node: task([], immutable: true)) }
}

extension TaskName where Input: Arguments1 {
    /// A signature with the argument given; the whole call, so after `|` it ignores the previous result.
    public func s(_ first: Input.First) -> Signature<Output> { Signature(node: task([encodeArgument(first)])) }
    /// Immutable, with the argument given: ignores the previous result when used as a step.
    public func si(_ first: Input.First) -> Signature<Output> {
        Signature(node: task([encodeArgument(first)], immutable: true))
    }
    /// A step: the previous result is the argument.
    public func s() -> Step<Input.First, Output> { Step(node: task([])) }

    /// Celery's `task.map(items)`: one worker task that runs this task for every item; results in order.
    public func map(_ items: [Input.First]) -> Signature<[Output]> {
        Signature(
            node: .task(
                TaskSignature(
                    name: "celery.map", kwargs: ["task": task([]).json, "it": .array(items.map(encodeArgument))],
                    immutable: true, subtaskType: "xmap")))
    }
}

extension TaskName where Input: Arguments2 {
    /// A signature with both arguments given; the whole call, so after `|` it ignores the previous result.
    public func s(_ first: Input.First, _ second: Input.Second) -> Signature<Output> {
        Signature(node: task([encodeArgument(first), encodeArgument(second)]))
    }
    /// Immutable, with both arguments given: ignores the previous result when used as a step.
    public func si(_ first: Input.First, _ second: Input.Second) -> Signature<Output> {
        Signature(node: task([encodeArgument(first), encodeArgument(second)], immutable: true))
    }
    /// A step: the previous result is the first argument, `second` the second.
    public func s(_ second: Input.Second) -> Step<Input.First, Output> { Step(node: task([encodeArgument(second)])) }

    /// Celery's `task.starmap(pairs)`: one worker task running this task for every pair.
    public func starmap(_ items: [(Input.First, Input.Second)]) -> Signature<[Output]> {
        Signature(
            node: .task(
                TaskSignature(
                    name: "celery.starmap",
                    kwargs: [
                        "task": task([]).json,
                        "it": .array(items.map { .array([encodeArgument($0.0), encodeArgument($0.1)]) }),
                    ],
                    immutable: true, subtaskType: "xstarmap")))
    }

    /// Celery's `task.chunks(pairs, n)`: a group of starmap tasks over slices of `n` pairs.
    public func chunks(_ items: [(Input.First, Input.Second)], size: Int) -> Signature<[[Output]]> {
        Signature(
            node: CanvasNode.chunks(
                task: task([]).json, items: items.map { .array([encodeArgument($0.0), encodeArgument($0.1)]) },
                size: max(1, size), options: [:]))
    }
}

extension TaskName where Input: Arguments3 {
    /// A signature with all three arguments given; the whole call, so after `|` it ignores the previous result.
    public func s(_ first: Input.First, _ second: Input.Second, _ third: Input.Third) -> Signature<Output> {
        Signature(node: task([encodeArgument(first), encodeArgument(second), encodeArgument(third)]))
    }
    /// Immutable, with all three arguments given: ignores the previous result when used as a step.
    public func si(_ first: Input.First, _ second: Input.Second, _ third: Input.Third) -> Signature<Output> {
        Signature(node: task([encodeArgument(first), encodeArgument(second), encodeArgument(third)], immutable: true))
    }
    /// A step: the previous result is the first argument, `second` and `third` the others.
    public func s(_ second: Input.Second, _ third: Input.Third) -> Step<Input.First, Output> {
        Step(node: task([encodeArgument(second), encodeArgument(third)]))
    }
}

// MARK: - Options

extension Signature {
    func with(_ key: String, _ value: JSONValue) -> Self {
        var copy = self
        copy.node.options[key] = value
        return copy
    }

    /// Sends the entry task(s) to this queue.
    public func queue(_ name: String) -> Self { with("queue", .string(name)) }
    /// Message priority, 0–255 (higher first, up to the queue's `x-max-priority`); Celery's `priority` option.
    public func priority(_ value: Int) -> Self { with("priority", .int(Int64(value))) }
    /// Delays the entry task(s) by `seconds` from when the canvas is applied (the message's `eta`).
    public func countdown(_ seconds: Double) -> Self { with("countdown", .double(seconds)) }
    /// The entry task(s) are revoked instead of run once `seconds` have passed since the canvas was applied.
    public func expires(in seconds: Double) -> Self { with("expires", .double(seconds)) }
    /// Soft and hard time limits in seconds for the entry task(s); nil leaves a limit to the task's own option.
    public func timeLimit(soft: Double? = nil, hard: Double? = nil) -> Self {
        var copy = self
        if let soft { copy = copy.with("soft_time_limit", .double(soft)) }
        if let hard { copy = copy.with("time_limit", .double(hard)) }
        return copy
    }
    /// Runs `callback` with this task's result when it succeeds (Celery's `link`).
    public func link<B>(_ callback: Step<Output, B>) -> Self { appending("link", callback.node) }
    /// Runs `errback` with the failed task's id when this task fails (Celery's `link_error`, one-argument form).
    public func linkError<B>(_ errback: Step<String, B>) -> Self { appending("link_error", errback.node) }

    private func appending(_ key: String, _ node: CanvasNode) -> Self {
        var copy = self
        // On a chain, callbacks belong to its last step (where the chain's result is produced).
        copy.node = Self.appending(key, node.json, to: copy.node)
        return copy
    }

    private static func appending(_ key: String, _ value: JSONValue, to node: CanvasNode) -> CanvasNode {
        switch node {
        case .chain(var steps, let options) where !steps.isEmpty:
            steps[steps.count - 1] = appending(key, value, to: steps[steps.count - 1])
            return .chain(steps, options: options)
        case .chord(let header, let body, let options):
            return .chord(header: header, body: appending(key, value, to: body), options: options)
        default:
            var copy = node
            copy.options[key] = .array((copy.options[key]?.arrayValue ?? []) + [value])
            return copy
        }
    }
}
