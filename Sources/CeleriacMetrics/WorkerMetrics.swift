import CeleriacWorker
import CoreMetrics
import Prometheus
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The worker's metrics: a ``WorkerObserver`` that records through swift-metrics, into the factory it is given
/// (``CeleriacPrometheusFactory`` for `/metrics`, as the CLI does) or the application's `MetricsSystem`.
///
/// Labels are bounded: `task` (registered names only; anything else is `__unknown__`), `queue`, `outcome`,
/// `reason`. No task ids, no host names.
public final class WorkerMetrics: WorkerObserver, Sendable {
    /// Makes every handle: the factory given at init.
    let metrics: MetricHandles
    /// Handles of the per-task metrics (see ``HandleCache``), which also knows the registered task names.
    private let handles: HandleCache

    /// Creates the worker's metrics with their starting values, so dashboards and `increase()` see zeros before the
    /// first event: build info, concurrency, active and reserved tasks per queue, and the per-task and per-reason
    /// counters.
    ///
    /// - Parameters:
    ///   - registry: the Prometheus registry ``MetricsEndpoint`` serves (through a ``CeleriacPrometheusFactory``).
    ///   - knownTasks: the registered task names; any other name is recorded as `__unknown__`.
    ///   - queues: the queues the worker consumes.
    ///   - concurrency: tasks run at once, exported per queue as ``MetricNames/workerConcurrency``.
    ///   - version: the `version` label of ``MetricNames/buildInfo``.
    public convenience init(
        registry: PrometheusCollectorRegistry, knownTasks: [String], queues: [String], concurrency: Int,
        version: String = CeleriacVersion.current
    ) {
        self.init(
            factory: CeleriacPrometheusFactory(registry: registry), knownTasks: knownTasks, queues: queues,
            concurrency: concurrency, version: version)
    }

    /// The worker's metrics recorded through a swift-metrics factory.
    ///
    /// - Parameters:
    ///   - factory: where the metrics go: the application's `MetricsSystem.factory` by default (StatsD,
    ///     OpenTelemetry, …), or a ``CeleriacPrometheusFactory`` over the registry ``MetricsEndpoint`` serves.
    ///   - knownTasks: the registered task names; any other name is recorded as `__unknown__`.
    ///   - queues: the queues the worker consumes.
    ///   - concurrency: tasks run at once, exported per queue as ``MetricNames/workerConcurrency``.
    ///   - version: the `version` label of ``MetricNames/buildInfo``.
    public init(
        factory: any MetricsFactory = MetricsSystem.factory, knownTasks: [String], queues: [String], concurrency: Int,
        version: String = CeleriacVersion.current
    ) {
        self.metrics = MetricHandles(factory: factory)
        self.handles = HandleCache(knownTasks: Set(knownTasks))
        metrics.gauge(MetricNames.buildInfo, [("version", version)]).set(1.0)
        for queue in queues {
            metrics.gauge(MetricNames.workerConcurrency, [("queue", queue)]).set(Double(concurrency))
            metrics.gauge(MetricNames.tasksActive, [("queue", queue)]).set(0.0)
            metrics.gauge(MetricNames.tasksReserved, [("queue", queue)]).set(0.0)
            for task in knownTasks {
                for outcome in MetricNames.outcomes { finished(task, queue, outcome) }
                parked(task, queue)
                redeliveries(task, queue)
            }
            for reason in MetricNames.deadLetterReasons { deadLettered(queue, reason) }
            for reason in MetricNames.stallReasons { stalls(queue, reason) }
        }
        for reason in MetricNames.reconnectReasons { reconnects(reason) }
        metrics.gauge(MetricNames.brokerConnected).set(0.0)
        resultFailures()
        metrics.gauge(MetricNames.workerReady).set(0.0)
    }

    private func label(_ task: String) -> String { handles.label(task) }
    func taskLabel(_ task: String) -> String { label(task) }

    @discardableResult
    private func finished(_ name: String, _ queue: String, _ outcome: String) -> CoreMetrics.Counter {
        handles.counter(.finished, task: name, queue, outcome) { task in
            metrics.counter(MetricNames.tasksFinished, [("task", task), ("queue", queue), ("outcome", outcome)])
        }
    }

    private func active(_ queue: String) -> Meter {
        handles.gauge(.active, queue) {
            metrics.gauge(MetricNames.tasksActive, [("queue", queue)])
        }
    }

    /// Counts a received task message (``MetricNames/tasksReceived``) and sets the queue's last-delivery time to now.
    public func taskReceived(name: String, queue: String) {
        handles.counter(.received, task: name, queue) { task in
            metrics.counter(MetricNames.tasksReceived, [("task", task), ("queue", queue)])
        }.increment()
        handles.gauge(.lastDelivery, queue) {
            metrics.gauge(MetricNames.lastDelivery, [("queue", queue)])
        }.set(Double(time(nil)))
    }

