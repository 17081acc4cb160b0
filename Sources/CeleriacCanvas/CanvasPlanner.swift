import CeleriacCore
import FoundationEssentials

/// The messages that applying a (frozen) canvas node publishes now, and the chord join queues that must exist
/// before them. Pure: clients and workers both publish a plan with their own connection.
public struct CanvasPlan: Sendable {
    /// One message of a plan and the queue to publish it to.
    public struct Publish: Sendable {
        /// The task message, ids and `embed` filled in.
        public var message: TaskMessage
        /// Queue (routing key on the default exchange) to publish it to: the signature's `queue` option, else the
        /// planner's ``CanvasPlanner/defaultQueue``.
        public var queue: String
    }

    /// The messages to publish, in order.
    public var messages: [Publish] = []
    /// Join queues to declare (durable, `x-expires`) before any message of the plan is published.
    public var chords: [ChordInfo] = []

    /// An empty plan.
    public init() {}
}

/// Turns a canvas node into the messages that start it (celery-wire.md §5): a chain publishes its first step with
/// the rest in `embed.chain` (reversed); a group publishes every member; a chord declares its join queue and
/// publishes its header members (and, with a deadline, a delayed join task).
public struct CanvasPlanner: Sendable {
    /// Queue for signatures that name none in their `queue` option, e.g. `celery`.
    public var defaultQueue: String

    /// A planner routing unqueued signatures to `defaultQueue`.
    public init(defaultQueue: String) {
        self.defaultQueue = defaultQueue
    }

    /// The messages and chord joins that start `node`, each frozen with its ids and routed to its queue.
    ///
    /// - Parameters:
    ///   - node: the canvas to start (a task, chain, group or chord).
    ///   - previous: the parent's result, prepended to the args of every mutable entry task.
    ///   - continuation: the steps that follow (a chain being continued by a worker).
    ///   - parent: the finished task this follows, for `parent_id`/`root_id`.
    ///   - now: the time countdowns and ETAs count from (the caller's clock).
    public func plan(
        _ node: CanvasNode, previous: JSONValue? = nil, continuation: [CanvasNode] = [],
        parent: TaskMessage? = nil, now: Date = Date()
    ) -> CanvasPlan {
        var plan = CanvasPlan()
        add(node, previous: previous, continuation: continuation, parent: parent, now: now, to: &plan)
        return plan
    }

    func add(
        _ node: CanvasNode, previous: JSONValue?, continuation: [CanvasNode], parent: TaskMessage?, now: Date,
        to plan: inout CanvasPlan
    ) {
        switch node {
        case .task(let t):
            var message = Self.message(from: t, previous: previous, parent: parent, now: now)
            if !continuation.isEmpty { message.embed.chain = continuation.reversed().map(\.json) }
            plan.messages.append(.init(message: message, queue: t.options["queue"]?.stringValue ?? defaultQueue))
        case .chain(let steps, _):
            let steps = CanvasFreezer.normalize(steps + continuation)
            guard let first = steps.first else { return }
            add(first, previous: previous, continuation: Array(steps.dropFirst()), parent: parent, now: now, to: &plan)
        case .group(let members, let options):
            if !continuation.isEmpty {
                // Only reachable with an unfrozen tree (freezing upgrades `group | rest` to a chord).
                add(
                    .chord(header: members, body: CanvasFreezer.chain(continuation), options: options),
                    previous: previous, continuation: [], parent: parent, now: now, to: &plan)
                return
            }
            for member in members {
                add(member, previous: previous, continuation: [], parent: parent, now: now, to: &plan)
            }
        case .chord(let header, let body, _):
            guard let info = ChordInfo(json: body.options[ChordInfo.optionKey]) else {
                // Unfrozen chord (e.g. from a client that does not know Celeriac's join): cannot join it.
                plan.messages.append(.init(message: Self.unjoinableChord(node, parent: parent), queue: defaultQueue))
                return
            }
            if header.isEmpty {
                add(body, previous: .array([]), continuation: continuation, parent: parent, now: now, to: &plan)
                return
            }
            plan.chords.append(info)
            if let deadline = info.deadline {
                var join = ChordJoin.joinMessage(info: info, body: body.json, reason: .deadline, parent: parent)
                join.eta = now.addingTimeInterval(deadline)
                plan.messages.append(.init(message: join, queue: info.queue))
            }
            for member in header {
                add(member, previous: previous, continuation: [], parent: parent, now: now, to: &plan)
            }
        }
    }

