import CeleriacBroker
import CeleriacCanvas
import CeleriacCore
import FoundationEssentials

extension CeleriacClient {
    /// Most task messages of a canvas in one confirmed publish call.
    static let publishBatch = 5_000

    /// Sends a canvas (task, chain, group, chord, nested to any depth). Every id is assigned before anything is
    /// published; chord join queues are declared first; all messages are confirmed by the broker before this returns.
    ///
    /// ```swift
    /// let result = try await client.apply(DemoTasks.add.s(2, 2) | DemoTasks.mul.s(4))
    /// let sixteen = try await result.get()
    /// ```
    public func apply<Output>(_ signature: Signature<Output>) async throws -> CanvasResult<Output> {
        let frozen = CanvasFreezer(
            replyTo: configuration.receiveResults ? replyQueue : nil, defaultQueue: configuration.defaultQueue,
            quorumJoinQueues: configuration.queueType == .quorum
        )
        .freeze(signature.node)
        let plan = CanvasPlanner(defaultQueue: configuration.defaultQueue).plan(frozen, now: configuration.clock.now)
        try await publish(plan)
        return CanvasResult(shape: ResultShape(of: frozen), client: self, chordIDs: Self.chordIDs(in: frozen))
    }

    static func chordIDs(in node: CanvasNode) -> [String] {
        switch node {
        case .task: []
        case .chain(let nodes, _), .group(let nodes, _): nodes.flatMap(chordIDs(in:))
        case .chord(let header, let body, let options):
            [options["group_id"]?.stringValue].compactMap { $0 } + header.flatMap(chordIDs(in:)) + chordIDs(in: body)
        }
    }

    /// Publishes a plan: join queues, then every message (with the delay topology for ETAs ≥ 1 s), confirmed.
    public func publish(_ plan: CanvasPlan) async throws {
        var plan = plan
        let sends = startSends(&plan)
        for chord in plan.chords {
            do {
                try await publisher.declare(ChordQueues.joinQueue(chord), recreateAfterReconnect: false)
            } catch {
                throw CeleriacError.broker(
                    operation: "declare chord join queue '\(chord.joinQueue)'", underlying: error.description)
            }
        }
        var outgoing: [OutgoingMessage] = []
        let now = configuration.clock.now
        for item in plan.messages {
            try await ensureQueue(item.queue)
            if let eta = item.message.eta, Topology.delaySeconds(until: eta, from: now) >= 1 {
                try await ensureDelayTopology(queue: item.queue, routingKey: item.queue)
                let seconds = Topology.delaySeconds(until: eta, from: now)
                outgoing.append(
                    TaskCodec.encode(
                        item.message, routingKey: Topology.delayRoutingKey(seconds: seconds, routingKey: item.queue),
                        exchange: Topology.delayLevel(Topology.delayLevels - 1), now: now, form: form(of: item.queue)))
            } else {
                outgoing.append(
                    TaskCodec.encode(item.message, routingKey: item.queue, now: now, form: form(of: item.queue)))
            }
        }
        // Batches bound the memory of one publish call; each waits for its confirms before the next goes out, so a
        // batch is large (a group of 1 000 is one wait, as a raw batch publish is: two batches of 500 took 1.3× its
        // time).
        try await sends.around {
            for start in stride(from: 0, to: outgoing.count, by: Self.publishBatch) {
                try await publishWithRetry(Array(outgoing[start..<min(start + Self.publishBatch, outgoing.count)]))
            }
        }
    }
}

/// Queue specs of the chord join (used by clients and workers alike, so both declare the same arguments).
public enum ChordQueues {
    /// The durable per-chord queue collecting header outcomes; `x-expires` removes it when a chord is abandoned.
    public static func joinQueue(_ info: ChordInfo) -> QueueSpec {
        let queue = QueueSpec(info.joinQueue, durable: true).expires(milliseconds: info.expiresMilliseconds)
        return info.quorum ? queue.quorum() : queue
    }

    /// The joiner's lock: exclusive to one connection, so it disappears the moment that joiner's connection dies.
    public static func lockQueue(_ info: ChordInfo) -> QueueSpec {
        QueueSpec(info.lockQueue, durable: false, exclusive: true, autoDelete: true)
    }
}

/// The result of a canvas: one task's (task, chain, chord) or a group's (in member order).
public struct CanvasResult<Output: Codable & Sendable>: Sendable {
    /// The task ids this result is made of, nested as the canvas' groups are.
    public let shape: ResultShape
    let client: CeleriacClient
    /// Every chord of the canvas (its join queue is `celeriac.chord.<id>` while it is open).
    public var chordIDs: [String] = []

    init(shape: ResultShape, client: CeleriacClient, chordIDs: [String] = []) {
        self.shape = shape
        self.client = client
        self.chordIDs = chordIDs
    }

    /// The id users look up: the last task of a chain, the body of a chord, the group id of a group.
    public var id: String {
        switch shape {
        case .task(let id, _): id
        case .group(let id, _): id
        }
    }

    /// A group's member results (nil for a single task/chain/chord).
    public var members: [CanvasResult<JSONValue>]? {
        guard case .group(_, let m) = shape else { return nil }
        return m.map { CanvasResult<JSONValue>(shape: $0, client: client) }
    }

    /// How many of the tasks making up this result have finished (Celery's `completed_count` for groups).
    public func completedCount() async -> Int {
        var n = 0
        for id in shape.taskIDs where await client.state(of: id)?.status.isReady == true { n += 1 }
        return n
    }

    /// Waits for every result and decodes them as `Output` (a group's as a list in member order).
    ///
    /// - Throws: the first failure met in member order (`CeleriacError.taskFailed(name:id:failure:)`, e.g. a
    ///   `ChordError`), or `CeleriacError.resultTimeout(id:after:)` naming the id still missing.
    public func get(timeout: Duration = .seconds(60)) async throws -> Output {
        let deadline = ContinuousClock.now + timeout
        let json = try await value(of: shape, deadline: deadline)
        return try JSONBridge.decode(Output.self, from: json)
    }

    private func value(of shape: ResultShape, deadline: ContinuousClock.Instant) async throws -> JSONValue {
        switch shape {
        case .task(let id, let name):
            return try await client.result(of: id, name: name, timeout: max(.zero, deadline - .now))
        case .group(_, let members):
            var out: [JSONValue] = []
            out.reserveCapacity(members.count)
            for m in members { out.append(try await value(of: m, deadline: deadline)) }
            return .array(out)
        }
    }
}
