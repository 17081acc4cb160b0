import CeleriacCore

/// Celery task events (`task-received`, `task-started`, `task-succeeded`, …) for Flower and `celery events`, sent
/// through ``WorkerEvents`` while events are switched on.
struct EventMiddleware: TaskMiddleware {
    let events: WorkerEvents

    func received(_ run: TaskRun) async { events.received(run.message) }

    func started(_ run: TaskRun) async { events.started(run.message) }

    func finished(_ run: TaskRun, outcome: TaskOutcome, seconds: Double) async {
        let message = run.message
        switch outcome {
        case .success(let value): events.succeeded(message, result: value, runtime: seconds)
        case .failure(let failure), .reported(let failure, _): events.failed(message, failure)
        case .retry(let after, _): events.retried(message, after: after)
        case .revoked(let reason): events.revoked(message, reason: reason)
        case .workerLost(let lost):
            // A requeued run is the same task still to come: no event until its last run.
            if case .requeue = lost.disposition { return }
            events.failed(message, lost.failure)
        }
    }
}
