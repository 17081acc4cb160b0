import CeleriacCore

/// Prepares a canvas for sending: assigns every task its id up front (as Celery's `freeze`), sets the reply queue,
/// tags group members and the last task of every chord header member, and upgrades `group | next` to a chord.
///
/// After freezing, the tree holds everything the workers need: nothing about the canvas lives in the client.
public struct CanvasFreezer: Sendable {
    /// Queue every task's result is sent to (`reply_to`, the client's `rpc://` reply queue); nil sends none.
    public var replyTo: String?
    /// The queue join tasks go to when the chord body names none.
    public var defaultQueue: String
    /// How long an abandoned chord's join queue lives unused (`x-expires`).
    public var chordExpiry: Duration
    /// Chord join queues are quorum queues (clients and workers configured for a RabbitMQ cluster).
    public var quorumJoinQueues: Bool

    /// A freezer for a client whose reply queue is `replyTo`. By default chord join queues live a day unused (at least
    /// an hour past a chord's deadline) and are classic queues.
    public init(
        replyTo: String?, defaultQueue: String, chordExpiry: Duration = .seconds(86_400), quorumJoinQueues: Bool = false
    ) {
        self.replyTo = replyTo
        self.defaultQueue = defaultQueue
        self.chordExpiry = chordExpiry
        self.quorumJoinQueues = quorumJoinQueues
    }

    enum Tag {
        case group(id: String, index: Int)
        case chord(id: String, index: Int, body: JSONValue)
    }

    /// The frozen copy of `node`: every task has a `task_id` (kept when already set) and `reply_to`, group and chord
    /// members carry their `group_id`/`group_index`, chord header members carry the body as `chord`, and every chord
    /// body carries its ``ChordInfo``.
    public func freeze(_ node: CanvasNode) -> CanvasNode { freeze(node, tag: nil) }

    func freeze(_ node: CanvasNode, tag: Tag?) -> CanvasNode {
        switch node {
        case .task(var t):
            if t.options["task_id"]?.stringValue == nil { t.options["task_id"] = .string(TaskMessage.newID()) }
            if t.options["reply_to"] == nil, let replyTo { t.options["reply_to"] = .string(replyTo) }
            // Callbacks get their ids up front too, so their results can be awaited like any other.
            for key in ["link", "link_error"] {
                guard let callbacks = t.options[key]?.arrayValue else { continue }
                t.options[key] = .array(
                    callbacks.map { json in
                        (try? CanvasNode(json: json)).map { freeze($0, tag: nil).json } ?? json
                    })
            }
            switch tag {
            case .group(let id, let index)?:
                t.options["group_id"] = .string(id)
                t.options["group_index"] = .int(Int64(index))
            case .chord(let id, let index, let body)?:
                t.options["group_id"] = .string(id)
                t.options["group_index"] = .int(Int64(index))
                t.options["chord"] = body
            case nil:
                break
            }
            return .task(t)
        case .chain(let steps, let options):
            let normalized = Self.normalize(steps)
            if normalized.count == 1 { return freeze(normalized[0], tag: tag) }
            let frozen = normalized.enumerated().map { i, step in
                freeze(step, tag: i == normalized.count - 1 ? tag : nil)
            }
            return .chain(frozen, options: options)
        case .group(let members, var options):
            if case .chord? = tag {
                // A group whose results one chord member must deliver as a unit: join it first (gather).
                return freeze(
                    .chord(
                        header: members, body: .task(TaskSignature(name: ChordInfo.gatherTaskName)), options: options),
                    tag: tag)
            }
            let id = options["group_id"]?.stringValue ?? TaskMessage.newID()
            options["group_id"] = .string(id)
            return .group(
                members.enumerated().map { i, m in freeze(m, tag: .group(id: id, index: i)) }, options: options)
        case .chord(let header, let body, var options):
            let id = options["group_id"]?.stringValue ?? TaskMessage.newID()
            options["group_id"] = .string(id)
            var frozenBody = freeze(body, tag: tag)
            let info = ChordInfo(
                id: id, size: header.count,
                policy: options["chord_policy"]?.stringValue.flatMap(ChordFailurePolicy.init(rawValue:)) ?? .failBody,
                expiresMilliseconds: Int(
                    max(chordExpiry, .seconds(options["deadline"]?.doubleValue ?? 0) + .seconds(3600)).components
                        .seconds * 1000),
                queue: Self.firstQueue(of: frozenBody) ?? defaultQueue,
                deadline: options["deadline"]?.doubleValue, quorum: quorumJoinQueues)
            frozenBody.options[ChordInfo.optionKey] = info.json
            let bodyJSON = frozenBody.json
            let frozenHeader = header.enumerated().map { i, m in
                freeze(m, tag: .chord(id: id, index: i, body: bodyJSON))
            }
            return .chord(header: frozenHeader, body: frozenBody, options: options)
        }
    }

    /// Flattens nested chains and turns `group | rest` into `chord(group, rest)` and `chord | rest` into a chord
    /// whose body is `body | rest`, as Celery does: a group followed by a step needs a join.
    public static func normalize(_ steps: [CanvasNode]) -> [CanvasNode] {
        var flat: [CanvasNode] = []
        for step in steps {
            if case .chain(let inner, _) = step { flat += normalize(inner) } else { flat.append(step) }
        }
        var out: [CanvasNode] = []
        for (i, step) in flat.enumerated() {
            let rest = Array(flat[(i + 1)...])
            if !rest.isEmpty {
                switch step {
                case .group(let members, let options):
                    out.append(.chord(header: members, body: chain(rest), options: options))
                    return out
                case .chord(let header, let body, let options):
                    out.append(.chord(header: header, body: chain([body] + rest), options: options))
                    return out
                default:
                    break
                }
            }
            out.append(step)
        }
        return out
    }

    static func chain(_ steps: [CanvasNode]) -> CanvasNode { steps.count == 1 ? steps[0] : .chain(steps, options: [:]) }

    static func firstQueue(of node: CanvasNode) -> String? {
        switch node {
        case .task(let t): t.options["queue"]?.stringValue
        case .chain(let s, _): s.first.flatMap(firstQueue(of:))
        case .group(let m, _): m.first.flatMap(firstQueue(of:))
        case .chord(let h, let b, _): h.first.flatMap(firstQueue(of:)) ?? firstQueue(of: b)
        }
    }
}

/// Where a frozen canvas's results will be: one task id, or a group of shapes in member order.
public indirect enum ResultShape: Sendable, Equatable {
    /// A single task's result: its id and name.
    case task(id: String, name: String)
    /// A group's results, one shape per member in member order, under the group's id.
    case group(id: String, members: [ResultShape])

    /// The shape of a frozen canvas: a chain's is its last step's, a chord's is its body's. Ids come from the frozen
    /// `task_id`/`group_id` options (empty when the node was not frozen).
    public init(of frozen: CanvasNode) {
        switch frozen {
        case .task(let t):
            self = .task(id: t.options["task_id"]?.stringValue ?? "", name: t.name)
        case .chain(let steps, _):
            self = steps.last.map(ResultShape.init(of:)) ?? .group(id: "", members: [])
        case .group(let members, let options):
            self = .group(id: options["group_id"]?.stringValue ?? "", members: members.map(ResultShape.init(of:)))
        case .chord(_, let body, _):
            self = ResultShape(of: body)
        }
    }

    /// Every task id whose result makes up this shape.
    public var taskIDs: [String] {
        switch self {
        case .task(let id, _): [id]
        case .group(_, let members): members.flatMap(\.taskIDs)
        }
    }
}
