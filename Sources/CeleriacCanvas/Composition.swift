// swift-format-ignore-file: AmbiguousTrailingClosureOverload
// `group { … }` builds a group of signatures and `group(steps:) { … }` a group of steps: the builders' element
// types differ, so the compiler always knows which one a trailing closure means.

import CeleriacCore

// MARK: - Chains

/// `a | b`: run `b` with `a`'s result as its first argument (Celery's chain operator).
public func | <A, B>(lhs: Signature<A>, rhs: Step<A, B>) -> Signature<B> {
    Signature(node: .chain(steps(lhs.node) + steps(rhs.node), options: [:]))
}

/// `a | b.si(…)`: run `b` after `a`, ignoring `a`'s result (the right side is made immutable).
public func | <A, B>(lhs: Signature<A>, rhs: Signature<B>) -> Signature<B> {
    Signature(node: .chain(steps(lhs.node) + steps(immutable(rhs.node)), options: [:]))
}

/// Two steps composed into one.
public func | <A, B, C>(lhs: Step<A, B>, rhs: Step<B, C>) -> Step<A, C> {
    Step(node: .chain(steps(lhs.node) + steps(rhs.node), options: [:]))
}

private func steps(_ node: CanvasNode) -> [CanvasNode] {
    if case .chain(let s, let options) = node, options.isEmpty { return s }
    return [node]
}

private func immutable(_ node: CanvasNode) -> CanvasNode {
    switch node {
    case .task(var t): t.immutable = true; return .task(t)
    case .chain(var s, let o) where !s.isEmpty: s[0] = immutable(s[0]); return .chain(s, options: o)
    case .group(let m, let o): return .group(m.map(immutable), options: o)
    case .chord(let h, let b, let o): return .chord(header: h.map(immutable), body: b, options: o)
    default: return node
    }
}

/// Builds a chain from a list of steps, type-checked pairwise:
///
/// ```swift
/// chain {
///     DemoTasks.add.s(2, 2)   // Signature<Int>
///     DemoTasks.mul.s(4)      // Step<Int, Int>
///     DemoTasks.xsum.s()      // Step<[Int], Int>: does not compile after an Int
/// }
/// ```
@resultBuilder
public enum ChainBuilder {
    /// The chain starts with a complete signature.
    public static func buildPartialBlock<O>(first: Signature<O>) -> Signature<O> { first }
    /// A step after the chain so far: it takes the chain's result as its first argument.
    public static func buildPartialBlock<A, B>(accumulated: Signature<A>, next: Step<A, B>) -> Signature<B> {
        accumulated | next
    }
    /// A complete signature after the chain so far: it runs next, ignoring the result (made immutable).
    public static func buildPartialBlock<A, B>(accumulated: Signature<A>, next: Signature<B>) -> Signature<B> {
        accumulated | next
    }
}

/// A chain built from a list: a signature, then steps (or immutable signatures) each fed the previous result.
/// Celery's `chain(a, b, c)`.
public func chain<O>(@ChainBuilder _ build: () -> Signature<O>) -> Signature<O> { build() }

/// A chain of steps, each taking the previous result: the building block for a step made of steps.
@resultBuilder
public enum StepChainBuilder {
    /// The chain starts with a step.
    public static func buildPartialBlock<A, B>(first: Step<A, B>) -> Step<A, B> { first }
    /// A step after the chain so far, fed its result; the output types must match.
    public static func buildPartialBlock<A, B, C>(accumulated: Step<A, B>, next: Step<B, C>) -> Step<A, C> {
        accumulated | next
    }
}

/// A step made of steps, built from a list: the first gets the previous result, each next one the result before it.
public func chainStep<A, B>(@StepChainBuilder _ build: () -> Step<A, B>) -> Step<A, B> { build() }

// MARK: - Groups

/// Collects group members, with `for` loops and `if`/`else`.
@resultBuilder
public enum GroupBuilder<Element> {
    /// One member.
    public static func buildExpression(_ element: Element) -> [Element] { [element] }
    /// Several members at once, e.g. built with `map`.
    public static func buildExpression(_ elements: [Element]) -> [Element] { elements }
    /// All members, in the order written.
    public static func buildBlock(_ parts: [Element]...) -> [Element] { parts.flatMap { $0 } }
    /// The members a `for` loop produced, in loop order.
    public static func buildArray(_ parts: [[Element]]) -> [Element] { parts.flatMap { $0 } }
    /// The members of an `if` without `else`: none when the condition is false.
    public static func buildOptional(_ part: [Element]?) -> [Element] { part ?? [] }
    /// The members of the `if` branch.
    public static func buildEither(first: [Element]) -> [Element] { first }
    /// The members of the `else` branch.
    public static func buildEither(second: [Element]) -> [Element] { second }
}

