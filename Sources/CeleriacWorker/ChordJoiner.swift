import CeleriacBroker
import CeleriacCanvas
import CeleriacCore
import CeleriacMessaging
import CeleriacTracing
import Logging
import Synchronization

/// The worker's side of a chord (README "How chords join"): a header member stores its part in the chord's
/// durable join queue and counts it; when the count is complete, a join task is published, and whichever worker
/// runs it takes the chord's exclusive lock queue, reads every part, and publishes the body (or fails it).
///
/// Safe to run twice or concurrently: the lock admits one joiner, a finished join leaves no queue, and a duplicate
/// part is harmless.
final class ChordJoiner: Sendable {
    private let publisher: OutcomePublisher
    /// Lends the member's slot out while its part is confirmed.
    private let execution: TaskExecution
    private let observer: any WorkerObserver
    private let clock: any CeleriacClock
    private let planner: CanvasPlanner
    /// Where join and lock queues are declared, counted, read and deleted (the publishing connection): the join
    /// store of a chord is a pair of queues.
    private let connection: any BrokerConnection
    private var tracing: TaskTracing? { publisher.tracing }
    /// Chords whose join queue is being counted now, with the members waiting for the next count.
    private let counts = Mutex<[String: [CheckedContinuation<Bool?, Never>]]>([:])
    /// One join at a time per worker: a join holds parts unacked on the publisher connection's channel, which a
    /// concurrent join's failed lock declare (405) would close.
    private let joinGate = Slots(1)

    init(
        connection: any BrokerConnection, publisher: OutcomePublisher, execution: TaskExecution,
        observer: any WorkerObserver, clock: any CeleriacClock,
        planner: CanvasPlanner
    ) {
        self.connection = connection
        self.publisher = publisher
        self.execution = execution
        self.observer = observer
        self.clock = clock
        self.planner = planner
    }

    // MARK: - Parts

    /// A chord header member finished: store its outcome in the chord's join queue, and if the queue now holds as
    /// many parts as the header has members, ask for the join. Returns false only when the broker could not be
    /// reached (the member's message then stays unacked and is redelivered: a duplicate part is harmless).
    ///
    /// - Parameter leading: a message published in the same confirmed batch, before the part (the member's result).
    func reportPart(
        of message: TaskMessage, outcome: ChordPart.Outcome, chord: JSONValue, log: Logger,
        with leading: OutgoingMessage? = nil
    ) async -> Bool {
        guard let info = ChordInfo(json: chord["options"]?[ChordInfo.optionKey]) else {
            log.warning(
                "the task belongs to a chord without Celeriac join information (sent by a Celery client with another result backend?); no part reported"
            )
            if let leading { return await publisher.publishConfirmed([leading], what: "result of \(message.id)") }
            return true
        }
        let part = ChordPart(index: message.groupIndex ?? -1, taskID: message.id, outcome: outcome)
        let props = BasicProperties(
            contentType: "application/json", contentEncoding: "utf-8", headers: partTraceHeaders(),
            deliveryMode: 2, correlationID: message.id)
        let outgoing = OutgoingMessage(
            routingKey: info.joinQueue, body: part.json.jsonBytes, properties: props, mandatory: true)
        let batch = [leading, outgoing].compactMap { $0 }
        // Nobody consumes the durable join queue, so RabbitMQ confirms a part only once it is on disk, and the count
        // follows: several ms per member (most of a chord's cost when members waited in their slots).
        return await execution.lendingSlot {
            await storePart(batch, part: part, info: info, chord: chord, parent: message, log: log)
        }
    }

