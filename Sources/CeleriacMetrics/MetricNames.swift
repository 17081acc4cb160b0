import CeleriacWorker

/// Every metric name Celeriac exports, in one place (`spec/metrics.md` is the catalogue). The Grafana drift test
/// checks the dashboards against ``allNames``.
public enum MetricNames {
    /// Counter: task messages received, by `task` and `queue`.
    public static let tasksReceived = "celeriac_tasks_received_total"
    /// Counter: tasks started, by `task` and `queue`.
    public static let tasksStarted = "celeriac_tasks_started_total"
    /// Counter: tasks finished, by `task`, `queue` and `outcome` (``outcomes``).
    public static let tasksFinished = "celeriac_tasks_finished_total"
    /// Histogram: task run time in seconds, by `task` and `queue`.
    public static let taskRuntime = "celeriac_task_runtime_seconds"
    /// Gauge: tasks running now, by `queue`.
    public static let tasksActive = "celeriac_tasks_active"
    /// Histogram: seconds from publish (or ETA) to start, by `task` and `queue`; only for messages from Celeriac
    /// producers, which carry the send time.
    public static let taskQueueWait = "celeriac_task_queue_wait_seconds"
    /// Gauge: deliveries prefetched and waiting for a free slot, by `queue`.
    public static let tasksReserved = "celeriac_tasks_reserved"
    /// Histogram: seconds from the worker's publish (results, retries, follow-ups, dead letters) to the broker's
    /// confirm.
    public static let publishConfirm = "celeriac_publish_confirm_seconds"
    /// Counter: results that could not be published; their task messages stay unacked and are redelivered.
    public static let resultPublishFailures = "celeriac_result_publish_failures_total"
    /// Gauge: tasks this worker runs at once, by `queue`.
    public static let workerConcurrency = "celeriac_worker_concurrency"
    /// Gauge: Unix time of the last delivery, by `queue`.
    public static let lastDelivery = "celeriac_worker_last_delivery_timestamp_seconds"
    /// Counter: consumers re-subscribed, by `queue` and `reason` (``stallReasons``).
    public static let consumerStalls = "celeriac_worker_consumer_stalls_total"
    /// Counter: messages put in the dead-letter queue, by `queue` and `reason` (``deadLetterReasons``).
    public static let deadLettered = "celeriac_messages_dead_lettered_total"
    /// Counter: early (ETA) tasks parked in the broker's delay queues, by `task` and `queue`.
    public static let tasksParked = "celeriac_tasks_parked_total"
    /// Gauge: 1 while the worker is connected to the broker.
    public static let brokerConnected = "celeriac_broker_connected"
    /// Counter: reconnects to the broker, by `reason` (``reconnectReasons``).
    public static let brokerReconnects = "celeriac_broker_reconnects_total"
    /// Gauge: 1 while the worker is connected and consuming.
    public static let workerReady = "celeriac_worker_ready"
    /// Gauge: the prefetch per consumer now (concurrency × multiplier; adaptive prefetch and `pool_grow` change it).
    public static let workerPrefetch = "celeriac_worker_prefetch"
    /// Gauge: live process-pool children.
    public static let poolProcesses = "celeriac_pool_processes"
    /// Counter: process-pool children replaced, by `reason` (`worker_lost`, `time_limit`, `max_tasks`, `max_memory`).
    public static let poolChildRestarts = "celeriac_pool_child_restarts_total"
    /// Gauge: always 1, with the Celeriac `version` as a label (worker and beat).
    public static let buildInfo = "celeriac_build_info"
    /// Counter: chords whose body this worker published.
    public static let chordsJoined = "celeriac_chords_joined_total"
    /// Counter: chords this worker's join failed, by `reason` (`member_failed`, `deadline`).
    public static let chordsFailed = "celeriac_chords_failed_total"
    /// Counter: chord joins redone after a joiner died mid-join; the body may have run twice.
    public static let chordRejoins = "celeriac_chord_rejoins_total"
    /// Counter: chord header results that arrived after their chord was joined or expired.
    public static let chordLateParts = "celeriac_chord_late_parts_total"
    /// Counter: deliveries skipped because this worker already completed their task id, by `task` and `queue`.
    public static let duplicatesDetected = "celeriac_task_duplicates_detected_total"
    /// Counter: deliveries the broker flagged as redelivered (an earlier delivery was not acked), by `task` and
    /// `queue`.
    public static let redeliveries = "celeriac_task_redeliveries_total"
    /// Histogram: seconds a task waited for a rate-limit token, by `task` and `scope` (`worker` or `global`).
    public static let rateLimitWait = "celeriac_rate_limit_wait_seconds"
    /// Histogram: seconds a task waited for a global concurrency permit, by `task`.
    public static let globalConcurrencyWait = "celeriac_global_concurrency_wait_seconds"
    /// Gauge: 1 while this worker publishes the tokens of a global rate limit, by `limit`.
    public static let refillerLeader = "celeriac_rate_limit_refiller_leader"
    /// Gauge: messages in the dead-letter queue `celeriac.dead` (read every 15 s).
    public static let deadLetterDepth = "celeriac_dead_letter_messages"
    /// Gauge: resident memory in bytes (the standard Prometheus process metric).
    public static let residentMemory = "process_resident_memory_bytes"
    /// Counter: user and system CPU seconds (the standard Prometheus process metric).
    public static let cpuSeconds = "process_cpu_seconds_total"
    /// Gauge: open file descriptors (the standard Prometheus process metric).
    public static let openFDs = "process_open_fds"
    /// Gauge: process start time, Unix seconds (the standard Prometheus process metric).
    public static let startTime = "process_start_time_seconds"