/// Members run in parallel; the result is their results in member order.
public func group<O>(@GroupBuilder<Signature<O>> _ build: () -> [Signature<O>]) -> Signature<[O]> { group(build()) }

/// Members run in parallel; the result is their results in member order. Celery's `group([...])`.
public func group<O>(_ members: [Signature<O>]) -> Signature<[O]> {
    Signature(node: .group(members.map(\.node), options: [:]))
}

/// A group of steps: each member gets the previous result as its first argument.
public func group<I, O>(@GroupBuilder<Step<I, O>> steps build: () -> [Step<I, O>]) -> Step<I, [O]> {
    Step(node: .group(build().map(\.node), options: [:]))
}

// MARK: - Chords

/// A header group and a body that gets the header's results in header order. A failing member fails the body
/// with `ChordError` naming it; with a `deadline`, an incomplete header fails the body the same way.
public func chord<O, B>(_ header: Signature<[O]>, _ body: Step<[O], B>, deadline: Duration? = nil) -> Signature<B> {
    Signature(node: chordNode(header.node, body.node, policy: .failBody, deadline: deadline))
}

/// A chord whose header members are listed in a ``GroupBuilder`` (`for` loops and `if` allowed); otherwise as
/// `chord(_:_:deadline:)`.
public func chord<O, B>(
    deadline: Duration? = nil, @GroupBuilder<Signature<O>> header: () -> [Signature<O>], body: Step<[O], B>
) -> Signature<B> {
    chord(group(header()), body, deadline: deadline)
}

/// A chord used as a step: every header member gets the previous result as its first argument.
public func chord<I, O, B>(_ header: Step<I, [O]>, _ body: Step<[O], B>, deadline: Duration? = nil) -> Step<I, B> {
    Step(node: chordNode(header.node, body.node, policy: .failBody, deadline: deadline))
}

/// A chord whose body runs whatever happens, with each member's result or error (``ChordPartOutcome``).
public func chord<O, B>(
    collectingErrors header: Signature<[O]>, _ body: Step<[ChordPartOutcome<O>], B>, deadline: Duration? = nil
) -> Signature<B> {
    Signature(node: chordNode(header.node, body.node, policy: .collectErrors, deadline: deadline))
}

func chordNode(_ header: CanvasNode, _ body: CanvasNode, policy: ChordFailurePolicy, deadline: Duration?) -> CanvasNode
{
    let members: [CanvasNode]
    var options: JSONObject = [:]
    if case .group(let m, let o) = header { members = m; options = o } else { members = [header] }
    options["chord_policy"] = .string(policy.rawValue)
    if let deadline {
        let c = deadline.components
        options["deadline"] = .double(Double(c.seconds) + Double(c.attoseconds) / 1e18)
    }
    return .chord(header: members, body: body, options: options)
}

/// One header member's outcome, as a chord created with `chord(collectingErrors:_:)` passes it to its body.
/// On the wire: `{"status": "SUCCESS", "result": …}` or `{"status": "FAILURE", "task_id", "exc_type", "exc_message", "exc_module"}`.
public enum ChordPartOutcome<Value: Codable & Sendable>: Codable, Sendable {
    /// The member returned this value.
    case success(Value)
    /// The member failed: its task id, exception type (e.g. `ValueError`) and exception arguments.
    case failure(taskID: String, type: String, message: [JSONValue])

    enum CodingKeys: String, CodingKey {
        case status, result
        case taskID = "task_id"
        case excType = "exc_type"
        case excMessage = "exc_message"
    }

    /// Reads `{"status", "result"}` or `{"status", "task_id", "exc_type", "exc_message"}`; anything but `SUCCESS` is a
    /// failure, with `Exception` as the type when none is given.
    ///
    /// - Throws: `DecodingError` when `status` is missing or a success's `result` does not decode as `Value`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if try c.decode(String.self, forKey: .status) == "SUCCESS" {
            self = .success(try c.decode(Value.self, forKey: .result))
        } else {
            self = .failure(
                taskID: try c.decodeIfPresent(String.self, forKey: .taskID) ?? "",
                type: try c.decodeIfPresent(String.self, forKey: .excType) ?? "Exception",
                message: try c.decodeIfPresent([JSONValue].self, forKey: .excMessage) ?? [])
        }
    }

    /// Writes the same shape the join sends to a chord body (without `exc_module`).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .success(let v):
            try c.encode("SUCCESS", forKey: .status)
            try c.encode(v, forKey: .result)
        case .failure(let id, let type, let message):
            try c.encode("FAILURE", forKey: .status)
            try c.encode(id, forKey: .taskID)
            try c.encode(type, forKey: .excType)
            try c.encode(message, forKey: .excMessage)
        }
    }
}
