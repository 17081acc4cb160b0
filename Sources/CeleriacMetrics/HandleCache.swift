import CoreMetrics
import Synchronization

/// Metric handles by metric and label values, made once.
///
/// `PrometheusCollectorRegistry.make…` validates the name, fixes the help text and looks the label set up on every
/// call: a few microseconds, paid several times per task on the worker's hot path. The worker's per-task metrics
/// go through this cache instead, so each label set costs one dictionary lookup after its first use. Label values
/// are bounded (registered task names, queues, outcomes), so the cache is too: a task name that is not registered
/// is cached only as `__unknown__`.
final class HandleCache: Sendable {
    /// The per-task metrics (the others are rare and go to the registry directly). Each metric always has the same
    /// handle type (the one its accessor below makes).
    enum Metric: UInt8, Hashable, Sendable {
        case received, lastDelivery, started, active, queueWait, reserved, finished, runtime, publishConfirm,
            resultFailures
    }

    struct Key: Hashable, Sendable {
        let metric: Metric
        let a: String
        let b: String
        let c: String
    }

    static let unknownTask = "__unknown__"
    private let knownTasks: Set<String>
    /// Counter, Gauge and ValueHistogram handles; the key's metric tells them apart.
    private let handles = Mutex<[Key: any AnyObject & Sendable]>([:])

    init(knownTasks: Set<String>) {
        self.knownTasks = knownTasks
    }

    /// The label value for a task name: itself if registered, else `__unknown__`.
    func label(_ task: String) -> String { knownTasks.contains(task) ? task : Self.unknownTask }

    func counter(
        _ metric: Metric, _ a: String = "", _ b: String = "", _ c: String = "", make: () -> CoreMetrics.Counter
    ) -> CoreMetrics.Counter {
        handle(Key(metric: metric, a: a, b: b, c: c), make: make)
    }

    func gauge(_ metric: Metric, _ a: String, _ b: String = "", _ c: String = "", make: () -> Meter) -> Meter {
        handle(Key(metric: metric, a: a, b: b, c: c), make: make)
    }

    func histogram(_ metric: Metric, _ a: String = "", _ b: String = "", _ c: String = "", make: () -> Recorder)
        -> Recorder
    {
        handle(Key(metric: metric, a: a, b: b, c: c), make: make)
    }

    /// A handle whose first label is a task name, looked up by the name as given; `make` gets the label value.
    /// A registered name hits the cache at once, without a look in the set of registered names first.
    func counter(_ metric: Metric, task: String, _ b: String, _ c: String = "", make: (String) -> CoreMetrics.Counter)
        -> CoreMetrics.Counter
    {
        taskHandle(metric, task, b, c, make: make)
    }

    func histogram(_ metric: Metric, task: String, _ b: String, make: (String) -> Recorder) -> Recorder {
        taskHandle(metric, task, b, "", make: make)
    }

    private func taskHandle<Handle: AnyObject & Sendable>(
        _ metric: Metric, _ name: String, _ b: String, _ c: String,
        make: (String) -> Handle
    ) -> Handle {
        if let known = handles.withLock({ $0[Key(metric: metric, a: name, b: b, c: c)] }) {
            return unsafeDowncast(known, to: Handle.self)
        }
        let task = label(name)
        return handle(Key(metric: metric, a: task, b: b, c: c)) { make(task) }
    }

    private func handle<Handle: AnyObject & Sendable>(_ key: Key, make: () -> Handle) -> Handle {
        if let known = handles.withLock({ $0[key] }) { return unsafeDowncast(known, to: Handle.self) }
        let made = make()
        return handles.withLock { cached in
            // Two first uses at once: keep the first one stored, so every caller records into the same handle.
            if let raced = cached[key] { return unsafeDowncast(raced, to: Handle.self) }
            cached[key] = made
            return made
        }
    }
}
