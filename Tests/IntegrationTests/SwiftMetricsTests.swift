import CeleriacCore
import CeleriacMetrics
import CeleriacTesting
import CeleriacWorker
import MetricsTestKit
import Testing

/// An application that chooses its own swift-metrics backend gets the worker's metrics there, under the same names
/// and labels `/metrics` shows. (No broker: the in-memory one.)
@Suite struct SwiftMetricsTests {
    struct Pair: Codable, Sendable { let x: Int; let y: Int }
    static let add = TaskName<Pair, Int>("sm.add", parameters: "x", "y")
    static let fail = TaskName<Pair, Int>("sm.fail", parameters: "x", "y")

    @Test func aWorkerRecordsIntoTheFactoryItIsGiven() async throws {
        let backend = TestMetrics()
        var registry = TaskRegistry()
        registry.register(Self.add) { p, _ in p.x + p.y }
        registry.register(Self.fail) { _, _ in throw BuiltinError.valueError("no") }
        let metrics = WorkerMetrics(factory: backend, knownTasks: registry.names, queues: ["celery"], concurrency: 4)
        let app = try await CeleriacTestApp(registry: registry, observer: metrics)
        #expect(try await app.client.delay(Self.add, .init(x: 2, y: 3)).get(timeout: .seconds(10)) == 5)
        await #expect(throws: (any Error).self) {
            _ = try await app.client.delay(Self.fail, .init(x: 0, y: 0)).get(timeout: .seconds(10))
        }
        try await app.shutdown()

        let succeeded = try backend.expectCounter(
            MetricNames.tasksFinished, [("task", "sm.add"), ("queue", "celery"), ("outcome", "succeeded")])
        #expect(succeeded.totalValue == 1)
        let failed = try backend.expectCounter(
            MetricNames.tasksFinished, [("task", "sm.fail"), ("queue", "celery"), ("outcome", "failed")])
        #expect(failed.totalValue == 1)
        let received = try backend.expectCounter(MetricNames.tasksReceived, [("task", "sm.add"), ("queue", "celery")])
        #expect(received.totalValue == 1)
        let runtime = try backend.expectRecorder(MetricNames.taskRuntime, [("task", "sm.add"), ("queue", "celery")])
        #expect(runtime.values.count == 1)
        let active = try backend.expectMeter(MetricNames.tasksActive, [("queue", "celery")])
        #expect(active.lastValue == 0, "up when a task starts, down when it ends")
        let build = try backend.expectMeter(MetricNames.buildInfo, [("version", CeleriacVersion.current)])
        #expect(build.lastValue == 1)
    }

    @Test func everyMetricRecordedThroughSwiftMetricsHasAHelpTextAndHistogramsTheirBuckets() {
        for name in MetricNames.descriptions.keys {
            #expect(MetricNames.allNames.contains(name), "\(name) is named in MetricNames.allNames")
            #expect(!(MetricNames.descriptions[name]?.help.isEmpty ?? true), "\(name) has a help text")
        }
        for histogram in [
            MetricNames.taskRuntime, MetricNames.taskQueueWait, MetricNames.publishConfirm,
            MetricNames.rateLimitWait, MetricNames.globalConcurrencyWait, MetricNames.beatLateness,
        ] {
            #expect(MetricNames.descriptions[histogram]?.buckets != nil, "\(histogram) has buckets")
        }
    }
}
