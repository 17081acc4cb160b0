/// How a task's run ended, as observers, metrics and events see it: one typed value from the worker to every
/// observer, with no string remapping between modules. The raw value is the `outcome` label of
/// `celeriac_tasks_finished_total`.
public enum TaskFinishedOutcome: String, Sendable, CaseIterable {
    /// It returned a result.
    case succeeded
    /// It threw (or was stopped by its soft time limit), or its task name is not registered.
    case failed
    /// It asked to run again later (a retry was published).
    case retried
    /// It was revoked (before or while running) and did not run to its end.
    case revoked
    /// Its `expires` had passed when its turn came.
    case expired
    /// The process pool killed it at its hard time limit.
    case timedOut = "timed_out"
    /// The process running it died.
    case workerLost = "worker_lost"

    /// True for outcomes where the task's body ran (its run time is measured).
    public var ran: Bool {
        switch self {
        case .succeeded, .failed, .retried, .timedOut, .workerLost: true
        case .revoked, .expired: false
        }
    }
}
