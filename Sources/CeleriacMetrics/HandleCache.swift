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

    /// Counter, Gauge and ValueHistogram handles; the key's metric tells them apart.
    private let handles = Mutex<[Key: any AnyObject & Sendable]>([:])

    func counter(_ metric: Metric, _ a: String, _ b: String = "", _ c: String = "", make: () -> Counter) -> Counter {
        handle(Key(metric: metric, a: a, b: b, c: c), make: make)
    }

    func gauge(_ metric: Metric, _ a: String, _ b: String = "", _ c: String = "", make: () -> Gauge) -> Gauge {
        handle(Key(metric: metric, a: a, b: b, c: c), make: make)
    }

    func histogram(_ metric: Metric, _ a: String, _ b: String = "", _ c: String = "", make: () -> ValueHistogram) -> ValueHistogram {
        handle(Key(metric: metric, a: a, b: b, c: c), make: make)
    }

    private func handle<Handle: AnyObject & Sendable>(_ key: Key, make: () -> Handle) -> Handle {
        if let known = handles.withLock({ $0[key] }) as? Handle { return known }
        let made = make()
        handles.withLock { $0[key] = made }
        return made
    }
}
