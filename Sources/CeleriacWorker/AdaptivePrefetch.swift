extension Worker {
    /// Prefetch that follows the worker's pace (``Worker/Configuration/adaptivePrefetch``; on by default,
    /// `--no-adaptive-prefetch` turns it off).
    ///
    /// A worker starts at prefetch = concurrency × ``Worker/Configuration/prefetchMultiplier``. While it finishes
    /// tasks quickly and messages wait in its queues, it raises the multiplier so that it holds about
    /// ``reservedWork`` of work at its current pace (a no-op task then never waits for the broker's round trip), up
    /// to ``maxMultiplier``; while it finishes them slowly (long tasks, or little work), it comes back down to the
    /// configured multiplier, so a busy worker does not hold long tasks that an idle one could run. The pace is
    /// measured over the last 32 finished tasks. It grows only into its share of a backlog: before a deeper prefetch
    /// it counts the messages ready in its queues, each divided by the queue's consumers, and grows by at most that
    /// share (without a backlog the broker hands each new message to a consumer with room as it arrives, so depth
    /// gains nothing and could only take work from another worker); declined, it asks again 32 completions later.
    /// Per-consumer prefetch cannot change on a live consumer (RabbitMQ applies `basic.qos` to consumers created
    /// after it, and quorum queues refuse the global form), so a change subscribes the queues afresh; deliveries
    /// already received are kept and finish as usual. Changes need the wanted multiplier to double or halve, so a
    /// worker re-subscribes a few times per change of workload, not per task. The prefetch in force is in
    /// `celeriac inspect stats` (`prefetch_count`) and in `/metrics` (`celeriac_worker_prefetch`).
    public struct AdaptivePrefetch: Sendable, Equatable {
        /// The highest multiplier (prefetch ≤ concurrency × this). Raised to the configured multiplier if below.
        public var maxMultiplier: Int
        /// The work, in time at the worker's current pace, that it may hold beyond what it runs.
        public var reservedWork: Duration

        /// Adaptive prefetch up to `maxMultiplier`, holding about `reservedWork` of work.
        public init(maxMultiplier: Int = 32, reservedWork: Duration = .milliseconds(50)) {
            self.maxMultiplier = max(1, maxMultiplier)
            self.reservedWork = reservedWork
        }
    }
}