    /// Every worker and process metric name above (beat's are on ``BeatMetrics``).
    public static let allNames: [String] = [
        tasksReceived, tasksStarted, tasksFinished, taskRuntime, taskQueueWait, tasksActive, tasksReserved,
        publishConfirm, resultPublishFailures, workerConcurrency, lastDelivery,
        consumerStalls, deadLettered, tasksParked, brokerConnected, brokerReconnects, workerReady, buildInfo,
        workerPrefetch, chordsJoined, chordsFailed, chordRejoins, chordLateParts,
        poolProcesses, poolChildRestarts,
        duplicatesDetected, redeliveries, rateLimitWait, globalConcurrencyWait, refillerLeader, deadLetterDepth,
        residentMemory, cpuSeconds, openFDs, startTime,
        beatIsLeader, beatLeaderChanges, beatSends, beatSendFailures, beatMissedRuns, beatLateness, beatLastSend,
        beatNextSend,
    ]

    /// Reason label values pre-set to 0 per queue (``deadLettered``, ``consumerStalls``) or per worker
    /// (``brokerReconnects``). A counter that first appears at 1 has no `increase()`, so without them the first
    /// dead letter, stall or reconnect would be invisible to the dashboards and alerts.
    public static let deadLetterReasons = ["invalid", "limit", "signature", "unregistered", "worker_lost"]
    /// `reason` values of ``consumerStalls``: `watchdog` (messages ready, slots free, nothing delivered) and
    /// `resubscribed` (the consumer ended, e.g. cancelled by the broker, and subscribed again).
    public static let stallReasons = ["watchdog", "resubscribed"]
    /// `reason` values of ``brokerReconnects``.
    public static let reconnectReasons = ["connection_lost"]

    /// Outcome label values of ``tasksFinished``.
    public static let outcomes = TaskFinishedOutcome.allCases.map(\.rawValue)

    // MARK: Beat

    /// Gauge: 1 while this beat is the leader (the one sending), 0 while it stands by.
    public static let beatIsLeader = "celeriac_beat_is_leader"
    /// Counter: times this beat became or stopped being the leader.
    public static let beatLeaderChanges = "celeriac_beat_leader_changes_total"
    /// Counter: runs sent and confirmed by the broker, by `entry`.
    public static let beatSends = "celeriac_beat_sends_total"
    /// Counter: sends that failed and will be retried, by `entry`.
    public static let beatSendFailures = "celeriac_beat_send_failures_total"
    /// Counter: missed runs dropped by the catch-up policy, by `entry` and `policy`.
    public static let beatMissedRuns = "celeriac_beat_missed_runs_total"
    /// Histogram: seconds between a run's scheduled instant and its confirmed send, by `entry` (buckets 1 ms to 60 s).
    public static let beatLateness = "celeriac_beat_send_lateness_seconds"
    /// Gauge: Unix time of the entry's last send, by `entry`.
    public static let beatLastSend = "celeriac_beat_last_send_timestamp_seconds"
    /// Gauge: Unix time of the entry's next run, by `entry`; 0 when it will not fire again.
    public static let beatNextSend = "celeriac_beat_next_send_timestamp_seconds"

    // MARK: Help texts and buckets

    /// A metric's `# HELP` text, and its histogram buckets (nil for a counter or gauge).
    public struct Description: Sendable {
        /// The `# HELP` line's text.
        public let help: String
        /// Upper bounds of the histogram's buckets, in seconds; nil for counters and gauges.
        public let buckets: [Double]?
    }

