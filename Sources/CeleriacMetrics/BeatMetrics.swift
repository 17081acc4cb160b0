import CeleriacBeat
import Foundation
import Prometheus

/// Beat's Prometheus metrics (names from `spec/metrics.md`). The `entry` label takes configured entry names only.
public final class BeatMetrics: BeatObserver, Sendable {
    /// Gauge: 1 while this beat is the leader (the one sending), 0 while it stands by.
    public static let isLeader = "celeriac_beat_is_leader"
    /// Counter: times this beat became or stopped being the leader.
    public static let leaderChanges = "celeriac_beat_leader_changes_total"
    /// Counter: runs sent and confirmed by the broker, by `entry`.
    public static let sends = "celeriac_beat_sends_total"
    /// Counter: sends that failed and will be retried, by `entry`.
    public static let sendFailures = "celeriac_beat_send_failures_total"
    /// Counter: missed runs dropped by the catch-up policy, by `entry` and `policy`.
    public static let missedRuns = "celeriac_beat_missed_runs_total"
    /// Histogram: seconds between a run's scheduled instant and its confirmed send, by `entry` (buckets 1 ms to 60 s).
    public static let lateness = "celeriac_beat_send_lateness_seconds"
    /// Gauge: Unix time of the entry's last send, by `entry`.
    public static let lastSend = "celeriac_beat_last_send_timestamp_seconds"
    /// Gauge: Unix time of the entry's next run, by `entry`; 0 when it will not fire again.
    public static let nextSend = "celeriac_beat_next_send_timestamp_seconds"
    static let latenessBuckets: [Double] = [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60]

    /// The registry beat's metrics are recorded in; serve it with ``MetricsEndpoint``.
    public let registry: PrometheusCollectorRegistry

    /// - Parameters:
    ///   - entries: the schedule's entry names; their send counters and lateness histograms start at 0.
    ///   - catchUpPolicies: entry name → catch-up policy label (`skip`, `once`, `all`). Their missed-run and
    ///     send-failure counters start at 0 too, so `increase()` sees the first dropped run or failed send.
    public init(
        registry: PrometheusCollectorRegistry, entries: [String], catchUpPolicies: [String: String] = [:],
        version: String = CeleriacVersion.current
    ) {
        self.registry = registry
        registry.makeGauge(
            descriptor: .init(
                metricName: MetricNames.buildInfo, unitName: "", helpText: "Celeriac build information; always 1."),
            labels: [("version", version)]
        ).set(1.0)
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

    private func missedRuns(_ entry: String, _ policy: String) -> Counter {
        registry.makeCounter(
            descriptor: .init(
                metricName: Self.missedRuns, unitName: "", helpText: "Missed runs dropped by the catch-up policy."),
            labels: [("entry", entry), ("policy", policy)])
    }
    private func sendFailures(_ entry: String) -> Counter {
        registry.makeCounter(
            descriptor: .init(
                metricName: Self.sendFailures, unitName: "", helpText: "Sends that failed and will be retried."),
            labels: [("entry", entry)])
    }

    private var leaderGauge: Gauge {
        registry.makeGauge(
            descriptor: .init(
                metricName: Self.isLeader, unitName: "", helpText: "1 while this beat is the active (leader) beat."))
    }
    private var changes: Counter {
        registry.makeCounter(
            descriptor: .init(
                metricName: Self.leaderChanges, unitName: "",
                helpText: "Times this beat became or stopped being the leader."))
    }
    private func sendCounter(_ entry: String) -> Counter {
        registry.makeCounter(
            descriptor: .init(metricName: Self.sends, unitName: "", helpText: "Runs sent (confirmed by the broker)."),
            labels: [("entry", entry)])
    }
    private func latenessHistogram(_ entry: String) -> ValueHistogram {
        registry.makeValueHistogram(
            descriptor: .init(
                metricName: Self.lateness, unitName: "",
                helpText: "Seconds between a run's scheduled instant and its confirmed send."),
            labels: [("entry", entry)], buckets: Self.latenessBuckets)
    }

    /// Counts the send, records its lateness (negative values as 0) and sets the entry's last-send time to now.
    public func sent(entry: String, lateness: Double) {
        sendCounter(entry).increment()
        latenessHistogram(entry).record(max(0, lateness))
        registry.makeGauge(
            descriptor: .init(metricName: Self.lastSend, unitName: "", helpText: "Unix time of the entry's last send."),
            labels: [("entry", entry)]
        ).set(Date().timeIntervalSince1970)
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
        registry.makeGauge(
            descriptor: .init(metricName: Self.nextSend, unitName: "", helpText: "Unix time of the entry's next run."),
            labels: [("entry", entry)]
        ).set(at?.timeIntervalSince1970 ?? 0)
    }

    /// Counts a failed send (beat retries it).
    public func sendFailed(entry: String) {
        sendFailures(entry).increment()
    }
}
