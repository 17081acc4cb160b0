import CeleriacBroker
import CeleriacMessaging
import CeleriacCanvas
import CeleriacCore
import FoundationEssentials
import Logging

/// Canvas on the worker side: continuing chains, callbacks, chord parts and the chord join (README "How chords join").
extension Worker {
    var planner: CanvasPlanner { CanvasPlanner(defaultQueue: configuration.queues.first ?? Topology.defaultQueue) }

    /// Declares the plan's chord join queues, then publishes its messages with confirms. False when the broker
    /// could not take them (the caller leaves its message unacked so it is redelivered).
    func publishPlan(_ plan: CanvasPlan, what: String) async -> Bool {
        var plan = plan
        let sends = startSends(&plan)
        for chord in plan.chords {
            do {
                try await publisherConnection.declare(ChordQueues.joinQueue(chord), recreateAfterReconnect: false)
            } catch {
                logger.error("could not declare a chord join queue", metadata: ["chord": .string(chord.id), "error": .string(error.description)])
                return false
            }
        }
        guard !plan.messages.isEmpty else { return true }
        let now = configuration.clock.now
        let outgoing = plan.messages.map { item -> OutgoingMessage in
            if let eta = item.message.eta, Topology.delaySeconds(until: eta, from: now) >= 1 {
                let seconds = Topology.delaySeconds(until: eta, from: now)
                return TaskCodec.encode(item.message, routingKey: Topology.delayRoutingKey(seconds: seconds, routingKey: item.queue),
                                        exchange: Topology.delayLevel(Topology.delayLevels - 1), now: now)
            }
            return TaskCodec.encode(item.message, routingKey: item.queue, now: now)
        }
        let published = await publishConfirmed(outgoing, what: what)
        sends.end(published: published)
        return published
    }

    /// Publishes FAILURE results for every task of a canvas that will now never run (the rest of a failed chain,
    /// the body of a failed chord), and reports failed parts to any chord they belonged to, so nobody waits forever.
    func failCanvas(_ node: CanvasNode, failure: TaskFailure, parent: TaskMessage, log: Logger) async {
        switch node {
        case .task(let t):
            guard let id = t.options["task_id"]?.stringValue else { return }
            let doomed = CanvasPlanner.message(from: t, previous: nil, parent: parent, now: configuration.clock.now)
            var result = ResultMessage.failure(id, failure, for: doomed)
            result.parentID = parent.id
            _ = await publishResult(result, for: doomed)
            await recordGraphNotRun(doomed, failure: failure)
            if let chord = doomed.embed.chord {
                _ = await reportChordPart(of: doomed, outcome: .failure(failure), chord: chord, log: log)
            }
        case .chain(let steps, _):
            for step in steps { await failCanvas(step, failure: failure, parent: parent, log: log) }
        case .group(let members, _):
            for member in members { await failCanvas(member, failure: failure, parent: parent, log: log) }
        case .chord(_, let body, _):
            await failCanvas(body, failure: failure, parent: parent, log: log)
        }
    }

    /// After a failure, the rest of the chain fails too (as Celery marks it), so a chain's result never hangs.
    func failRemainingChain(of message: TaskMessage, failure: TaskFailure, log: Logger) async {
        guard let chain = message.embed.chain, !chain.isEmpty else { return }
        for json in chain.reversed() {
            guard let node = try? CanvasNode(json: json) else { continue }
            await failCanvas(node, failure: failure, parent: message, log: log)
        }
    }

    /// Every way a task can end without success (failure, time limit, worker lost, revoked) goes through here: the
    /// rest of its chain fails, and a chord it belongs to gets its failed part. Returns false when the broker could
    /// not take the chord part (the message then stays unacked).
    func canvasAfterFailure(_ message: TaskMessage, failure: TaskFailure, published: Bool, log: Logger) async -> Bool {
        await failRemainingChain(of: message, failure: failure, log: log)
        guard published, let chord = message.embed.chord else { return published }
        return await reportChordPart(of: message, outcome: .failure(failure), chord: chord, log: log)
    }

