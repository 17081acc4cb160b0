import CeleriacBroker
import CeleriacCanvas
import CeleriacCore
import CeleriacMessaging
import Logging

/// What follows a task in its canvas (README "Canvas"): after a success, the next chain step and the link
/// callbacks; after a failure, the errbacks, the rest of the chain failed visibly, and the chord part; for a task
/// that will now never run, its FAILURE result, so nobody waits forever.
struct CanvasFollowUps: Sendable {
    let publisher: OutcomePublisher
    let chords: ChordJoiner
    let graph: GraphRecorder
    let clock: any CeleriacClock
    /// Where signatures without a queue go: the worker's first queue.
    let planner: CanvasPlanner

    /// After a success: the next chain step (with the result prepended; a group, chord or chain step is applied
    /// whole) and link callbacks. Returns the `children` entries for the result, or nil when the broker could not
    /// take them (the message then stays unacked and is redelivered).
    func afterSuccess(of message: TaskMessage, result: JSONValue, queue: String, log: Logger) async -> [JSONValue]? {
        var plan = CanvasPlan()
        let planner = CanvasPlanner(defaultQueue: queue)
        if var chain = message.embed.chain, let next = chain.popLast() {
            do {
                let node = try CanvasNode(json: next)
                if case .task = node {
                    // A plain task next: the rest of the chain travels on exactly as it came (already in the wire's
                    // order, next step last), as Celery's worker passes it on. Decoding every remaining step into
                    // canvas nodes and encoding it again cost each step time in proportion to the chain's length.
                    var step = planner.plan(node, previous: result, parent: message, now: clock.now)
                    if !chain.isEmpty, !step.messages.isEmpty { step.messages[0].message.embed.chain = chain }
                    plan.messages += step.messages
                } else {
                    // A group or chord next: it may join the rest of the chain as a chord's body, so plan it whole.
                    var rest: [CanvasNode] = []
                    for json in chain.reversed() { rest.append(try CanvasNode(json: json)) }
                    let step = planner.plan(node, previous: result, continuation: rest, parent: message, now: clock.now)
                    plan.messages += step.messages
                    plan.chords += step.chords
                }
            } catch {
                log.error(
                    "chain step is not a valid signature; the chain stops here",
                    metadata: ["error": .string(error.description)])
            }
        }
        for callback in message.embed.callbacks ?? [] {
            guard let node = try? CanvasNode(json: callback) else {
                log.error(
                    "link callback is not a valid signature; skipped",
                    metadata: ["signature": .string(callback.jsonString)])
                continue
            }
            let step = planner.plan(node, previous: result, parent: message, now: clock.now)
            plan.messages += step.messages
            plan.chords += step.chords
        }
        if plan.messages.isEmpty { return [] }
        guard await publisher.publishPlan(plan, what: "follow-ups of \(message.id)") else { return nil }
        return plan.messages.map { .array([.array([.string($0.message.id), .null]), .null]) }
    }

    /// After a failure: each errback as a one-argument task with the failed task's id (the cross-language form).
    func errbacks(after message: TaskMessage, queue: String, log: Logger) async {
        guard let errbacks = message.embed.errbacks, !errbacks.isEmpty else { return }
        let group = TaskMessage.newID()
        var plan = CanvasPlan()
        let planner = CanvasPlanner(defaultQueue: queue)
        for (i, errback) in errbacks.enumerated() {
            guard let node = try? CanvasNode(json: errback) else { continue }
            var step = planner.plan(node, previous: .string(message.id), parent: message, now: clock.now)
            for j in step.messages.indices {
                step.messages[j].message.groupID = group
                step.messages[j].message.groupIndex = i
            }
            plan.messages += step.messages
            plan.chords += step.chords
        }
        if !plan.messages.isEmpty { _ = await publisher.publishPlan(plan, what: "errbacks of \(message.id)") }
    }

    /// Every way a task can end without success (failure, time limit, worker lost, revoked) goes through here: the
    /// rest of its chain fails, and a chord it belongs to gets its failed part. Returns false when the broker could
    /// not take the chord part (the message then stays unacked).
    func afterFailure(of message: TaskMessage, failure: TaskFailure, published: Bool, log: Logger) async -> Bool {
        await failRemainingChain(of: message, failure: failure, log: log)
        guard published, let chord = message.embed.chord else { return published }
        return await chords.reportPart(of: message, outcome: .failure(failure), chord: chord, log: log)
    }

    /// After a failure, the rest of the chain fails too (as Celery marks it), so a chain's result never hangs.
    func failRemainingChain(of message: TaskMessage, failure: TaskFailure, log: Logger) async {
        guard let chain = message.embed.chain, !chain.isEmpty else { return }
        for json in chain.reversed() {
            guard let node = try? CanvasNode(json: json) else { continue }
            await fail(node, failure: failure, parent: message, log: log)
        }
    }

    /// Publishes FAILURE results for every task of a canvas that will now never run (the rest of a failed chain,
    /// the body of a failed chord), and reports failed parts to any chord they belonged to.
    func fail(_ node: CanvasNode, failure: TaskFailure, parent: TaskMessage, log: Logger) async {
        switch node {
        case .task(let t):
            guard let id = t.options["task_id"]?.stringValue else { return }
            let doomed = CanvasPlanner.message(from: t, previous: nil, parent: parent, now: clock.now)
            var result = ResultMessage.failure(id, failure, for: doomed)
            result.parentID = parent.id
            _ = await publisher.publishResult(result, for: doomed)
            await graph.notRun(doomed, failure: failure)
            if let chord = doomed.embed.chord {
                _ = await chords.reportPart(of: doomed, outcome: .failure(failure), chord: chord, log: log)
            }
        case .chain(let steps, _):
            for step in steps { await fail(step, failure: failure, parent: parent, log: log) }
        case .group(let members, _):
            for member in members { await fail(member, failure: failure, parent: parent, log: log) }
        case .chord(_, let body, _):
            await fail(body, failure: failure, parent: parent, log: log)
        }
    }

    /// A failed chord runs the `link_error` callbacks of its body's tasks with the failed body task's id.
    func bodyErrbacks(_ body: CanvasNode, parent: TaskMessage, log: Logger) async {
        switch body {
        case .task(let t):
            guard t.options["link_error"] != nil else { return }
            var doomed = CanvasPlanner.message(from: t, previous: nil, parent: parent, now: clock.now)
            doomed.embed.chain = nil
            await errbacks(after: doomed, queue: planner.defaultQueue, log: log)
        case .chain(let nodes, _), .group(let nodes, _):
            for node in nodes { await bodyErrbacks(node, parent: parent, log: log) }
        case .chord(_, let inner, _):
            await bodyErrbacks(inner, parent: parent, log: log)
        }
    }
}
