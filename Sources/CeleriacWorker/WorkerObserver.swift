import CeleriacCore

/// What a worker reports while it runs; `CeleriacMetrics` turns these into Prometheus metrics.
/// Every method has a no-op default, so an observer implements only what it needs.
public protocol WorkerObserver: Sendable {
    /// A delivery was decoded as a task message (Celery's `task-received`), before the checks that may keep it from
    /// running (unregistered, revoked, expired, early). `WorkerMetrics`: `celeriac_tasks_received_total` and the
    /// queue's `celeriac_worker_last_delivery_timestamp_seconds`.
    func taskReceived(name: String, queue: String)
    /// A task delivery carried the broker's redelivered flag (an earlier delivery was not acked: a worker died,
    /// lost its connection, or requeued it). Counts the at-least-once cost.
    func taskRedelivered(name: String, queue: String)
    /// The task body is about to run (Celery's `task-started`; with `acksEarly` its message was just acked).
    /// `WorkerMetrics`: `celeriac_tasks_started_total`, and one more in the queue's `celeriac_tasks_active`.
    func taskStarted(name: String, queue: String)
    /// Seconds from publish (or from its ETA, if later) to start; only for messages that carry the send time.
    func taskQueueWait(name: String, queue: String, seconds: Double)
    /// A task finished: how, and its run time (0 when it did not run).
    func taskFinished(name: String, queue: String, outcome: TaskFinishedOutcome, seconds: Double)
    /// A message that could not be run went to the dead-letter queue; reason is a short fixed label.
    func messageDeadLettered(queue: String, reason: String)
    /// An early task (ETA or countdown at least 1 s away) was republished to the broker's delay queues and acked;
    /// it is received again when due. `WorkerMetrics`: `celeriac_tasks_parked_total`.
    func taskParked(name: String, queue: String)
    /// A prefetched, not started message was handed back to the queue (warm shutdown).
    func messageRequeued(queue: String)
    /// A queue's consumer was subscribed again; reason `watchdog` (messages ready, slots free, nothing delivered)
    /// or `resubscribed` (the broker cancelled it). `WorkerMetrics`: `celeriac_worker_consumer_stalls_total`.
    func consumerRestarted(queue: String, reason: String)
    /// The consumer connection changed: `disconnected`, `reconnected` or `consumer_cancelled`.
    /// `WorkerMetrics` sets `celeriac_broker_connected` and counts `celeriac_broker_reconnects_total`.
    func connectionEvent(_ event: String)
    /// True once the worker consumes (queues declared, consumers and remote control up); false when warm
    /// shutdown begins. `WorkerMetrics`: `celeriac_worker_ready`.
    func stateChanged(ready: Bool)
    /// A chord join step: joined, failed, deadline, rejoined (a joiner died after marking), late_part.
    func chordEvent(_ event: String)
    /// Process pool: a child process was replaced; reason: worker_lost, time_limit, max_tasks, max_memory.
    func poolChildRestarted(reason: String)
    /// Process pool: live child processes now.
    func poolProcesses(_ count: Int)
    /// Deliveries received but not started (waiting for a slot) changed by `delta`.
    func tasksReserved(queue: String, delta: Int)
    /// A confirmed publish (results, retries, follow-ups, dead letters) took this long, retries included.
    func publishConfirmed(seconds: Double)
    /// A result could not be published (broker gone past the grace period); its message stays unacked.
    func resultPublishFailed()
    /// A task waited this long for its per-worker rate limit.
    func rateLimitWait(name: String, seconds: Double)
    /// The prefetch per consumer changed (adaptive prefetch, `pool_grow` / `pool_shrink`); the consumers are
    /// subscribed afresh with it. `WorkerMetrics`: `celeriac_worker_prefetch`.
    func prefetchChanged(_ prefetch: Int)
}

extension WorkerObserver {
    /// Does nothing; `WorkerMetrics` counts it in `celeriac_tasks_received_total`.
    public func taskReceived(name: String, queue: String) {}
    /// Does nothing; `WorkerMetrics` counts it in `celeriac_task_redeliveries_total`.
    public func taskRedelivered(name: String, queue: String) {}
    /// Does nothing; `WorkerMetrics` counts it and raises `celeriac_tasks_active`.
    public func taskStarted(name: String, queue: String) {}
    /// Does nothing; `WorkerMetrics` records it in the `celeriac_task_queue_wait_seconds` histogram.
    public func taskQueueWait(name: String, queue: String, seconds: Double) {}
    /// Does nothing; `WorkerMetrics` counts `celeriac_tasks_finished_total`, records `celeriac_task_runtime_seconds`.
    public func taskFinished(name: String, queue: String, outcome: TaskFinishedOutcome, seconds: Double) {}
    /// Does nothing; `WorkerMetrics` counts it in `celeriac_messages_dead_lettered_total`.
    public func messageDeadLettered(queue: String, reason: String) {}
    /// Does nothing; `WorkerMetrics` counts it in `celeriac_tasks_parked_total`.
    public func taskParked(name: String, queue: String) {}
    /// Does nothing; no metric records it (the broker's ready count shows the message back).
    public func messageRequeued(queue: String) {}
    /// Does nothing; `WorkerMetrics` counts it in `celeriac_worker_consumer_stalls_total`.
    public func consumerRestarted(queue: String, reason: String) {}
    /// Does nothing; `WorkerMetrics` sets `celeriac_broker_connected` from it.
    public func connectionEvent(_ event: String) {}
    /// Does nothing; `WorkerMetrics` sets `celeriac_worker_ready` from it.
    public func stateChanged(ready: Bool) {}
    /// Does nothing; `WorkerMetrics` counts it in the `celeriac_chord*_total` counters.
    public func chordEvent(_ event: String) {}
    /// Does nothing; `WorkerMetrics` counts `celeriac_pool_child_restarts_total` (reasons include `spawn_failed`).
    public func poolChildRestarted(reason: String) {}
    /// Does nothing; `WorkerMetrics` sets `celeriac_pool_processes` from it.
    public func poolProcesses(_ count: Int) {}
    /// Does nothing; `WorkerMetrics` moves `celeriac_tasks_reserved` by `delta`.
    public func tasksReserved(queue: String, delta: Int) {}
    /// Does nothing; `WorkerMetrics` records it in the `celeriac_publish_confirm_seconds` histogram.
    public func publishConfirmed(seconds: Double) {}
    /// Does nothing; `WorkerMetrics` counts it in `celeriac_result_publish_failures_total`.
    public func resultPublishFailed() {}
    /// Does nothing; `WorkerMetrics` records it in `celeriac_rate_limit_wait_seconds` with `scope` `worker`.
    public func rateLimitWait(name: String, seconds: Double) {}
    /// Does nothing; `WorkerMetrics` sets `celeriac_worker_prefetch` from it.
    public func prefetchChanged(_ prefetch: Int) {}
}

/// The observer a `Worker` (or a `ProcessPool`) gets when none is passed: records nothing. Pass `WorkerMetrics`
/// from `CeleriacMetrics` for Prometheus.
public struct NoObserver: WorkerObserver {
    /// Stateless; every method is the no-op default.
    public init() {}
}