    /// Publishes a part (after the member's result, in one confirmed batch), then counts the join queue.
    private func storePart(
        _ batch: [OutgoingMessage], part: ChordPart, info: ChordInfo, chord: JSONValue,
        parent message: TaskMessage, log: Logger
    ) async -> Bool {
        do {
            try await connection.publish(batch)
        } catch  where error.code == .unroutable {
            log.warning(
                "chord part arrived after the chord was joined or its join queue expired; dropped",
                metadata: ["chord": .string(info.id)])
            observer.chordEvent("late_part")
            return true
        } catch {
            // Not confirmed (broker trouble): send both again once it is back (a duplicate result or part is harmless).
            guard await publisher.publishConfirmed(batch, what: "chord part of \(message.id)") else { return false }
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
        let leads = counts.withLock { counts -> Bool in
            if counts[info.id] != nil { return false }
            counts[info.id] = []
            return true
        }
        if !leads {
            let joined: Bool? = await withCheckedContinuation { c in
                let queued = counts.withLock { counts -> Bool in
                    guard counts[info.id] != nil else { return false }
                    counts[info.id]!.append(c)
                    return true
                }
                if !queued { c.resume(returning: nil) }  // the round ended meanwhile: count here
            }
            if let joined { return joined }
            return await triggerJoinIfComplete(info, body: body, parent: parent, log: log)
        }
        var mine: Bool?
        while true {
            // Waiters queued before this round starts are counted by it.
            let waiters = counts.withLock { counts -> [CheckedContinuation<Bool?, Never>] in
                defer { counts[info.id] = [] }
                return counts[info.id] ?? []
            }
            let result = await countAndJoin(info, body: body, parent: parent, log: log)
            if mine == nil { mine = result }
            waiters.forEach { $0.resume(returning: result) }
            let done = counts.withLock { counts -> Bool in
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
            count = try await connection.inspect(queue: info.joinQueue).messageCount
        } catch  where error.replyCode == 404 {
            return true  // joined already
        } catch {
            log.error(
                "could not read the chord join queue",
                metadata: ["chord": .string(info.id), "error": .string(error.description)])
            return false
        }
        guard count >= info.size else { return true }
        let join = ChordJoin.joinMessage(info: info, body: body, reason: .complete, parent: parent)
        return await publisher.publishTask(join, queue: info.queue, what: "chord join \(info.id)")
    }

    // MARK: - The join

    /// Runs a `celeriac.chord_join` task (one at a time per worker); it settles its own delivery.
    func join(_ delivery: Delivery, _ message: TaskMessage, queue: String, log: Logger, canvas: CanvasFollowUps) async {
        guard await joinGate.acquire() else { return }
        await runJoin(delivery, message, queue: queue, log: log, canvas: canvas)
        await joinGate.release()
    }

    /// Joins a chord: exclusive lock queue, read every part, publish the body (or fail it), delete the join queue.
    private func runJoin(
        _ delivery: Delivery, _ message: TaskMessage, queue: String, log: Logger, canvas: CanvasFollowUps
    ) async {
        let settler = publisher.settler
        let reason = message.kwargs["reason"]?.stringValue.flatMap(ChordJoin.Reason.init(rawValue:))
        guard message.args.count == 2, let body = try? CanvasNode(json: message.args[1]) else {
            await publisher.deadLetter(
                delivery, queue: queue, reason: "celeriac.chord_join needs args [chord info, body signature]",
                label: "invalid")
            return
        }
        guard let info = ChordInfo(json: message.args[0]), let reason else {
            // A chord without Celeriac's join information: fail its body visibly instead of hanging.
            let failure = ChordJoin.chordError(
                "this chord was sent without Celeriac join information (a client that does not freeze chords?); send chords with CeleriacClient.apply"
            )
            if case .chord(_, let chordBody, _) = body {
                await canvas.fail(chordBody, failure: failure, parent: message, log: log)
            }
            await settler.ack(delivery.tag)
            return
        }
        var log = log
        log[metadataKey: "chord"] = .string(info.id)

        do {
            try await connection.declare(ChordQueues.lockQueue(info), recreateAfterReconnect: false)
        } catch  where error.replyCode == 405 {
            // Another joiner holds the lock; it re-checks the count after releasing it, so nothing is lost.
            log.debug("another worker is joining this chord")
            await settler.ack(delivery.tag)
            return
        } catch {
            log.warning(
                "could not take the chord lock; trying again shortly", metadata: ["error": .string(error.description)])
            await retryJoinLater(delivery, message, queue: queue)
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
        } catch  where error.replyCode == 404 {
            // Joined (or expired) already.
            await releaseLock(info)
            await settler.ack(delivery.tag)
            return
        } catch {
            log.warning(
                "lost the broker while reading chord parts; trying again shortly",
                metadata: ["error": .string(error.description)])
            await releaseLock(info)
            await retryJoinLater(delivery, message, queue: queue)
            return
        }

        switch ChordJoin.decide(parts: parts, info: info, deadlinePassed: reason == .deadline) {
        case .incomplete(let missing):
            if let last = tags.last { _ = await connection.nack(last, multiple: true, requeue: true) }
            await releaseLock(info)
            log.debug("chord not complete yet", metadata: ["missing": .stringConvertible(missing.count)])
            // A member that counted while this joiner held the parts saw too few; count again now they are back.
            if reason == .complete,
                !(await triggerJoinIfComplete(info, body: message.args[1], parent: message, log: log))
            {
                await retryJoinLater(delivery, message, queue: queue)
                return
            }
            await settler.ack(delivery.tag)
        case .runBody(let results):
            if sawMarker {
                log.warning(
                    "a previous joiner of this chord died after marking it joined; the body is published again and may run twice (at-least-once)"
                )
                observer.chordEvent("rejoined")
            }
            let marker = OutgoingMessage(
                routingKey: info.joinQueue, body: JSONValue.object(["joined": .string(message.id)]).jsonBytes,
                properties: BasicProperties(contentType: "application/json", deliveryMode: 2))
            let plan = linked(planner.plan(body, previous: results, parent: message, now: clock.now), to: links)
            guard await publisher.publishConfirmed([marker], what: "chord marker"),
                await publisher.publishPlan(plan, what: "chord body \(info.id)")
            else {
                await releaseLock(info)
                await retryJoinLater(delivery, message, queue: queue)
                return
            }
            await finishJoin(info, delivery: delivery, log: log)
            observer.chordEvent("joined")
            log.debug("chord joined; body published", metadata: ["size": .stringConvertible(info.size)])
        case .fail(let failure):
            log.error("chord failed", metadata: ["error": .string(failure.description)])
            await canvas.fail(body, failure: failure, parent: message, log: log)
            await canvas.bodyErrbacks(body, parent: message, log: log)
            await finishJoin(info, delivery: delivery, log: log)
            observer.chordEvent(reason == .deadline ? "deadline" : "failed")
        }
    }

    /// Reads every message of the join queue, unacked, on the publisher connection. A consumer whose prefetch
    /// covers the queue takes them in one burst (`basic.get` costs a round trip each); very large chords use
    /// `basic.get`. Only the lock holder reads, so nobody else competes for the messages.
    private func readJoinQueue(_ info: ChordInfo) async throws(BrokerError) -> [Delivery] {
        let connection = self.connection
        let ready = Int(try await connection.inspect(queue: info.joinQueue).messageCount)
        guard ready > 0 else { return [] }
        guard ready < 60_000 else {
            var out: [Delivery] = []
            while let d = try await connection.get(queue: info.joinQueue) { out.append(d) }
            return out
        }
        let consumer = try await connection.consume(
            queue: info.joinQueue, prefetch: UInt16(ready), tag: "celeriac-join-\(info.id)")
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
            throw BrokerError(
                .timeout, operation: "read chord parts of \(info.id)",
                reason: "\(out.count) of \(ready) messages arrived in 30 s")
        }
        return out
    }

    /// The join is done: drop the join queue (and with it the parts this joiner holds), the lock, and the join task.
    private func finishJoin(_ info: ChordInfo, delivery: Delivery, log: Logger) async {
        do {
            try await connection.deleteQueue(info.joinQueue)
        } catch {
            log.warning(
                "could not delete the chord join queue; it expires by itself",
                metadata: ["error": .string(error.description)])
        }
        await releaseLock(info)
        await publisher.settler.ack(delivery.tag)
    }

    private func releaseLock(_ info: ChordInfo) async {
        _ = try? await connection.deleteQueue(info.lockQueue)
    }

    /// Puts the join task back with a one-second delay (broker trouble), then acks this delivery.
    private func retryJoinLater(_ delivery: Delivery, _ message: TaskMessage, queue: String) async {
        var again = message
        again.eta = clock.now.addingTimeInterval(1)
        if await publisher.republish(again, queue: queue) { await publisher.settler.ack(delivery.tag) }
    }

    // MARK: - Trace context across the join

    /// The running member's span context, stored with its chord part (AMQP headers of the part message).
    private func partTraceHeaders() -> FieldTable? {
        guard let tracing else { return nil }
        let carrier = tracing.currentCarrier()
        guard !carrier.isEmpty else { return nil }
        return FieldTable(carrier.sorted { $0.key < $1.key }.map { (key: $0.key, value: FieldValue.string($0.value)) })
    }

    /// The span context a chord part carries, as one entry of the body's links header (empty without tracing).
    private func traceLink(of part: Delivery) -> [JSONValue] {
        guard tracing != nil, let headers = part.properties.headers else { return [] }
        var carrier: [String: String] = [:]
        for (key, value) in headers { if let s = value.stringValue { carrier[key] = s } }
        return carrier.isEmpty ? [] : [TraceCarrier.json(carrier)]
    }

    /// The chord body's messages carry every header member's span context, so their consumer spans link to them.
    private func linked(_ plan: CanvasPlan, to links: [JSONValue]) -> CanvasPlan {
        guard tracing != nil, !links.isEmpty else { return plan }
        var plan = plan
        for i in plan.messages.indices {
            plan.messages[i].message.extraHeaders[TraceCarrier.linksHeader] = .array(links)
        }
        return plan
    }
}
