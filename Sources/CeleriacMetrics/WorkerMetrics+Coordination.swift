import CeleriacCoordination
import CoreMetrics
import Prometheus

/// Metrics of the broker-only coordination: waits for global limits, duplicates skipped, refiller leadership and
/// the dead-letter queue's depth.
extension WorkerMetrics: CoordinationObserver {

    /// Records the wait: a `rate` wait in ``MetricNames/rateLimitWait`` with `scope` `global`, a concurrency wait in
    /// ``MetricNames/globalConcurrencyWait``. The `limit` name is not a label.
    public func globalLimitWaited(task: String, limit: String, kind: String, seconds: Double) {
        if kind == "rate" {
            rateLimitWaitHistogram(task: task, scope: "global").record(seconds)
        } else {
            metrics.histogram(MetricNames.globalConcurrencyWait, [("task", taskLabel(task))]).record(seconds)
        }
    }

    /// Counts a skipped duplicate delivery (``MetricNames/duplicatesDetected``).
    public func duplicateSkipped(task: String, queue: String) {
        metrics.counter(MetricNames.duplicatesDetected, [("task", taskLabel(task)), ("queue", queue)]).increment()
    }

    /// Sets ``MetricNames/refillerLeader`` for `limit` to 1 (leader) or 0.
    public func refillerLeadership(limit: String, leader: Bool) {
        metrics.gauge(MetricNames.refillerLeader, [("limit", limit)]).set(leader ? 1.0 : 0.0)
    }

    /// Sets ``MetricNames/deadLetterDepth`` to `count`.
    public func deadLetterDepth(_ count: Int) {
        metrics.gauge(MetricNames.deadLetterDepth)
            .set(Double(count))
    }
}
