import CeleriacCore
import FoundationEssentials

/// Reports each task to the worker's ``WorkerObserver`` (the Prometheus metrics of `CeleriacMetrics`): received,
/// redelivered, started, time spent queued, finished with its typed outcome and run time.
struct ObserverMiddleware: TaskMiddleware {
    let observer: any WorkerObserver

    func received(_ run: TaskRun) async {
        observer.taskReceived(name: run.message.name, queue: run.queue)
        if run.redelivered { observer.taskRedelivered(name: run.message.name, queue: run.queue) }
    }

    func started(_ run: TaskRun) async {
        let message = run.message
        observer.taskStarted(name: message.name, queue: run.queue)
        if let sent = message.sentAt {
            let from = max(sent, message.eta ?? sent)
            observer.taskQueueWait(
                name: message.name, queue: run.queue, seconds: max(0, Date().timeIntervalSince(from)))
        }
    }

    func finished(_ run: TaskRun, outcome: TaskOutcome, seconds: Double) async {
        observer.taskFinished(name: run.message.name, queue: run.queue, outcome: outcome.finished, seconds: seconds)
    }
}
