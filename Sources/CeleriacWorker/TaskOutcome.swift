import CeleriacCore

/// How one task ended on this worker, decided before anything about it is published. The worker publishes from
/// it (a result, a retry, a requeue), and every ``TaskMiddleware`` sees this one value: no status strings are
/// passed between the worker, metrics, events, tracing and the workflow graph.
public enum TaskOutcome: Sendable {
    /// The body returned this result.
    case success(JSONValue)
    /// The body threw (or stopped at its soft time limit), the task is not registered, or it ran out of retries.
    case failure(TaskFailure)
    /// The task runs again in `after` seconds (`context.retry`, autoretry); `cause` is what made it retry.
    case retry(after: Double, cause: TaskFailure?)
    /// It did not run (or was stopped): `"revoked"`, `"terminated"` or `"expired"`.
    case revoked(reason: String)
    /// A failure the executor reported as it is (a child's failure, a hard time limit), with how it ended.
    case reported(TaskFailure, outcome: TaskFinishedOutcome)
    /// The process running the task died.
    case workerLost(WorkerLost)

    /// How it ended, as metrics label it.
    public var finished: TaskFinishedOutcome {
        switch self {
        case .success: .succeeded
        case .failure: .failed
        case .retry: .retried
        case .revoked(let reason): reason == "expired" ? .expired : .revoked
        case .reported(_, let outcome): outcome
        case .workerLost: .workerLost
        }
    }

    /// The failure a caller sees for an outcome that is a failure (nil for success, retry and revoke).
    public var failure: TaskFailure? {
        switch self {
        case .failure(let f), .reported(let f, _): f
        case .workerLost(let lost): lost.failure
        case .success, .retry, .revoked: nil
        }
    }
}
