import CeleriacCore

/// What a worker reports while it runs; `CeleriacMetrics` turns these into Prometheus metrics.
/// Every method has a no-op default, so an observer implements only what it needs.
public protocol WorkerObserver: Sendable {
    func taskReceived(name: String, queue: String)
    /// A task delivery carried the broker's redelivered flag (an earlier delivery was not acked: a worker died,
    /// lost its connection, or requeued it). Counts the at-least-once cost.
    func taskRedelivered(name: String, queue: String)
    func taskStarted(name: String, queue: String)
    /// Seconds from publish (or from its ETA, if later) to start; only for messages that carry the send time.
    func taskQueueWait(name: String, queue: String, seconds: Double)
    /// A task finished: how, and its run time (0 when it did not run).
    func taskFinished(name: String, queue: String, outcome: TaskFinishedOutcome, seconds: Double)
    /// A message that could not be run went to the dead-letter queue; reason is a short fixed label.
    func messageDeadLettered(queue: String, reason: String)
    func taskParked(name: String, queue: String)
    /// A prefetched, not started message was handed back to the queue (warm shutdown).
    func messageRequeued(queue: String)
    func consumerRestarted(queue: String, reason: String)
    func connectionEvent(_ event: String)
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
}

extension WorkerObserver {
    public func taskReceived(name: String, queue: String) {}
    public func taskRedelivered(name: String, queue: String) {}
    public func taskStarted(name: String, queue: String) {}
    public func taskQueueWait(name: String, queue: String, seconds: Double) {}
    public func taskFinished(name: String, queue: String, outcome: TaskFinishedOutcome, seconds: Double) {}
    public func messageDeadLettered(queue: String, reason: String) {}
    public func taskParked(name: String, queue: String) {}
    public func messageRequeued(queue: String) {}
    public func consumerRestarted(queue: String, reason: String) {}
    public func connectionEvent(_ event: String) {}
    public func stateChanged(ready: Bool) {}
    public func chordEvent(_ event: String) {}
    public func poolChildRestarted(reason: String) {}
    public func poolProcesses(_ count: Int) {}
    public func tasksReserved(queue: String, delta: Int) {}
    public func publishConfirmed(seconds: Double) {}
    public func resultPublishFailed() {}
    public func rateLimitWait(name: String, seconds: Double) {}
}

public struct NoObserver: WorkerObserver {
    public init() {}
}