    /// Buckets of the task run-time histogram: 1 ms to an hour.
    public static let runtimeBuckets: [Double] = [
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
    ]
    /// Buckets of the queue-wait and rate-limit-wait histograms: 1 ms to an hour.
    public static let waitBuckets: [Double] = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
    ]
    /// Buckets of the global-concurrency wait: 1 ms to 5 minutes.
    public static let globalWaitBuckets: [Double] = [
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
    ]
    /// Buckets of the publish-confirm histogram: 0.5 ms to 30 s.
    public static let confirmBuckets: [Double] = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30,
    ]
    /// Buckets of beat's send lateness: 1 ms to 60 s.
    public static let beatLatenessBuckets: [Double] = [
        0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60,
    ]

    /// Every metric Celeriac records through swift-metrics, with its help text and buckets: what
    /// ``CeleriacPrometheusFactory`` needs to expose them exactly as before (swift-metrics itself has neither).
    public static let descriptions: [String: Description] = [
        buildInfo: .init(help: "Celeriac build information; always 1.", buckets: nil),
        workerConcurrency: .init(help: "Tasks this worker runs at once.", buckets: nil),
        tasksActive: .init(help: "Tasks running now.", buckets: nil),
        tasksReserved: .init(
            help: "Deliveries received and waiting for a free slot (prefetched, not started).", buckets: nil),
        brokerConnected: .init(help: "1 while the worker is connected to the broker.", buckets: nil),
        workerReady: .init(help: "1 while the worker is connected and consuming.", buckets: nil),
        workerPrefetch: .init(
            help: "Prefetch per consumer now (concurrency x multiplier; adaptive prefetch changes it).", buckets: nil),
        tasksFinished: .init(help: "Tasks finished, by outcome.", buckets: nil),
        tasksReceived: .init(help: "Task messages received.", buckets: nil),
        lastDelivery: .init(help: "Unix time of the last delivery.", buckets: nil),
        redeliveries: .init(
            help:
                "Task deliveries the broker flagged as redelivered (a worker died or lost its connection before acking).",
            buckets: nil),
        tasksStarted: .init(help: "Tasks started.", buckets: nil),
        taskQueueWait: .init(
            help: "Seconds from publish (or ETA) to start; Celeriac producers only.", buckets: waitBuckets),
        publishConfirm: .init(
            help: "Seconds from publish to the broker's confirm (results, retries, follow-ups, dead letters).",
            buckets: confirmBuckets),
        resultPublishFailures: .init(
            help: "Results that could not be published; their messages stay unacked and are redelivered.", buckets: nil),
        rateLimitWait: .init(
            help:
                "Seconds a task waited for a rate-limit token, by scope (worker: per-worker bucket; global: shared by all workers).",
            buckets: waitBuckets),
        taskRuntime: .init(help: "Task run time in seconds.", buckets: runtimeBuckets),
        deadLettered: .init(help: "Messages put in the dead-letter queue, by reason.", buckets: nil),
        consumerStalls: .init(help: "Consumers re-subscribed by the watchdog or after a broker cancel.", buckets: nil),
        brokerReconnects: .init(help: "Reconnects to the broker.", buckets: nil),
        tasksParked: .init(help: "Early (ETA) tasks parked in the broker's delay queues.", buckets: nil),
        chordsJoined: .init(help: "Chords whose body was published by this worker.", buckets: nil),
        chordsFailed: .init(
            help: "Chords failed by this worker's join, by reason (failed member, deadline).", buckets: nil),
        chordRejoins: .init(
            help: "Chord joins redone after a joiner died mid-join; the body may have run twice.", buckets: nil),
        chordLateParts: .init(
            help: "Chord header results that arrived after their chord was joined or expired.", buckets: nil),
        poolChildRestarts: .init(help: "Process-pool children replaced, by reason.", buckets: nil),
        poolProcesses: .init(help: "Live process-pool children.", buckets: nil),
        globalConcurrencyWait: .init(
            help: "Time a task waited for a global concurrency permit.", buckets: globalWaitBuckets),
        duplicatesDetected: .init(
            help: "Deliveries skipped because this worker already completed their task id.", buckets: nil),
        refillerLeader: .init(help: "1 while this worker publishes the tokens of a global rate limit.", buckets: nil),
        deadLetterDepth: .init(
            help: "Messages in the dead-letter queue celeriac.dead (read every 15 s).", buckets: nil),
        beatMissedRuns: .init(help: "Missed runs dropped by the catch-up policy.", buckets: nil),
        beatSendFailures: .init(help: "Sends that failed and will be retried.", buckets: nil),
        beatIsLeader: .init(help: "1 while this beat is the active (leader) beat.", buckets: nil),
        beatLeaderChanges: .init(help: "Times this beat became or stopped being the leader.", buckets: nil),
        beatSends: .init(help: "Runs sent (confirmed by the broker).", buckets: nil),
        beatLateness: .init(
            help: "Seconds between a run's scheduled instant and its confirmed send.", buckets: beatLatenessBuckets),
        beatLastSend: .init(help: "Unix time of the entry's last send.", buckets: nil),
        beatNextSend: .init(help: "Unix time of the entry's next run.", buckets: nil),
    ]
}