    // MARK: - Chord parts

    /// A chord header member finished: store its outcome in the chord's join queue, and if the queue now holds as
    /// many parts as the header has members, ask for the join. Returns false only when the broker could not be
    /// reached (the member's message then stays unacked and is redelivered: a duplicate part is harmless).
    ///
    /// - Parameter leading: a message published in the same confirmed batch, before the part (the member's result).
    func reportChordPart(of message: TaskMessage, outcome: ChordPart.Outcome, chord: JSONValue, log: Logger,
                         with leading: OutgoingMessage? = nil) async -> Bool {
        guard let info = ChordInfo(json: chord["options"]?[ChordInfo.optionKey]) else {
            log.warning("the task belongs to a chord without Celeriac join information (sent by a Celery client with another result backend?); no part reported")
            if let leading { return await publishConfirmed([leading], what: "result of \(message.id)") }
            return true
        }
        let part = ChordPart(index: message.groupIndex ?? -1, taskID: message.id, outcome: outcome)
        let props = BasicProperties(contentType: "application/json", contentEncoding: "utf-8", headers: chordPartTraceHeaders(),
                                    deliveryMode: 2, correlationID: message.id)
        let outgoing = OutgoingMessage(routingKey: info.joinQueue, body: part.json.jsonBytes, properties: props, mandatory: true)
        let batch = [leading, outgoing].compactMap { $0 }
        // Nobody consumes the durable join queue, so RabbitMQ confirms a part only once it is on disk, and the count
        // follows: several ms per member (most of a chord's cost when members waited in their slots).
        return await outsideSlot { await storeChordPart(batch, part: part, info: info, chord: chord, parent: message, log: log) }
    }

    /// Publishes a part (after the member's result, in one confirmed batch), then counts the join queue.
    private func storeChordPart(_ batch: [OutgoingMessage], part: ChordPart, info: ChordInfo, chord: JSONValue,
                                parent message: TaskMessage, log: Logger) async -> Bool {
        do {
            try await publisherConnection.publish(batch)
        } catch where error.code == .unroutable {
            log.warning("chord part arrived after the chord was joined or its join queue expired; dropped", metadata: ["chord": .string(info.id)])
            observer.chordEvent("late_part")
            return true
        } catch {
            // Not confirmed (broker trouble): send both again once it is back (a duplicate result or part is harmless).
            guard await publishConfirmed(batch, what: "chord part of \(message.id)") else { return false }
        }
        log.debug("chord part stored", metadata: ["chord": .string(info.id), "index": .stringConvertible(part.index)])
        return await triggerJoinIfComplete(info, body: chord, parent: message, log: log)
    }

    /// Reads the join queue's ready count; at `size` or more, publishes a join task (idempotent if several do).
    ///
    /// Counts of one chord are coalesced on this worker: while a count is in flight, later members (whose parts
    /// are already confirmed) wait for the next round, which one caller runs for all of them. Every part is thus
    /// counted by a round that started after it was stored, with one broker round trip per round instead of one
    /// per member.
    func triggerJoinIfComplete(_ info: ChordInfo, body: JSONValue, parent: TaskMessage?, log: Logger) async -> Bool {
        let leads = chordCounts.withLock { counts -> Bool in
            if counts[info.id] != nil { return false }
            counts[info.id] = []
            return true
        }
        if !leads {
            let joined: Bool? = await withCheckedContinuation { c in
                let queued = chordCounts.withLock { counts -> Bool in
                    guard counts[info.id] != nil else { return false }
                    counts[info.id]!.append(c)
                    return true
                }
                if !queued { c.resume(returning: nil) }   // the round ended meanwhile: count here
            }
            if let joined { return joined }
            return await triggerJoinIfComplete(info, body: body, parent: parent, log: log)
        }
        var mine: Bool?
        while true {
            // Waiters queued before this round starts are counted by it.
            let waiters = chordCounts.withLock { counts -> [CheckedContinuation<Bool?, Never>] in
                defer { counts[info.id] = [] }
                return counts[info.id] ?? []
            }
            let result = await countAndJoin(info, body: body, parent: parent, log: log)
            if mine == nil { mine = result }
            waiters.forEach { $0.resume(returning: result) }
            let done = chordCounts.withLock { counts -> Bool in
                if counts[info.id]?.isEmpty ?? true {
                    counts[info.id] = nil
                    return true
                }
                return false
            }
            if done { return mine ?? result }
        }
    }

