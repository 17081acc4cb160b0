import CeleriacBroker
import CeleriacMessaging
import CeleriacCanvas
import CeleriacCore
import FoundationEssentials
import Logging
import Synchronization

extension Worker {
    enum Outcome {
        case success(JSONValue)
        case failure(TaskFailure)
        case retry(after: Double, cause: TaskFailure?)
        case revoked(reason: String)
        /// Reported as it is (a child's failure, a hard time limit), with how it ended.
        case reported(TaskFailure, outcome: TaskFinishedOutcome)
        /// The process running the task died.
        case workerLost(WorkerLost)

        /// How it ended, for observers and metrics.
        var finished: TaskFinishedOutcome {
            switch self {
            case .success: .succeeded
            case .failure: .failed
            case .retry: .retried
            case .revoked(let reason): reason == "expired" ? .expired : .revoked
            case .reported(_, let outcome): outcome
            case .workerLost: .workerLost
            }
        }
    }

    /// One delivery, from decoding to ack. Never throws: every path ends in a result, a retry, a dead letter
    /// or (when the broker is gone) an unacked message the broker will redeliver.
    func handle(_ delivery: Delivery, queue: String) async {
        guard await admit(delivery, queue: queue) else { return }
        let message: TaskMessage
        do {
            message = try TaskCodec.decode(delivery, limits: configuration.limits)
        } catch {
            logger.error("rejected a message that is not a valid task; it is in the dead-letter queue",
                         metadata: ["queue": .string(queue), "reason": .string(error.reason), "task.id": .string(error.taskID ?? "?")])
            await deadLetter(delivery, queue: queue, reason: error.reason, label: error.label)
            // After the copy is in the dead-letter queue, where the answer says it is.
            await answerUndecodable(delivery, error)
            return
        }
        if let tracing {
            await tracing.process(message, queue: queue, worker: configuration.hostname) { await run(delivery, message, queue: queue) }
        } else {
            await run(delivery, message, queue: queue)
        }
    }

    /// A message that is not a valid task but says who waits for it (a task id and a reply queue, e.g. an integer
    /// beyond 64 bits from Python): its caller gets a FAILURE naming the problem instead of waiting for its
    /// timeout. Not for a message whose signature failed: nobody vouches for its reply address.
    private func answerUndecodable(_ delivery: Delivery, _ rejection: MessageRejection) async {
        guard rejection.label != "signature", let id = rejection.taskID ?? delivery.properties.correlationID,
              let replyTo = delivery.properties.replyTo, !replyTo.isEmpty else { return }
        let failure = TaskFailure(type: "DecodeError", arguments: [.string(
            "\(rejection.reason); the message is in the dead-letter queue '\(Topology.deadLetterQueue)'")], module: "kombu.exceptions")
        let result = ResultCodec.encode(.failure(id, failure), replyTo: replyTo, correlationID: delivery.properties.correlationID ?? id)
        if !(await publishConfirmed([result], what: "failure of undecodable \(id)")) { observer.resultPublishFailed() }
    }

