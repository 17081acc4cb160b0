import CeleriacWorker

/// Every metric name Celeriac exports, in one place (`spec/metrics.md` is the catalogue). The Grafana drift test
/// checks the dashboards against ``allNames``.
public enum MetricNames {
    public static let tasksReceived = "celeriac_tasks_received_total"
    public static let tasksStarted = "celeriac_tasks_started_total"
    public static let tasksFinished = "celeriac_tasks_finished_total"
    public static let taskRuntime = "celeriac_task_runtime_seconds"
    public static let tasksActive = "celeriac_tasks_active"
    public static let taskQueueWait = "celeriac_task_queue_wait_seconds"
    public static let tasksReserved = "celeriac_tasks_reserved"
    public static let publishConfirm = "celeriac_publish_confirm_seconds"
    public static let resultPublishFailures = "celeriac_result_publish_failures_total"
    public static let workerConcurrency = "celeriac_worker_concurrency"
    public static let lastDelivery = "celeriac_worker_last_delivery_timestamp_seconds"
    public static let consumerStalls = "celeriac_worker_consumer_stalls_total"
    public static let deadLettered = "celeriac_messages_dead_lettered_total"
    public static let tasksParked = "celeriac_tasks_parked_total"
    public static let brokerConnected = "celeriac_broker_connected"
    public static let brokerReconnects = "celeriac_broker_reconnects_total"
    public static let workerReady = "celeriac_worker_ready"
    public static let poolProcesses = "celeriac_pool_processes"
    public static let poolChildRestarts = "celeriac_pool_child_restarts_total"
    public static let buildInfo = "celeriac_build_info"
    public static let chordsJoined = "celeriac_chords_joined_total"
    public static let chordsFailed = "celeriac_chords_failed_total"
    public static let chordRejoins = "celeriac_chord_rejoins_total"
    public static let chordLateParts = "celeriac_chord_late_parts_total"
    public static let duplicatesDetected = "celeriac_task_duplicates_detected_total"
    public static let redeliveries = "celeriac_task_redeliveries_total"
    public static let rateLimitWait = "celeriac_rate_limit_wait_seconds"
    public static let globalConcurrencyWait = "celeriac_global_concurrency_wait_seconds"
    public static let refillerLeader = "celeriac_rate_limit_refiller_leader"
    public static let deadLetterDepth = "celeriac_dead_letter_messages"
    public static let residentMemory = "process_resident_memory_bytes"
    public static let cpuSeconds = "process_cpu_seconds_total"
    public static let openFDs = "process_open_fds"
    public static let startTime = "process_start_time_seconds"

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
    public static let stallReasons = ["watchdog", "resubscribed"]
    public static let reconnectReasons = ["connection_lost"]

    /// Outcome label values of ``tasksFinished``.
    public static let outcomes = TaskFinishedOutcome.allCases.map(\.rawValue)
}
