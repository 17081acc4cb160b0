import CeleriacBroker
import CeleriacCanvas
import CeleriacCoordination
import CeleriacCore
import CeleriacMessaging
import Logging

/// One delivery's way through a worker, from the signature check to the ack: decode, the checks before a task
/// runs (registered, duplicate, revoked, expired, ETA, rate limit, global limits), the run, and what is published
/// about its outcome. Never throws: every path ends in a result, a retry, a dead letter or (when the broker is
/// gone) an unacked message the broker will redeliver.
///
/// It holds no state of its own: it calls the components that do (``TaskExecution``, ``OutcomePublisher``,
/// ``CanvasFollowUps``, `WorkerCoordination`, ``RateLimiter``) and reports to the ``TaskMiddleware`` chain.
final class TaskPipeline: Sendable {
    struct Settings: Sendable {
        var limits: TaskCodec.Limits
        var signer: MessageSigner?
        var acksEarly: Bool
        var clock: any CeleriacClock
    }

    let settings: Settings
    let registry: TaskRegistry
    let execution: TaskExecution
    let publisher: OutcomePublisher
    let canvas: CanvasFollowUps
    let coordination: WorkerCoordination
    let rateLimiter: RateLimiter
    let middleware: MiddlewareChain
    let observer: any WorkerObserver
    let logger: Logger
    /// Where deliveries are acked and requeued (the consuming connection).
    var settler: any DeliverySettling { publisher.settler }

    init(
        settings: Settings, registry: TaskRegistry, execution: TaskExecution, publisher: OutcomePublisher,
        canvas: CanvasFollowUps,
        coordination: WorkerCoordination, rateLimiter: RateLimiter, middleware: MiddlewareChain,
        observer: any WorkerObserver, logger: Logger
    ) {
        self.settings = settings
        self.registry = registry
        self.execution = execution
        self.publisher = publisher
        self.canvas = canvas
        self.coordination = coordination
        self.rateLimiter = rateLimiter
        self.middleware = middleware
        self.observer = observer
        self.logger = logger
    }

    /// One delivery, from decoding to ack.
    func handle(_ delivery: Delivery, queue: String) async {
        guard await admit(delivery, queue: queue) else { return }
        let message: TaskMessage
        do {
            message = try TaskCodec.decode(delivery, limits: settings.limits)
        } catch {
            logger.error(
                "rejected a message that is not a valid task; it is in the dead-letter queue",
                metadata: [
                    "queue": .string(queue), "reason": .string(error.reason), "task.id": .string(error.taskID ?? "?"),
                ])
            await publisher.deadLetter(delivery, queue: queue, reason: error.reason, label: error.label)
            // After the copy is in the dead-letter queue, where the answer says it is.
            await answerUndecodable(delivery, error)
            return
        }
        let run = TaskRun(message: message, queue: queue, redelivered: delivery.redelivered)
        await middleware.handle(run) { await self.run(delivery, run) }
    }

    /// Verifies a delivery's signature when signing is on. A message that fails goes to the dead-letter queue with
    /// its reason (label `signature`) and false is returned.
    private func admit(_ delivery: Delivery, queue: String) async -> Bool {
        guard let signer = settings.signer else { return true }
        // An oversized body is refused by the decoder's size limit before any HMAC work is spent on it.
        guard delivery.body.count <= settings.limits.maxBodyBytes else { return true }
        do {
            try signer.verify(delivery)
            return true
        } catch {
            logger.error(
                "rejected a task message whose signature is missing or wrong; it is in the dead-letter queue",
                metadata: [
                    "queue": .string(queue), "reason": .string(error.reason), "task.id": .string(error.taskID ?? "?"),
                ])
            await publisher.deadLetter(delivery, queue: queue, reason: error.reason, label: error.label)
            return false
        }
    }

    /// A message that is not a valid task but says who waits for it (a task id and a reply queue, e.g. an integer
    /// beyond 64 bits from Python): its caller gets a FAILURE naming the problem instead of waiting for its
    /// timeout. Not for a message whose signature failed: nobody vouches for its reply address.
    private func answerUndecodable(_ delivery: Delivery, _ rejection: MessageRejection) async {
        guard rejection.label != "signature", let id = rejection.taskID ?? delivery.properties.correlationID,
            let replyTo = delivery.properties.replyTo, !replyTo.isEmpty
        else { return }
        let failure = TaskFailure(
            type: "DecodeError",
            arguments: [
                .string(
                    "\(rejection.reason); the message is in the dead-letter queue '\(Topology.deadLetterQueue)'")
            ], module: "kombu.exceptions")
        let result = ResultCodec.encode(
            .failure(id, failure), replyTo: replyTo, correlationID: delivery.properties.correlationID ?? id)
        if !(await publisher.publishConfirmed([result], what: "failure of undecodable \(id)")) {
            observer.resultPublishFailed()
        }
    }