    /// A decoded delivery, from the registry lookup to ack (inside its consumer span when tracing is on).
    func run(_ delivery: Delivery, _ message: TaskMessage, queue: String) async {
        var log = logger
        // The task's keys live in a wrapping handler: setting them on the worker's handler would make it re-render
        // its metadata for every task (see TaskLogHandler).
        log.handler = TaskLogHandler(base: logger.handler, taskID: message.id, taskName: message.name)
        observer.taskReceived(name: message.name, queue: queue)
        if delivery.redelivered { observer.taskRedelivered(name: message.name, queue: queue) }
        events.received(message)

        let builtin = registry[message.name] == nil && Self.builtinNames.contains(message.name)
        guard let task = registry[message.name] ?? (builtin ? Self.builtinTask(message.name) : nil) else {
            log.error("unknown task name; a NotRegistered failure was sent and the message is in the dead-letter queue")
            let failure = TaskFailure(type: "NotRegistered", arguments: [.string(message.name)], module: "celery.exceptions")
            await releaseUniqueLock(message, outcome: .failure(failure))
            _ = await publishResult(.failure(message.id, failure, for: message), for: message)
            observer.taskFinished(name: message.name, queue: queue, outcome: .failed, seconds: 0)
            await deadLetter(delivery, queue: queue, reason: "task '\(message.name)' is not registered on this worker", label: "unregistered")
            return
        }
        if !builtin, await skipIfDuplicate(delivery, message, queue: queue, log: log) { return }
        if await revoked.contains(message.id) {
            await finish(delivery, message, queue: queue, task: task, outcome: .revoked(reason: "revoked"), seconds: 0, log: log)
            return
        }
        let clock = configuration.clock
        if let expires = message.expires, expires < clock.now {
            await finish(delivery, message, queue: queue, task: task, outcome: .revoked(reason: "expired"), seconds: 0, log: log)
            return
        }
        if let eta = message.eta {
            let wait = eta.timeIntervalSince(clock.now)
            if wait >= 1 {
                // Too early (a producer without the delay topology, or a retry): park it on the broker.
                await park(delivery, message, queue: queue, log: log)
                return
            }
            // The last sub-second is waited here, rounded up, so a task never starts before its ETA. The slot is
            // lent out meanwhile, so a task that is due now does not wait behind one that is due later. Below a
            // microsecond, the ETA's own precision on the wire (ISO 8601, rounded to the µs), it is due.
            if wait > 0.000_001 {
                await slots.release()
                try? await clock.sleep(untilWallTime: eta)
                if Task.isCancelled { await slots.forceTake() } else { await slots.reacquire() }
            }
            if await revoked.contains(message.id) {
                await finish(delivery, message, queue: queue, task: task, outcome: .revoked(reason: "revoked"), seconds: 0, log: log)
                return
            }
        }
        let (hold, until) = await rateLimiter.reserve(message.name)
        if hold > .zero {
            observer.rateLimitWait(name: message.name, seconds: Double(hold.components.seconds) + Double(hold.components.attoseconds) / 1e18)
            try? await clock.sleep(until: until)
        }
        if builtin {
            // Canvas plumbing (chord join, gather, map): settles its own delivery.
            await runBuiltin(delivery, message, queue: queue, log: log)
            return
        }
        guard let permits = await acquireGlobalLimits(delivery, message, queue: queue, log: log) else { return }
        if configuration.acksEarly { await consumerConnection.ack(delivery.tag) }

        observer.taskStarted(name: message.name, queue: queue)
        if let sent = message.sentAt {
            let from = max(sent, message.eta ?? sent)
            observer.taskQueueWait(name: message.name, queue: queue, seconds: max(0, Date().timeIntervalSince(from)))
        }
        events.started(message)
        await recordGraphStarted(message)
        let start = ContinuousClock.now
        let outcome = await execute(message, task: task, queue: queue, log: log)
        await coordination.release(permits)
        if Task.isCancelled {
            // Cold shutdown interrupted the task: report nothing and leave the message unacked, so the broker
            // gives it to another worker when this connection closes.
            log.warning("cold shutdown interrupted the task; its message goes back to the queue")
            return
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        processed.add(1, ordering: .relaxed)
        totals.withLock { $0[message.name, default: 0] += 1 }
        await finish(delivery, message, queue: queue, task: task, outcome: outcome, seconds: seconds, log: log)
    }

    /// Runs the task body (through the executor) with its soft time limit; maps what it throws to an outcome.
    func execute(_ message: TaskMessage, task: RegisteredTask, queue: String, log: Logger) async -> Outcome {
        let context = TaskContext(message: message, logger: log, hostname: configuration.hostname, options: task.options,
                                  clock: configuration.clock)
        let changed = timeLimitOverrides.withLock { $0[message.name] }   // `time_limit` control command
        let limits = TaskMessage.TimeLimit(hard: message.timeLimit.hard ?? changed?.hard ?? task.options.hardTimeLimit ?? configuration.timeLimit,
                                           soft: message.timeLimit.soft ?? changed?.soft ?? task.options.softTimeLimit ?? configuration.softTimeLimit)
        let executor = self.executor
        let clock = configuration.clock
        // Unless the executor enforces the limits (process pool), the soft limit cancels the task here, and a hard
        // limit without a soft one acts as a soft one. Its deadline is fixed before the task starts.
        let softLimit = executor.enforcesTimeLimits ? nil : limits.soft ?? limits.hard
        let softDeadline = softLimit.map { clock.uptime + .milliseconds(Int($0 * 1000)) }
        // An unstructured task so that revoke(terminate:) and the soft time limit can cancel just this one.
        let work = Task { try await executor.run(message, task: task, context: context, limits: limits) }
        running.withLock { $0[message.id] = RunningTask(message: message, work: work, startedAt: Date(), queue: queue) }
        defer { running.withLock { $0[message.id] = nil } }
        // revoke(terminate:) records the id before it looks in `running`; registering before looking here means
        // one of the two sees the other.
        if terminateRequests.withLock({ $0.remove(message.id) }) != nil { work.cancel() }
        let fired = Flag()
        let timer: Task<Void, Never>? = softLimit.map { limit in
            Task {
                try? await clock.sleep(until: softDeadline ?? clock.uptime)
                if !Task.isCancelled {
                    fired.set()
                    context.stopReason.softTimeLimitPassed(limit)
                    work.cancel()
                }
            }
        }
        defer { timer?.cancel() }
        let result = await withTaskCancellationHandler {
            await work.result
        } onCancel: {
            work.cancel()
        }
        let timedOut = fired.isSet
        switch result {
        case .success(let value):
            return .success(value)
        case .failure(let error):
            if let reported = error as? ExecutionFailure {
                return .reported(reported.failure, outcome: reported.outcome)
            }
            if let lost = error as? WorkerLost {
                return .workerLost(lost)
            }
            if let retry = error as? RetryRequest {
                return retryOutcome(message, task: task, countdown: retry.countdown, maxRetries: retry.maxRetries, cause: retry.cause)
            }
            if work.isCancelled, await revoked.contains(message.id) {
                return .revoked(reason: "terminated")
            }
            if timedOut || error is SoftTimeLimitExceeded, let softLimit {
                var failure = TaskFailure(error: error is SoftTimeLimitExceeded ? error : SoftTimeLimitExceeded(limit: softLimit))
                failure.arguments = []
                return .failure(failure)
            }
            if let auto = task.options.autoRetry, auto.matches(error) {
                let delay = auto.backoff.delay(forRetries: message.retries)
                return retryOutcome(message, task: task, countdown: delay, maxRetries: nil, cause: TaskFailure(error: error))
            }
            return .failure(TaskFailure(error: error))
        }
    }

    func retryOutcome(_ message: TaskMessage, task: RegisteredTask, countdown: Double?, maxRetries: Int?, cause: TaskFailure?) -> Outcome {
        let limit = maxRetries ?? task.options.maxRetries
        if message.retries >= limit {
            return .failure(cause ?? TaskFailure(type: "MaxRetriesExceededError",
                                                 arguments: [.string("Can't retry \(message.name)[\(message.id)] args:\(message.argsRepr ?? "") kwargs:\(message.kwargsRepr ?? "")")],
                                                 module: "celery.exceptions"))
        }
        return .retry(after: countdown ?? task.options.defaultRetryDelay, cause: cause)
    }

    /// Publishes what follows from the outcome (result, retry message, callbacks), then acks.
    func finish(_ delivery: Delivery, _ message: TaskMessage, queue: String, task: RegisteredTask, outcome: Outcome, seconds: Double, log: Logger) async {
        await releaseUniqueLock(message, outcome: outcome)
        // Counted before anything leaves: whoever holds the result (or the retry) already sees it in /metrics.
        observer.taskFinished(name: message.name, queue: queue, outcome: outcome.finished, seconds: seconds)
        var published = true
        switch outcome {
        case .success(let value):
            if let children = await publishFollowUps(after: message, result: value, queue: queue, log: log) {
                let result = ResultMessage.success(message.id, value, children: children, for: message)
                if let chord = message.embed.chord {
                    // A chord member: its result and its chord part go in one confirmed batch.
                    published = await reportChordPart(of: message, outcome: .success(value), chord: chord, log: log,
                                                      with: resultMessage(result, for: message, task: task))
                } else {
                    published = await outsideSlot { await publishResult(result, for: message, task: task) }
                }
            } else {
                published = false
            }
            events.succeeded(message, result: value, runtime: seconds)
            log.debug("task succeeded", metadata: ["seconds": .stringConvertible(seconds)])
        case .failure(let failure):
            log.error("task failed", metadata: ["error": .string(failure.description)])
            await publishErrbacks(after: message, queue: queue, log: log)
            published = await publishResult(.failure(message.id, failure, for: message), for: message, task: task)
            published = await canvasAfterFailure(message, failure: failure, published: published, log: log)
            events.failed(message, failure)
        case .retry(let after, let cause):
            var next = message
            next.retries += 1
            next.eta = configuration.clock.now.addingTimeInterval(after)
            next.parentID = message.id
            published = await republish(next, queue: queue, log: log)
            if published {
                var retryResult = ResultMessage.failure(message.id, cause ?? TaskFailure(type: "Retry", arguments: [.string("Retry in \(after)s")], module: "celery.exceptions"), status: .retry, for: message)
                retryResult.children = [.array([.array([.string(message.id), .null]), .null])]
                retryResult.traceback = (cause?.traceback ?? "") + "\ncelery.exceptions.Retry: Retry in \(after)s"
                _ = await publishResult(retryResult, for: message, task: task)
            }
            events.retried(message, after: after)
            log.info("task will be retried", metadata: ["retries": .stringConvertible(next.retries), "countdown": .stringConvertible(after)])
        case .reported(let failure, _):
            log.error("task failed", metadata: ["error": .string(failure.description)])
            await publishErrbacks(after: message, queue: queue, log: log)
            published = await publishResult(.failure(message.id, failure, for: message), for: message, task: task)
            published = await canvasAfterFailure(message, failure: failure, published: published, log: log)
            events.failed(message, failure)
        case .workerLost(let lost):
            switch lost.disposition {
            case .requeue(let count) where !configuration.acksEarly:
                // reject_on_worker_lost: run it again (a copy that counts the losses), no result yet.
                log.error("the process running the task died; the task is requeued", metadata: [
                    "error": .string(lost.failure.description), "worker_lost": .stringConvertible(count)])
                var copy = message
                copy.extraHeaders[WorkerLost.countHeader] = .int(Int64(count))
                published = await republish(copy, queue: queue, log: log)
            case .ack, .deadLetter, .requeue:
                log.error("the process running the task died; the task failed", metadata: ["error": .string(lost.failure.description)])
                await publishErrbacks(after: message, queue: queue, log: log)
                published = await publishResult(.failure(message.id, lost.failure, for: message), for: message, task: task)
                published = await canvasAfterFailure(message, failure: lost.failure, published: published, log: log)
                events.failed(message, lost.failure)
                if published, lost.disposition == .deadLetter, !configuration.acksEarly {
                    await traceAndRecord(message, outcome: outcome, seconds: seconds)
                    await deadLetter(delivery, queue: queue, reason: "worker_lost: \(lost.failure.message)", label: "worker_lost")
                    return
                }
            }
        case .revoked(let reason):
            log.info("task not run", metadata: ["reason": .string(reason)])
            let failure = TaskFailure(type: "TaskRevokedError", arguments: [.string(reason)], module: "celery.exceptions")
            published = await publishResult(.failure(message.id, failure, status: .revoked, for: message), for: message, task: task)
            published = await canvasAfterFailure(message, failure: failure, published: published, log: log)
            events.revoked(message, reason: reason)
        }
        await traceAndRecord(message, outcome: outcome, seconds: seconds)
        guard published else {
            // The result or retry could not be published (broker gone): leave the message unacked, so the
            // broker redelivers it (at-least-once) instead of losing it.
            log.error("could not publish the outcome; the message stays unacked and will be redelivered")
            return
        }
        await rememberCompleted(message, outcome: outcome)
        if !configuration.acksEarly { consumerConnection.ackInBackground(delivery.tag) }
    }
}

/// A flag set once from another task.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
