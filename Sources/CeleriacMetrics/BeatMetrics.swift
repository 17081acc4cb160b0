import CeleriacBeat
import CoreMetrics
import Foundation
import Prometheus

/// Beat's metrics (names in ``MetricNames``), recorded through swift-metrics like the worker's. The `entry` label
/// takes configured entry names only.
public final class BeatMetrics: BeatObserver, Sendable {
    /// ``MetricNames/beatIsLeader``.
    public static let isLeader = MetricNames.beatIsLeader
    /// ``MetricNames/beatLeaderChanges``.
    public static let leaderChanges = MetricNames.beatLeaderChanges
    /// ``MetricNames/beatSends``.
    public static let sends = MetricNames.beatSends
    /// ``MetricNames/beatSendFailures``.
    public static let sendFailures = MetricNames.beatSendFailures
    /// ``MetricNames/beatMissedRuns``.
    public static let missedRuns = MetricNames.beatMissedRuns
    /// ``MetricNames/beatLateness``.
    public static let lateness = MetricNames.beatLateness
    /// ``MetricNames/beatLastSend``.
    public static let lastSend = MetricNames.beatLastSend
    /// ``MetricNames/beatNextSend``.
    public static let nextSend = MetricNames.beatNextSend

    /// Makes every handle: the factory given at init.
    let metrics: MetricHandles

    /// Beat's metrics in the Prometheus registry ``MetricsEndpoint`` serves (through a ``CeleriacPrometheusFactory``).
    ///
    /// - Parameters:
    ///   - registry: the registry to record in.
    ///   - entries: the schedule's entry names; their send counters and lateness histograms start at 0.
    ///   - catchUpPolicies: entry name → catch-up policy label (`skip`, `once`, `all`). Their missed-run and
    ///     send-failure counters start at 0 too, so `increase()` sees the first dropped run or failed send.
    ///   - version: the `version` label of ``MetricNames/buildInfo``.
    public convenience init(
        registry: PrometheusCollectorRegistry, entries: [String], catchUpPolicies: [String: String] = [:],
        version: String = CeleriacVersion.current
    ) {
        self.init(
            factory: CeleriacPrometheusFactory(registry: registry), entries: entries, catchUpPolicies: catchUpPolicies,
            version: version)
    }

    /// Beat's metrics recorded through a swift-metrics factory (the application's `MetricsSystem` by default).
    ///
    /// - Parameters:
    ///   - factory: where the metrics go.
    ///   - entries: the schedule's entry names; their send counters and lateness histograms start at 0.
    ///   - catchUpPolicies: entry name → catch-up policy label; their missed-run and send-failure counters start at 0.
    ///   - version: the `version` label of ``MetricNames/buildInfo``.
    public init(
        factory: any MetricsFactory = MetricsSystem.factory, entries: [String], catchUpPolicies: [String: String] = [:],
        version: String = CeleriacVersion.current
    ) {
        self.metrics = MetricHandles(factory: factory)
        metrics.gauge(MetricNames.buildInfo, [("version", version)]).set(1.0)
        leaderGauge.set(0.0)
        _ = changes
        for e in entries {
            _ = sendCounter(e)
            _ = latenessHistogram(e)
        }
        for (entry, policy) in catchUpPolicies {
            _ = missedRuns(entry, policy)
            _ = sendFailures(entry)
        }
    }

    private func missedRuns(_ entry: String, _ policy: String) -> CoreMetrics.Counter {
        metrics.counter(MetricNames.beatMissedRuns, [("entry", entry), ("policy", policy)])
    }
    private func sendFailures(_ entry: String) -> CoreMetrics.Counter {
        metrics.counter(MetricNames.beatSendFailures, [("entry", entry)])
    }

    private var leaderGauge: Meter {
        metrics.gauge(MetricNames.beatIsLeader)
    }
    private var changes: CoreMetrics.Counter {
        metrics.counter(MetricNames.beatLeaderChanges)
    }
    private func sendCounter(_ entry: String) -> CoreMetrics.Counter {
        metrics.counter(MetricNames.beatSends, [("entry", entry)])
    }
    private func latenessHistogram(_ entry: String) -> Recorder {
        metrics.histogram(MetricNames.beatLateness, [("entry", entry)])
    }

    /// Counts the send, records its lateness (negative values as 0) and sets the entry's last-send time to now.
    public func sent(entry: String, lateness: Double) {
        sendCounter(entry).increment()
        latenessHistogram(entry).record(max(0, lateness))
        metrics.gauge(MetricNames.beatLastSend, [("entry", entry)]).set(Date().timeIntervalSince1970)
    }

    /// Adds `count` to the missed-runs counter of `entry` and `policy`.
    public func dropped(entry: String, policy: String, count: Int) {
        missedRuns(entry, policy).increment(by: Int64(count))
    }

    /// Sets the leader gauge and counts the change.
    public func leadership(_ leader: Bool) {
        leaderGauge.set(leader ? 1.0 : 0.0)
        changes.increment()
    }

    /// Sets the entry's next-send gauge to `at`, or 0 when it will not fire again.
    public func nextSend(entry: String, at: Date?) {
        metrics.gauge(MetricNames.beatNextSend, [("entry", entry)]).set(at?.timeIntervalSince1970 ?? 0)
    }

    /// Counts a failed send (beat retries it).
    public func sendFailed(entry: String) {
        sendFailures(entry).increment()
    }
}