    @discardableResult
    private func redeliveries(_ task: String, _ queue: String) -> CoreMetrics.Counter {
        metrics.counter(MetricNames.redeliveries, [("task", task), ("queue", queue)])
    }

    /// Counts a delivery the broker flagged as redelivered (``MetricNames/redeliveries``).
    public func taskRedelivered(name: String, queue: String) { redeliveries(label(name), queue).increment() }

    /// Counts the start (``MetricNames/tasksStarted``) and adds one to the queue's active tasks.
    public func taskStarted(name: String, queue: String) {
        handles.counter(.started, task: name, queue) { task in
            metrics.counter(MetricNames.tasksStarted, [("task", task), ("queue", queue)])
        }.increment()
        active(queue).increment()
    }

    /// Records the seconds from publish (or ETA) to start in ``MetricNames/taskQueueWait``.
    public func taskQueueWait(name: String, queue: String, seconds: Double) {
        handles.histogram(.queueWait, task: name, queue) { task in
            metrics.histogram(MetricNames.taskQueueWait, [("task", task), ("queue", queue)])
        }.record(seconds)
    }

    /// Moves the queue's reserved (prefetched, not started) gauge by `delta`, up or down.
    public func tasksReserved(queue: String, delta: Int) {
        let gauge = handles.gauge(.reserved, queue) {
            metrics.gauge(MetricNames.tasksReserved, [("queue", queue)])
        }
        if delta > 0 { gauge.increment(by: Double(delta)) } else { gauge.decrement(by: Double(-delta)) }
    }

    /// Records how long a confirmed publish took, in seconds (``MetricNames/publishConfirm``).
    public func publishConfirmed(seconds: Double) {
        handles.histogram(.publishConfirm) {
            metrics.histogram(MetricNames.publishConfirm)
        }.record(seconds)
    }

    /// Counts a result that could not be published (``MetricNames/resultPublishFailures``).
    public func resultPublishFailed() { resultFailures().increment() }

    @discardableResult
    private func resultFailures() -> CoreMetrics.Counter {
        handles.counter(.resultFailures) {
            metrics.counter(MetricNames.resultPublishFailures)
        }
    }

    /// Records a wait for the per-worker rate limit in ``MetricNames/rateLimitWait``, with `scope` `worker`.
    public func rateLimitWait(name: String, seconds: Double) {
        rateLimitWaitHistogram(task: name, scope: "worker").record(seconds)
    }

    /// One histogram for both scopes (per-worker token bucket, global tokens), with one help text and buckets.
    func rateLimitWaitHistogram(task: String, scope: String) -> Recorder {
        metrics.histogram(MetricNames.rateLimitWait, [("task", label(task)), ("scope", scope)])
    }

    /// Counts the outcome (``MetricNames/tasksFinished``). For a task that ran (`seconds` > 0, or succeeded, failed or
    /// retried) it also takes one off the queue's active tasks and records the run time (``MetricNames/taskRuntime``).
    public func taskFinished(name: String, queue: String, outcome: TaskFinishedOutcome, seconds: Double) {
        finished(name, queue, outcome.rawValue).increment()
        if seconds > 0 || outcome == .succeeded || outcome == .failed || outcome == .retried {
            active(queue).decrement()
            handles.histogram(.runtime, task: name, queue) { task in
                metrics.histogram(MetricNames.taskRuntime, [("task", task), ("queue", queue)])
            }.record(seconds)
        }
    }

    /// Counts a message put in the dead-letter queue, by queue and reason (``MetricNames/deadLetterReasons``).
    public func messageDeadLettered(queue: String, reason: String) {
        deadLettered(queue, reason).increment()
    }

    @discardableResult
    private func deadLettered(_ queue: String, _ reason: String) -> CoreMetrics.Counter {
        metrics.counter(MetricNames.deadLettered, [("queue", queue), ("reason", reason)])
    }

    @discardableResult
    private func stalls(_ queue: String, _ reason: String) -> CoreMetrics.Counter {
        metrics.counter(MetricNames.consumerStalls, [("queue", queue), ("reason", reason)])
    }

    @discardableResult
    private func reconnects(_ reason: String) -> CoreMetrics.Counter {
        metrics.counter(MetricNames.brokerReconnects, [("reason", reason)])
    }

    /// Counts an early (ETA) task parked in the broker's delay queues (``MetricNames/tasksParked``).
    public func taskParked(name: String, queue: String) {
        parked(label(name), queue).increment()
    }

