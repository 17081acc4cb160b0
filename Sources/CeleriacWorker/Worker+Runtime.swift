import CeleriacCore
import Logging

/// Changes a running worker, as Celery's remote control and Flower ask for them: revocation, rate limits,
/// concurrency (`pool_grow` / `pool_shrink`) and the queues it consumes (`add_consumer` / `cancel_consumer`).
extension Worker {
    /// Marks a task id revoked; with `terminate`, cancels it if it runs here now.
    public func revoke(_ id: String, terminate: Bool = false) async {
        await execution.revoke(id, terminate: terminate)
    }

    /// The task ids revoked now (remote control `revoked`).
    public func revokedIDs() async -> [String] { await execution.revoked.all }

    /// Changes a task's per-worker rate limit (nil removes it).
    public func setRateLimit(_ task: String, _ limit: RateLimit?) async throws(CeleriacError) {
        guard registry[task] != nil else { throw .configuration("unknown task '\(task)'") }
        await rateLimiter.set(task, perSecond: limit?.perSecond)
    }

    /// Grows or shrinks concurrency by `delta` (never below 1) and returns the new value. The executor follows
    /// (a process pool starts or retires children; running tasks are never interrupted) and the consumers are
    /// re-subscribed with the new prefetch.
    public func resizePool(by delta: Int) async -> Int {
        let (before, after) = await execution.resize(by: delta)
        guard after != before else { return before }
        await intake.resubscribeAll()
        logger.info(
            "concurrency changed", metadata: ["from": .stringConvertible(before), "to": .stringConvertible(after)])
        return after
    }

    /// Starts consuming `queue` (declaring it as Celery would). Returns false if it was consumed already.
    public func addConsumer(_ queue: String) async throws(CeleriacError) -> Bool {
        try await intake.add(queue: queue)
    }

    /// Stops consuming `queue`; unacknowledged deliveries of it still finish. The last queue cannot be
    /// cancelled (use `shutdown`).
    public func cancelConsumer(_ queue: String) async throws(CeleriacError) -> Bool {
        try await intake.cancel(queue: queue)
    }
}