    /// One count of the join queue, and the join task when it is complete.
    private func countAndJoin(_ info: ChordInfo, body: JSONValue, parent: TaskMessage?, log: Logger) async -> Bool {
        let count: UInt32
        do {
            count = try await publisherConnection.inspect(queue: info.joinQueue).messageCount
        } catch where error.replyCode == 404 {
            return true // joined already
        } catch {
            log.error("could not read the chord join queue", metadata: ["chord": .string(info.id), "error": .string(error.description)])
            return false
        }
        guard count >= info.size else { return true }
        var join = ChordJoin.joinMessage(info: info, body: body, reason: .complete, parent: parent)
        let sends = startSend(&join, queue: info.queue)
        let published = await publishConfirmed([TaskCodec.encode(join, routingKey: info.queue)], what: "chord join \(info.id)")
        sends.end(published: published)
        return published
    }

    // MARK: - Built-in tasks

    static let builtinNames: Set<String> = [ChordInfo.joinTaskName, ChordInfo.gatherTaskName, "celery.map", "celery.starmap"]

    /// A placeholder registration for a built-in (its body is ``runBuiltin(_:_:queue:log:)``).
    static func builtinTask(_ name: String) -> RegisteredTask {
        RegisteredTask(name: name, parameters: [], options: TaskOptions()) { _, _ in .null }
    }

    /// Runs a built-in canvas task; the join settles its own delivery.
    func runBuiltin(_ delivery: Delivery, _ message: TaskMessage, queue: String, log: Logger) async {
        let builtin = Self.builtinTask(message.name)
        switch message.name {
        case ChordInfo.joinTaskName:
            guard await joinGate.acquire() else { return } // shutting down: the join task stays unacked, goes back
            await runChordJoin(delivery, message, queue: queue, log: log)
            await joinGate.release()
            return
        case ChordInfo.gatherTaskName:
            await finish(delivery, message, queue: queue, task: builtin, outcome: .success(message.args.first ?? .array([])), seconds: 0, log: log)
        default:
            let outcome = await runMap(message, log: log)
            await finish(delivery, message, queue: queue, task: builtin, outcome: outcome, seconds: 0, log: log)
        }
    }

    /// `celery.map` / `celery.starmap`: the named task run here once per item, results in order.
    func runMap(_ message: TaskMessage, log: Logger) async -> Outcome {
        let star = message.name == "celery.starmap"
        guard let sig = message.kwargs["task"], let name = sig["task"]?.stringValue, let items = message.kwargs["it"]?.arrayValue else {
            return .failure(TaskFailure(type: "TypeError", arguments: [.string("\(message.name) needs kwargs 'task' (a signature) and 'it' (a list)")], module: "builtins"))
        }
        guard let task = registry[name] else {
            return .failure(TaskFailure(type: "NotRegistered", arguments: [.string(name)], module: "celery.exceptions"))
        }
        var results: [JSONValue] = []
        for item in items {
            let args = star ? (item.arrayValue ?? [item]) : [item]
            let each = TaskMessage(id: message.id, name: name, args: (sig["args"]?.arrayValue ?? []) + args, kwargs: sig["kwargs"]?.objectValue ?? [:])
            let context = TaskContext(message: each, logger: log, hostname: configuration.hostname, options: task.options)
            do {
                results.append(try await task.run(each, context))
            } catch {
                return .failure(TaskFailure(error: error))
            }
        }
        return .success(.array(results))
    }

    // MARK: - The join