    /// A decoded delivery, from the registry lookup to ack (inside the middleware's ``TaskMiddleware/handle(_:next:)``).
    private func run(_ delivery: Delivery, _ run: TaskRun) async {
        let message = run.message, queue = run.queue
        var log = logger
        // The task's keys live in a wrapping handler: setting them on the worker's handler would make it re-render
        // its metadata for every task (see TaskLogHandler).
        log.handler = TaskLogHandler(base: logger.handler, taskID: message.id, taskName: message.name)
        await middleware.received(run)

        let builtin = registry[message.name] == nil && BuiltinTasks.names.contains(message.name)
        guard let task = registry[message.name] ?? (builtin ? BuiltinTasks.placeholder(message.name) : nil) else {
            log.error("unknown task name; a NotRegistered failure was sent and the message is in the dead-letter queue")
            let failure = TaskFailure(
                type: "NotRegistered", arguments: [.string(message.name)], module: "celery.exceptions")
            await releaseUniqueLock(message, outcome: .failure(failure))
            await middleware.finished(run, outcome: .failure(failure), seconds: 0)
            _ = await publisher.publishResult(.failure(message.id, failure, for: message), for: message)
            await publisher.deadLetter(
                delivery, queue: queue, reason: "task '\(message.name)' is not registered on this worker",
                label: "unregistered")
            return
        }
        if !builtin, await skipIfDuplicate(delivery, message, queue: queue, log: log) { return }
        if await execution.revoked.contains(message.id) {
            await finish(delivery, run, task: task, outcome: .revoked(reason: "revoked"), seconds: 0, log: log)
            return
        }
        let clock = settings.clock
        if let expires = message.expires, expires < clock.now {
            await finish(delivery, run, task: task, outcome: .revoked(reason: "expired"), seconds: 0, log: log)
            return
        }
        if let eta = message.eta {
            let wait = eta.timeIntervalSince(clock.now)
            if wait >= 1 {
                // Too early (a producer without the delay topology, or a retry): park it on the broker.
                await publisher.park(delivery, message, queue: queue)
                return
            }
            // The last sub-second is waited here, rounded up, so a task never starts before its ETA. Below a
            // microsecond, the ETA's own precision on the wire (ISO 8601, rounded to the µs), it is due.
            if wait > 0.000_001 { await execution.waitForETA(eta) }
            if await execution.revoked.contains(message.id) {
                await finish(delivery, run, task: task, outcome: .revoked(reason: "revoked"), seconds: 0, log: log)
                return
            }
        }
        let (hold, until) = await rateLimiter.reserve(message.name)
        if hold > .zero {
            observer.rateLimitWait(
                name: message.name,
                seconds: Double(hold.components.seconds) + Double(hold.components.attoseconds) / 1e18)
            try? await clock.sleep(until: until)
        }
        if builtin {
            // Canvas plumbing (chord join, gather, map): the join settles its own delivery.
            await runBuiltin(delivery, run, log: log)
            return
        }
        guard let permits = await acquireGlobalLimits(delivery, message, queue: queue, log: log) else { return }
        if settings.acksEarly { await settler.ack(delivery.tag) }

        await middleware.started(run)
        let start = ContinuousClock.now
        let outcome = await execution.execute(message, task: task, queue: queue, log: log)
        await coordination.release(permits)
        if Task.isCancelled {
            // Cold shutdown interrupted the task: report nothing and leave the message unacked, so the broker
            // gives it to another worker when this connection closes.
            log.warning("cold shutdown interrupted the task; its message goes back to the queue")
            return
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        execution.count(message.name)
        await finish(delivery, run, task: task, outcome: outcome, seconds: seconds, log: log)
    }

    /// Reports the outcome to the middleware, publishes what follows from it (result, retry message, callbacks),
    /// then acks.
    func finish(
        _ delivery: Delivery, _ run: TaskRun, task: RegisteredTask, outcome: TaskOutcome, seconds: Double, log: Logger
    ) async {
        let message = run.message, queue = run.queue
        var outcome = outcome
        if settings.acksEarly, case .workerLost(var lost) = outcome, case .requeue = lost.disposition {
            // The message is acked already: a requeue would run it twice, so the loss is reported as a failure.
            lost.disposition = .ack
            outcome = .workerLost(lost)
        }
        await releaseUniqueLock(message, outcome: outcome)
        // Reported before anything leaves: whoever holds the result (or the retry) already sees it in /metrics.
        await middleware.finished(run, outcome: outcome, seconds: seconds)
        var published = true
        switch outcome {
        case .success(let value):
            if let children = await canvas.afterSuccess(of: message, result: value, queue: queue, log: log) {
                let result = ResultMessage.success(message.id, value, children: children, for: message)
                if let chord = message.embed.chord {
                    // A chord member: its result and its chord part go in one confirmed batch.
                    published = await canvas.chords.reportPart(
                        of: message, outcome: .success(value), chord: chord, log: log,
                        with: publisher.resultMessage(result, for: message, task: task))
                } else {
                    published = await execution.lendingSlot {
                        await publisher.publishResult(result, for: message, task: task)
                    }
                }
            } else {
                published = false
            }
            log.debug("task succeeded", metadata: ["seconds": .stringConvertible(seconds)])
        case .failure(let failure), .reported(let failure, _):
            log.error("task failed", metadata: ["error": .string(failure.description)])
            published = await publishFailure(message, failure, task: task, queue: queue, log: log)
        case .retry(let after, let cause):
            var next = message
            next.retries += 1
            next.eta = settings.clock.now.addingTimeInterval(after)
            next.parentID = message.id
            published = await publisher.republish(next, queue: queue)
            if published {
                var retryResult = ResultMessage.failure(
                    message.id,
                    cause
                        ?? TaskFailure(
                            type: "Retry", arguments: [.string("Retry in \(after)s")], module: "celery.exceptions"),
                    status: .retry, for: message)
                retryResult.children = [.array([.array([.string(message.id), .null]), .null])]
                retryResult.traceback = (cause?.traceback ?? "") + "\ncelery.exceptions.Retry: Retry in \(after)s"
                _ = await publisher.publishResult(retryResult, for: message, task: task)
            }
            log.info(
                "task will be retried",
                metadata: ["retries": .stringConvertible(next.retries), "countdown": .stringConvertible(after)])
        case .workerLost(let lost):
            switch lost.disposition {
            case .requeue(let count):
                // reject_on_worker_lost: run it again (a copy that counts the losses), no result yet.
                log.error(
                    "the process running the task died; the task is requeued",
                    metadata: [
                        "error": .string(lost.failure.description), "worker_lost": .stringConvertible(count),
                    ])
                var copy = message
                copy.extraHeaders[WorkerLost.countHeader] = .int(Int64(count))
                published = await publisher.republish(copy, queue: queue)
            case .ack, .deadLetter:
                log.error(
                    "the process running the task died; the task failed",
                    metadata: ["error": .string(lost.failure.description)])
                published = await publishFailure(message, lost.failure, task: task, queue: queue, log: log)
                if published, lost.disposition == .deadLetter, !settings.acksEarly {
                    await publisher.deadLetter(
                        delivery, queue: queue, reason: "worker_lost: \(lost.failure.message)", label: "worker_lost")
                    return
                }
            }
        case .revoked(let reason):
            log.info("task not run", metadata: ["reason": .string(reason)])
            let failure = TaskFailure(
                type: "TaskRevokedError", arguments: [.string(reason)], module: "celery.exceptions")
            published = await publisher.publishResult(
                .failure(message.id, failure, status: .revoked, for: message), for: message, task: task)
            published = await canvas.afterFailure(of: message, failure: failure, published: published, log: log)
        }
        guard published else {
            // The result or retry could not be published (broker gone): leave the message unacked, so the
            // broker redelivers it (at-least-once) instead of losing it.
            log.error("could not publish the outcome; the message stays unacked and will be redelivered")
            return
        }
        await rememberCompleted(message, outcome: outcome)
        if !settings.acksEarly { settler.ackInBackground(delivery.tag) }
    }

    /// A failed task: its errbacks, its FAILURE result, then the rest of its canvas. False when the broker could
    /// not take the result or the chord part.
    private func publishFailure(
        _ message: TaskMessage, _ failure: TaskFailure, task: RegisteredTask, queue: String, log: Logger
    ) async -> Bool {
        await canvas.errbacks(after: message, queue: queue, log: log)
        let published = await publisher.publishResult(
            .failure(message.id, failure, for: message), for: message, task: task)
        return await canvas.afterFailure(of: message, failure: failure, published: published, log: log)
    }

    /// Runs a built-in canvas task; the join settles its own delivery.
    private func runBuiltin(_ delivery: Delivery, _ run: TaskRun, log: Logger) async {
        let message = run.message
        let placeholder = BuiltinTasks.placeholder(message.name)
        switch message.name {
        case ChordInfo.joinTaskName:
            await canvas.chords.join(delivery, message, queue: run.queue, log: log, canvas: canvas)
        case ChordInfo.gatherTaskName:
            await finish(
                delivery, run, task: placeholder, outcome: .success(message.args.first ?? .array([])), seconds: 0,
                log: log)
        default:
            let outcome = await BuiltinTasks.map(
                message, registry: registry, hostname: publisher.settings.hostname, log: log)
            await finish(delivery, run, task: placeholder, outcome: outcome, seconds: 0, log: log)
        }
    }
}