    @discardableResult
    private func parked(_ task: String, _ queue: String) -> CoreMetrics.Counter {
        metrics.counter(MetricNames.tasksParked, [("task", task), ("queue", queue)])
    }

    /// Counts a consumer re-subscription, by queue and reason (``MetricNames/stallReasons``).
    public func consumerRestarted(queue: String, reason: String) {
        stalls(queue, reason).increment()
    }

    /// `disconnected` sets ``MetricNames/brokerConnected`` to 0; `reconnected` sets it to 1 and counts a reconnect with
    /// reason `connection_lost`. Other events are ignored.
    public func connectionEvent(_ event: String) {
        switch event {
        case "disconnected":
            metrics.gauge(MetricNames.brokerConnected).set(0.0)
        case "reconnected":
            metrics.gauge(MetricNames.brokerConnected).set(1.0)
            reconnects("connection_lost").increment()
        default:
            break
        }
    }

    /// Counts a chord join step: `joined`, `failed` and `deadline` (``MetricNames/chordsFailed`` with reason
    /// `member_failed` or `deadline`), `rejoined`; any other event counts as a late part.
    public func chordEvent(_ event: String) {
        switch event {
        case "joined":
            metrics.counter(MetricNames.chordsJoined).increment()
        case "failed", "deadline":
            metrics.counter(MetricNames.chordsFailed, [("reason", event == "failed" ? "member_failed" : "deadline")])
                .increment()
        case "rejoined":
            metrics.counter(MetricNames.chordRejoins).increment()
        default:
            metrics.counter(MetricNames.chordLateParts).increment()
        }
    }

    /// Sets ``MetricNames/workerPrefetch``.
    public func prefetchChanged(_ prefetch: Int) {
        metrics.gauge(MetricNames.workerPrefetch).set(Double(prefetch))
    }

    /// Sets ``MetricNames/workerReady``; ready implies connected, so it also sets ``MetricNames/brokerConnected`` to 1.
    public func stateChanged(ready: Bool) {
        metrics.gauge(MetricNames.workerReady).set(ready ? 1.0 : 0.0)
        if ready {
            metrics.gauge(MetricNames.brokerConnected).set(1.0)
        }
    }

    /// Counts a replaced pool child by reason (`worker_lost`, `time_limit`, `max_tasks`, `max_memory`).
    public func poolChildRestarted(reason: String) {
        metrics.counter(MetricNames.poolChildRestarts, [("reason", reason)]).increment()
    }

    /// Sets the gauge of live process-pool children.
    public func poolProcesses(_ count: Int) {
        metrics.gauge(MetricNames.poolProcesses).set(Double(count))
    }
}

/// Standard process metrics, refreshed on each scrape.
public enum ProcessMetrics {
    /// Refreshes the `process_*` metrics in `registry` from `/proc/self` and `getrusage` (Linux); ``MetricsEndpoint``
    /// calls it before every `/metrics` response.
    public static func update(_ registry: PrometheusCollectorRegistry) {
        let page = Double(sysconf(Int32(_SC_PAGESIZE)))
        if let statm = readSmallFile("/proc/self/statm") {
            let parts = statm.split(separator: " ")
            if parts.count > 1, let pages = Double(parts[1]) {
                registry.makeGauge(
                    descriptor: .init(
                        metricName: MetricNames.residentMemory, unitName: "", helpText: "Resident memory size in bytes."
                    )
                ).set(pages * page)
            }
        }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let cpu =
            Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(
                usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        let delta = lastCPU.withLock { last -> Double in
            let d = max(0, cpu - last)
            last = cpu
            return d
        }
        registry.makeCounter(
            descriptor: .init(
                metricName: MetricNames.cpuSeconds, unitName: "",
                helpText: "Total user and system CPU time spent in seconds.")
        ).increment(by: delta)
        if let dir = opendir("/proc/self/fd") {
            var count = -2  // . and ..
            while readdir(dir) != nil { count += 1 }
            closedir(dir)
            registry.makeGauge(
                descriptor: .init(
                    metricName: MetricNames.openFDs, unitName: "", helpText: "Number of open file descriptors.")
            ).set(Double(count - 1))
        }
        registry.makeGauge(
            descriptor: .init(
                metricName: MetricNames.startTime, unitName: "",
                helpText: "Start time of the process since unix epoch in seconds.")
        ).set(startTime)
    }

    static let startTime: Double = Double(time(nil))
    private static let lastCPU = Mutex<Double>(0)

    static func readSmallFile(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = fread(&buffer, 1, buffer.count, f)
        return String(decoding: buffer.prefix(n), as: UTF8.self)
    }
}

/// This build of Celeriac.
public enum CeleriacVersion {
    /// The release version, exported as the `version` label of ``MetricNames/buildInfo``.
    public static let current = "0.1.0"
}
