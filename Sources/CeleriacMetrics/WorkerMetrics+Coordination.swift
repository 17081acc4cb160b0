import CeleriacCoordination
import Prometheus

/// Metrics of the broker-only coordination: waits for global limits, duplicates skipped, refiller leadership and
/// the dead-letter queue's depth.
extension WorkerMetrics: CoordinationObserver {
    private static let waitBuckets: [Double] = [
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
    ]

    /// Records the wait: a `rate` wait in ``MetricNames/rateLimitWait`` with `scope` `global`, a concurrency wait in
    /// ``MetricNames/globalConcurrencyWait``. The `limit` name is not a label.
    public func globalLimitWaited(task: String, limit: String, kind: String, seconds: Double) {
        if kind == "rate" {
            rateLimitWaitHistogram(task: task, scope: "global").record(seconds)
        } else {
            registry.makeValueHistogram(
                descriptor: .init(
                    metricName: MetricNames.globalConcurrencyWait, unitName: "",
                    helpText: "Time a task waited for a global concurrency permit."),
                labels: [("task", taskLabel(task))], buckets: Self.waitBuckets
            ).record(seconds)
        }
    }

    /// Counts a skipped duplicate delivery (``MetricNames/duplicatesDetected``).
    public func duplicateSkipped(task: String, queue: String) {
        registry.makeCounter(
            descriptor: .init(
                metricName: MetricNames.duplicatesDetected, unitName: "",
                helpText: "Deliveries skipped because this worker already completed their task id."),
            labels: [("task", taskLabel(task)), ("queue", queue)]
        ).increment()
    }

    /// Sets ``MetricNames/refillerLeader`` for `limit` to 1 (leader) or 0.
    public func refillerLeadership(limit: String, leader: Bool) {
        registry.makeGauge(
            descriptor: .init(
                metricName: MetricNames.refillerLeader, unitName: "",
                helpText: "1 while this worker publishes the tokens of a global rate limit."),
            labels: [("limit", limit)]
        ).set(leader ? 1.0 : 0.0)
    }

    /// Sets ``MetricNames/deadLetterDepth`` to `count`.
    public func deadLetterDepth(_ count: Int) {
        registry.makeGauge(
            descriptor: .init(
                metricName: MetricNames.deadLetterDepth, unitName: "",
                helpText: "Messages in the dead-letter queue celeriac.dead (read every 15 s).")
        )
        .set(Double(count))
    }
}