    /// Joins a chord: exclusive lock queue, read every part, publish the body (or fail it), delete the join queue.
    /// Safe to run twice or concurrently: the lock admits one joiner, and a finished join leaves no queue.
    func runChordJoin(_ delivery: Delivery, _ message: TaskMessage, queue: String, log: Logger) async {
        let reason = message.kwargs["reason"]?.stringValue.flatMap(ChordJoin.Reason.init(rawValue:))
        guard message.args.count == 2, let body = try? CanvasNode(json: message.args[1]) else {
            await deadLetter(delivery, queue: queue, reason: "celeriac.chord_join needs args [chord info, body signature]", label: "invalid")
            return
        }
        guard let info = ChordInfo(json: message.args[0]), let reason else {
            // A chord without Celeriac's join information: fail its body visibly instead of hanging.
            let failure = ChordJoin.chordError("this chord was sent without Celeriac join information (a client that does not freeze chords?); send chords with CeleriacClient.apply")
            if case .chord(_, let chordBody, _) = body { await failCanvas(chordBody, failure: failure, parent: message, log: log) }
            await consumerConnection.ack(delivery.tag)
            return
        }
        var log = log
        log[metadataKey: "chord"] = .string(info.id)

        do {
            try await publisherConnection.declare(ChordQueues.lockQueue(info), recreateAfterReconnect: false)
        } catch where error.replyCode == 405 {
            // Another joiner holds the lock; it re-checks the count after releasing it, so nothing is lost.
            log.debug("another worker is joining this chord")
            await consumerConnection.ack(delivery.tag)
            return
        } catch {
            log.warning("could not take the chord lock; trying again shortly", metadata: ["error": .string(error.description)])
            await retryJoinLater(delivery, message, queue: queue, log: log)
            return
        }

        var parts: [ChordPart] = []
        var links: [JSONValue] = []
        var tags: [DeliveryTag] = []
        var sawMarker = false
        do {
            for d in try await readJoinQueue(info) {
                tags.append(d.tag)
                guard let json = try? JSONValue.parse(d.body) else { continue }
                if json["joined"] != nil { sawMarker = true; continue }
                if let part = ChordPart(json: json) { parts.append(part); links += traceLink(of: d) }
            }
        } catch where error.replyCode == 404 {
            // Joined (or expired) already.
            await releaseLock(info)
            await consumerConnection.ack(delivery.tag)
            return
        } catch {
            log.warning("lost the broker while reading chord parts; trying again shortly", metadata: ["error": .string(error.description)])
            await releaseLock(info)
            await retryJoinLater(delivery, message, queue: queue, log: log)
            return
        }

        switch ChordJoin.decide(parts: parts, info: info, deadlinePassed: reason == .deadline) {
        case .incomplete(let missing):
            if let last = tags.last { _ = await publisherConnection.nack(last, multiple: true, requeue: true) }
            await releaseLock(info)
            log.debug("chord not complete yet", metadata: ["missing": .stringConvertible(missing.count)])
            // A member that counted while this joiner held the parts saw too few; count again now they are back.
            if reason == .complete, !(await triggerJoinIfComplete(info, body: message.args[1], parent: message, log: log)) {
                await retryJoinLater(delivery, message, queue: queue, log: log)
                return
            }
            await consumerConnection.ack(delivery.tag)
        case .runBody(let results):
            if sawMarker {
                log.warning("a previous joiner of this chord died after marking it joined; the body is published again and may run twice (at-least-once)")
                observer.chordEvent("rejoined")
            }
            let marker = OutgoingMessage(routingKey: info.joinQueue, body: JSONValue.object(["joined": .string(message.id)]).jsonBytes,
                                         properties: BasicProperties(contentType: "application/json", deliveryMode: 2))
            guard await publishConfirmed([marker], what: "chord marker"),
                  await publishPlan(linked(planner.plan(body, previous: results, parent: message, now: configuration.clock.now), to: links), what: "chord body \(info.id)") else {
                await releaseLock(info)
                await retryJoinLater(delivery, message, queue: queue, log: log)
                return
            }
            await finishJoin(info, delivery: delivery, log: log)
            observer.chordEvent("joined")
            log.debug("chord joined; body published", metadata: ["size": .stringConvertible(info.size)])
        case .fail(let failure):
            log.error("chord failed", metadata: ["error": .string(failure.description)])
            await failCanvas(body, failure: failure, parent: message, log: log)
            await publishBodyErrbacks(body, parent: message, log: log)
            await finishJoin(info, delivery: delivery, log: log)
            observer.chordEvent(reason == .deadline ? "deadline" : "failed")
        }
    }