    /// A task message from a signature (celery-wire.md §5.1): the previous result first unless immutable, ids and
    /// routing from the options.
    public static func message(from t: TaskSignature, previous: JSONValue?, parent: TaskMessage?, now: Date = Date())
        -> TaskMessage
    {
        let options = t.options
        var args = t.args
        if let previous, !t.immutable { args.insert(previous, at: 0) }
        var m = TaskMessage(
            id: options["task_id"]?.stringValue ?? TaskMessage.newID(), name: t.name, args: args, kwargs: t.kwargs)
        if let parent {
            m.rootID = parent.rootID ?? parent.id
            m.parentID = parent.id
        } else {
            m.rootID = options["root_id"]?.stringValue ?? m.id
        }
        m.replyTo = options["reply_to"]?.stringValue ?? parent?.replyTo
        m.groupID = options["group_id"]?.stringValue
        m.groupIndex = options["group_index"]?.intValue.map { Int($0) }
        if let p = options["priority"]?.intValue { m.priority = UInt8(clamping: p) }
        if let c = options["countdown"]?.doubleValue { m.eta = now.addingTimeInterval(c) }
        if let eta = options["eta"]?.stringValue, let date = ISOTime.parse(eta) { m.eta = date }
        if let e = options["expires"] {
            if let seconds = e.doubleValue {
                m.expires = now.addingTimeInterval(seconds)
            } else if let s = e.stringValue {
                m.expires = ISOTime.parse(s)
            }
        }
        if let hard = options["time_limit"]?.doubleValue { m.timeLimit.hard = hard }
        if let soft = options["soft_time_limit"]?.doubleValue { m.timeLimit.soft = soft }
        if let ignore = options["ignore_result"]?.boolValue { m.ignoreResult = ignore }
        if let link = options["link"], !link.isNull { m.embed.callbacks = link.arrayValue ?? [link] }
        if let linkError = options["link_error"], !linkError.isNull {
            m.embed.errbacks = linkError.arrayValue ?? [linkError]
        }
        if let chord = options["chord"], !chord.isNull { m.embed.chord = chord }
        if let headers = options["headers"]?.objectValue {
            for (k, v) in headers { m.extraHeaders[k] = v }
        }
        return m
    }

    /// A chord sent without Celeriac's join facts cannot be joined: it becomes a task that fails with that
    /// explanation, so the failure is visible instead of a hang.
    static func unjoinableChord(_ node: CanvasNode, parent: TaskMessage?) -> TaskMessage {
        var m = TaskMessage(
            id: TaskMessage.newID(), name: ChordInfo.joinTaskName, args: [.null, node.json],
            kwargs: ["reason": "unjoinable"])
        m.parentID = parent?.id
        m.rootID = parent?.rootID ?? parent?.id
        m.replyTo = parent?.replyTo
        return m
    }
}

extension ChordJoin {
    /// Why a chord join task was sent; its `reason` keyword argument.
    public enum Reason: String, Sendable {
        /// The last header member saw the join queue complete.
        case complete
        /// The chord's deadline passed: join what is there, fail the body if incomplete.
        case deadline
    }

    /// The task that joins a chord: args `[chord info, body signature]`, kwargs `{"reason": …}`. Any Celeriac worker
    /// consuming `info.queue` runs it; it is idempotent (a second join finds the join queue gone).
    public static func joinMessage(info: ChordInfo, body: JSONValue, reason: Reason, parent: TaskMessage?)
        -> TaskMessage
    {
        var m = TaskMessage(
            id: TaskMessage.newID(), name: ChordInfo.joinTaskName, args: [info.json, body],
            kwargs: ["reason": .string(reason.rawValue)])
        m.parentID = parent?.id
        m.rootID = parent?.rootID ?? parent?.id
        m.ignoreResult = true
        return m
    }
}
