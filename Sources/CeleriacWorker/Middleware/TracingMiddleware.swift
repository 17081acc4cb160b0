import CeleriacCore
import CeleriacTracing

/// A consumer span around each task (README "Tracing"): its parent is the context the message carries, and it is
/// the current span for everything the task does, so follow-up sends are its children. The span records how the
/// task ended. Only in the chain when a tracer is configured.
struct TracingMiddleware: TaskMiddleware {
    let tracing: TaskTracing
    let worker: String

    func handle(_ run: TaskRun, next: () async -> Void) async {
        await tracing.process(run.message, queue: run.queue, worker: worker) { await next() }
    }

    func finished(_ run: TaskRun, outcome: TaskOutcome, seconds: Double) async {
        TaskTracing.record(Self.traceOutcome(outcome))
    }

    static func traceOutcome(_ outcome: TaskOutcome) -> TaskTraceOutcome {
        switch outcome {
        case .success: .success
        case .failure(let f), .reported(let f, _): .failure(type: f.type, message: f.message)
        case .workerLost(let lost): .failure(type: lost.failure.type, message: lost.failure.message)
        case .retry: .retry
        case .revoked(let reason): .revoked(reason: reason)
        }
    }
}