    /// Reads every message of the join queue, unacked, on the publisher connection. A consumer whose prefetch
    /// covers the queue takes them in one burst (`basic.get` costs a round trip each); very large chords use
    /// `basic.get`. Only the lock holder reads, so nobody else competes for the messages.
    func readJoinQueue(_ info: ChordInfo) async throws(BrokerError) -> [Delivery] {
        let ready = Int(try await publisherConnection.inspect(queue: info.joinQueue).messageCount)
        guard ready > 0 else { return [] }
        guard ready < 60_000 else {
            var out: [Delivery] = []
            while let d = try await publisherConnection.get(queue: info.joinQueue) { out.append(d) }
            return out
        }
        let connection = publisherConnection
        let consumer = try await connection.consume(queue: info.joinQueue, prefetch: UInt16(ready), tag: "celeriac-join-\(info.id)")
        // Read until the messages that were ready are in, then cancel; whatever else was delivered before the
        // cancel took effect is read too (it ends the stream), so no delivery is left unaccounted for.
        let reader = Task { () -> [Delivery] in
            var out: [Delivery] = []
            var cancelled = false
            for await d in consumer.deliveries {
                out.append(d)
                if out.count >= ready && !cancelled {
                    cancelled = true
                    try? await connection.cancel(consumer)
                }
            }
            return out
        }
        let guardTimer = Task {
            try? await Task.sleep(for: .seconds(30))
            reader.cancel()
        }
        let out = await reader.value
        guardTimer.cancel()
        try? await connection.cancel(consumer)
        guard out.count >= ready else {
            if let last = out.last { _ = await connection.nack(last.tag, multiple: true, requeue: true) }
            throw BrokerError(.timeout, operation: "read chord parts of \(info.id)", reason: "\(out.count) of \(ready) messages arrived in 30 s")
        }
        return out
    }

    /// The join is done: drop the join queue (and with it the parts this joiner holds), the lock, and the join task.
    private func finishJoin(_ info: ChordInfo, delivery: Delivery, log: Logger) async {
        do {
            try await publisherConnection.deleteQueue(info.joinQueue)
        } catch {
            log.warning("could not delete the chord join queue; it expires by itself", metadata: ["error": .string(error.description)])
        }
        await releaseLock(info)
        await consumerConnection.ack(delivery.tag)
    }

    private func releaseLock(_ info: ChordInfo) async {
        _ = try? await publisherConnection.deleteQueue(info.lockQueue)
    }

    /// Puts the join task back with a one-second delay (broker trouble), then acks this delivery.
    private func retryJoinLater(_ delivery: Delivery, _ message: TaskMessage, queue: String, log: Logger) async {
        var again = message
        again.eta = configuration.clock.now.addingTimeInterval(1)
        if await republish(again, queue: queue, log: log) { await consumerConnection.ack(delivery.tag) }
    }

    /// A failed chord runs the `link_error` callbacks of its body's tasks with the failed body task's id.
    private func publishBodyErrbacks(_ body: CanvasNode, parent: TaskMessage, log: Logger) async {
        switch body {
        case .task(let t):
            guard t.options["link_error"] != nil else { return }
            var doomed = CanvasPlanner.message(from: t, previous: nil, parent: parent, now: configuration.clock.now)
            doomed.embed.chain = nil
            await publishErrbacks(after: doomed, queue: planner.defaultQueue, log: log)
        case .chain(let nodes, _), .group(let nodes, _):
            for node in nodes { await publishBodyErrbacks(node, parent: parent, log: log) }
        case .chord(_, let inner, _):
            await publishBodyErrbacks(inner, parent: parent, log: log)
        }
    }
}
