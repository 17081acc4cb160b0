import CeleriacCore
import CeleriacWorker
import Synchronization

/// Counts failed tasks by name. A middleware sees every task the worker handles, with its typed outcome.
final class FailureTally: TaskMiddleware {
    private let counts = Mutex<[String: Int]>([:])

    func finished(_ run: TaskRun, outcome: TaskOutcome, seconds: Double) async {
        guard let failure = outcome.failure else { return }
        counts.withLock { $0["\(run.message.name) \(failure.type)", default: 0] += 1 }
    }

    var failures: [String: Int] { counts.withLock { $0 } }
}

enum MiddlewareExample {
    static func configuration(tally: FailureTally) -> Worker.Configuration {
        var configuration = Worker.Configuration(queues: ["celery"], concurrency: 8)
        configuration.middleware = [tally]  // after the worker's own: metrics, events, tracing, workflow graph
        return configuration
    }
}
