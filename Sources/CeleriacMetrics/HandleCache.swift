import Prometheus
import Synchronization

/// Metric handles by metric and label values, made once.
///
/// `PrometheusCollectorRegistry.make…` validates the name, fixes the help text and looks the label set up on every
/// call: a few microseconds, paid several times per task on the worker's hot path. The worker's per-task metrics
/// go through this cache instead, so each label set costs one dictionary lookup after its first use. Label values
/// are bounded (registered task names, queues, outcomes), so the cache is too.
final class HandleCache: Sendable {
    /// The per-task metrics (the others are rare and go to the registry directly).
    enum Metric: UInt8, Hashable, Sendable {
        case received, lastDelivery, started, active, queueWait, reserved, finished, runtime
    }

    struct Key: Hashable, Sendable {
        let metric: Metric
        let a: String
        let b: String
        let c: String
    }

    private let counters = Mutex<[Key: Counter]>([:])
    private let gauges = Mutex<[Key: Gauge]>([:])
    private let histograms = Mutex<[Key: ValueHistogram]>([:])

    func counter(_ metric: Metric, _ a: String, _ b: String = "", _ c: String = "", make: () -> Counter) -> Counter {
        let key = Key(metric: metric, a: a, b: b, c: c)
        if let known = counters.withLock({ $0[key] }) { return known }
        let made = make()
        counters.withLock { $0[key] = made }
        return made
    }

    func gauge(_ metric: Metric, _ a: String, _ b: String = "", _ c: String = "", make: () -> Gauge) -> Gauge {
        let key = Key(metric: metric, a: a, b: b, c: c)
        if let known = gauges.withLock({ $0[key] }) { return known }
        let made = make()
        gauges.withLock { $0[key] = made }
        return made
    }

    func histogram(_ metric: Metric, _ a: String, _ b: String = "", _ c: String = "", make: () -> ValueHistogram) -> ValueHistogram {
        let key = Key(metric: metric, a: a, b: b, c: c)
        if let known = histograms.withLock({ $0[key] }) { return known }
        let made = make()
        histograms.withLock { $0[key] = made }
        return made
    }
}
