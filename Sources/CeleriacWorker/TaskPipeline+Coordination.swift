import CeleriacBroker
import CeleriacCoordination
import CeleriacCore
import CeleriacMessaging
import Logging

/// The pipeline's hooks into `WorkerCoordination`: duplicate skip, global limits, unique-lock release.
extension TaskPipeline {
    /// True when the delivery's task id was already completed here (within the window): the message is acked
    /// without running, and the duplicate is logged and counted.
    func skipIfDuplicate(_ delivery: Delivery, _ message: TaskMessage, queue: String, log: Logger) async -> Bool {
        guard await coordination.alreadyCompleted(message.id) else { return false }
        log.warning(
            "duplicate delivery of a task this worker already completed; skipped",
            metadata: [
                "redelivered": .stringConvertible(delivery.redelivered)
            ])
        coordination.reportDuplicate(task: message.name, queue: queue)
        await settler.ack(delivery.tag)
        return true
    }

    /// Waits for the task's global limits. Nil when the worker stops meanwhile: the message went back to the queue.
    func acquireGlobalLimits(_ delivery: Delivery, _ message: TaskMessage, queue: String, log: Logger) async
        -> WorkerCoordination.Permits?
    {
        guard coordination.hasLimits(message.name) else { return WorkerCoordination.Permits.none }
        do {
            return try await coordination.acquire(task: message.name)
        } catch {
            log.info("stopped while waiting for a global limit; the message goes back to the queue")
            await settler.nack(delivery.tag, requeue: true)
            observer.messageRequeued(queue: queue)
            return nil
        }
    }

    /// Is this the task's last run? A retry, or a requeue after a lost child, is the same task still to come.
    static func isFinal(_ outcome: TaskOutcome) -> Bool {
        switch outcome {
        case .retry: false
        case .workerLost(let lost):
            if case .requeue = lost.disposition { false } else { true }
        default: true
        }
    }

    /// Completed ids for duplicate detection: tasks that ran to their last outcome (a revoked id is refused again by
    /// the revoked set, with its REVOKED result, so it is not remembered here).
    func rememberCompleted(_ message: TaskMessage, outcome: TaskOutcome) async {
        if case .revoked = outcome { return }
        if Self.isFinal(outcome) { await coordination.markCompleted(message.id) }
    }

    /// Before the outcome is published: a finished task gives its unique key back, so a caller who sees the
    /// result can send the same key again at once.
    func releaseUniqueLock(_ message: TaskMessage, outcome: TaskOutcome) async {
        guard Self.isFinal(outcome), let key = WorkerCoordination.uniqueKey(headers: message.extraHeaders) else {
            return
        }
        await coordination.releaseUnique(key: key, taskID: message.id)
    }
}

extension WorkerCoordination {
    /// Dead-lettered without a decoded message: release the unique lock by the raw headers.
    func releaseUnique(of delivery: Delivery) async {
        guard let key = WorkerCoordination.uniqueKey(headers: delivery.properties.headers),
            case .string(let id)? = delivery.properties.headers?[HeaderKey.id]
        else { return }
        await releaseUnique(key: key, taskID: id)
    }
}
