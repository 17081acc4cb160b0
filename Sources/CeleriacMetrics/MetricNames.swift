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
        chordsJoined, chordsFailed, chordRejoins, chordLateParts,
        poolProcesses, poolChildRestarts,
        duplicatesDetected, redeliveries, rateLimitWait, globalConcurrencyWait, refillerLeader, deadLetterDepth,
        residentMemory, cpuSeconds, openFDs, startTime,
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
}
