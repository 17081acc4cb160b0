import CeleriacCoordination
import CeleriacMetrics
import Foundation
import Prometheus
import Testing

/// The coordination metrics as Prometheus text (no broker: the observer is called directly).
@Suite struct CoordinationMetricsTests {
    @Test func coordinationEventsBecomeBoundedSeries() {
        let registry = PrometheusCollectorRegistry()
        let metrics = WorkerMetrics(registry: registry, knownTasks: ["demo.add"], queues: ["celery"], concurrency: 2)
        metrics.duplicateSkipped(task: "demo.add", queue: "celery")
        metrics.duplicateSkipped(task: "some.task.id.like.name", queue: "celery")
        metrics.globalLimitWaited(task: "demo.add", limit: "demo.add", kind: "rate", seconds: 0.02)
        metrics.globalLimitWaited(task: "demo.add", limit: "gpu", kind: "concurrency", seconds: 2)
        metrics.refillerLeadership(limit: "demo.add", leader: true)
        metrics.deadLetterDepth(3)
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        let text = String(decoding: buffer, as: UTF8.self)
        let expected: [String] = [
            #"celeriac_task_duplicates_detected_total{task="demo.add",queue="celery"} 1"#,
            #"celeriac_task_duplicates_detected_total{task="__unknown__",queue="celery"} 1"#,
            #"celeriac_rate_limit_wait_seconds_count{task="demo.add",scope="global"} 1"#,
            #"celeriac_rate_limit_wait_seconds_bucket{task="demo.add",scope="global",le="0.025"} 1"#,
            #"celeriac_global_concurrency_wait_seconds_bucket{task="demo.add",le="1.0"} 0"#,
            #"celeriac_global_concurrency_wait_seconds_bucket{task="demo.add",le="2.5"} 1"#,
            #"celeriac_rate_limit_refiller_leader{limit="demo.add"} 1.0"#,
            "celeriac_dead_letter_messages 3.0",
        ]
        for line in expected { #expect(text.contains(line), "missing: \(line)\n\(text)") }
        let names: [String] = [
            MetricNames.duplicatesDetected, MetricNames.rateLimitWait, MetricNames.globalConcurrencyWait,
            MetricNames.refillerLeader, MetricNames.deadLetterDepth,
        ]
        for name in names { #expect(MetricNames.allNames.contains(name)) }
    }
}
