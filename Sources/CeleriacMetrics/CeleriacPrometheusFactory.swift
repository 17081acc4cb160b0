import CoreMetrics
import Prometheus

/// A swift-metrics `MetricsFactory` that records into a `PrometheusCollectorRegistry` with Celeriac's help texts and
/// histogram buckets (``MetricNames/descriptions``), so that `/metrics` reads exactly as it always has: the same
/// names, labels, `# HELP` lines and buckets, and gauges that go up and down.
///
/// swift-prometheus' own `PrometheusMetricsFactory` writes empty help texts and takes buckets per metric name only
/// through its settings; this one reads both from the catalogue. A metric it does not know gets an empty help text,
/// and histograms of unknown metrics the catalogue's wait buckets.
///
/// The CLI uses it for the worker and beat; an application that bootstraps its own `MetricsSystem` (StatsD,
/// OpenTelemetry) passes nothing, and Celeriac's metrics go to that backend.
public struct CeleriacPrometheusFactory: MetricsFactory {
    /// Where the metrics are recorded; serve it with ``MetricsEndpoint``.
    public let registry: PrometheusCollectorRegistry

    /// A factory recording into `registry`.
    public init(registry: PrometheusCollectorRegistry) { self.registry = registry }

    private func descriptor(_ label: String) -> MetricNameDescriptor {
        .init(metricName: label, unitName: "", helpText: MetricNames.descriptions[label]?.help ?? "")
    }

    /// A Prometheus counter.
    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    /// A Prometheus counter that takes fractions (CPU seconds).
    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)])
        -> any FloatingPointCounterHandler
    {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    /// A histogram with the catalogue's buckets when `aggregate`, else a gauge set to the last value.
    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(descriptor: descriptor(label), labels: dimensions) }
        let buckets = MetricNames.descriptions[label]?.buckets ?? MetricNames.waitBuckets
        return registry.makeValueHistogram(descriptor: descriptor(label), labels: dimensions, buckets: buckets)
    }

    /// A Prometheus gauge that goes up and down.
    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    /// A duration histogram with the catalogue's buckets (seconds).
    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        let buckets = (MetricNames.descriptions[label]?.buckets ?? MetricNames.waitBuckets).map {
            Duration.nanoseconds(Int64($0 * 1e9))
        }
        return registry.makeDurationHistogram(descriptor: descriptor(label), labels: dimensions, buckets: buckets)
    }

    /// Celeriac's metrics live as long as the process; nothing is unregistered.
    public func destroyCounter(_ handler: any CounterHandler) {}
    /// Nothing is unregistered.
    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    /// Nothing is unregistered.
    public func destroyRecorder(_ handler: any RecorderHandler) {}
    /// Nothing is unregistered.
    public func destroyMeter(_ handler: any MeterHandler) {}
    /// Nothing is unregistered.
    public func destroyTimer(_ handler: any TimerHandler) {}
}

/// How the worker's and beat's metrics make their handles: through the injected swift-metrics factory.
struct MetricHandles: Sendable {
    let factory: any MetricsFactory

    func counter(_ name: String, _ labels: [(String, String)] = []) -> CoreMetrics.Counter {
        CoreMetrics.Counter(label: name, dimensions: labels, factory: factory)
    }

    /// A gauge that goes up and down (`set`, `increment`, `decrement`).
    func gauge(_ name: String, _ labels: [(String, String)] = []) -> CoreMetrics.Meter {
        CoreMetrics.Meter(label: name, dimensions: labels, factory: factory)
    }

    /// A histogram (an aggregating recorder).
    func histogram(_ name: String, _ labels: [(String, String)] = []) -> CoreMetrics.Recorder {
        CoreMetrics.Recorder(label: name, dimensions: labels, aggregate: true, factory: factory)
    }
}
