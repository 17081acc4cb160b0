import CeleriacCoordination
import CeleriacCore
import CeleriacMessaging
import Tracing

extension Worker {
    /// How a worker consumes and runs tasks: what `celeriac-demo worker`'s options set, Celery's worker settings
    /// (`-Q`, `-c`, `worker_prefetch_multiplier`, `task_acks_late`, `-E`, time limits) plus Celeriac's own (watchdog,
    /// signing, global limits, duplicate window, queue type). The worker keeps it as given; remote-control
    /// commands (`pool_grow`, `time_limit`, `add_consumer`) change the running worker, not this value.
    public struct Configuration: Sendable {
        /// Queues to consume (`-Q a,b`).
        public var queues: [String]
        /// Tasks run at once (`-c N`).
        public var concurrency: Int
        /// Prefetch = concurrency × this (`--prefetch-multiplier`); with ``adaptivePrefetch``, the least.
        public var prefetchMultiplier: Int
        /// Prefetch that follows the worker's pace and the queue's backlog, from ``prefetchMultiplier`` up to
        /// ``AdaptivePrefetch/maxMultiplier`` (on by default; `--no-adaptive-prefetch` turns it off). nil: prefetch
        /// stays concurrency × ``prefetchMultiplier``.
        public var adaptivePrefetch: AdaptivePrefetch? = AdaptivePrefetch()
        /// Node name (`-n`), `celeriac@<hostname>` by default.
        public var hostname: String
        /// Warm shutdown: how long running tasks may finish after SIGTERM.
        public var gracePeriod: Duration
        /// Decoding limits (message size, JSON depth).
        public var limits: TaskCodec.Limits
        /// Declare work queues with `x-max-priority`.
        public var maxPriority: Int?
        /// The watchdog re-subscribes a queue that has messages ready and free slots but delivered nothing for
        /// this long (the "alive but not consuming" worker of celery#8030).
        public var watchdogInterval: Duration
        /// Ack when a task starts instead of after it finished (Celery's default; at-most-once for that task).
        public var acksEarly: Bool
        /// Send Celery events (`-E`): worker heartbeats and task events for Flower / `celery events`.
        public var events: Bool
        /// Worker-wide hard time limit in seconds (`--time-limit`), for tasks and messages that set none.
        public var timeLimit: Double?
        /// Worker-wide soft time limit in seconds (`--soft-time-limit`).
        public var softTimeLimit: Double?
        /// Replay and extend the broker's revocation log (`celeriac.revoked`, a stream queue) so revocations
        /// survive restarts and reach workers started later. Needs RabbitMQ ≥ 3.9.
        public var durableRevocations: Bool = true
        /// A consumer span per task run, producer spans for what it sends (README "Tracing"); off while `NoOpTracer`.
        public var tracer: (any Tracer)? = InstrumentationSystem.tracer
        /// Message signing and remote-control limits (Worker+Security.swift).
        public var security = Security()
        /// Limits shared by all workers through the broker (`--global-rate-limit`, `--global-concurrency`).
        public var globalLimits: [GlobalLimit] = []
        /// Completed task ids remembered to skip duplicate deliveries (0 = off).
        public var duplicateWindow: Int = 10_000
        /// Type of the queues this worker declares (`--queue-type`): quorum for RabbitMQ clusters.
        public var queueType: QueueType = .classic
        /// Queues whose task messages are in Celeriac's compact form (`--compact-queues`, `MessageForm.compact`):
        /// the worker declares them with the dead-letter exchange and sends its retries and follow-ups to them in
        /// that form. It reads both forms on every queue whatever this says. Give clients the same set.
        public var compactQueues: Set<String> = []
        /// The time the worker reads for ETAs, `expires`, retries, time limits, rate limits and the watchdog
        /// (`ManualClock` in tests; the process pool's children keep their own real clock for time limits).
        public var clock: any CeleriacClock = SystemClock()
        /// Your own ``TaskMiddleware``, run around every task after the worker's own (metrics, events, tracing,
        /// workflow graph), first to last.
        public var middleware: [any TaskMiddleware] = []
        /// `--track-started`: every task reports `STARTED` (with the pid running it and the node name) to its caller
        /// just before its body runs, as Celery's `task_track_started`. A task's `TaskOptions.trackStarted` turns it
        /// on for that task alone.
        public var trackStarted: Bool = false

        /// The defaults: queue `celery`, 4 tasks at once (Celery uses the CPU count), prefetch multiplier 1
        /// (Celery's is 4; with 1 a busy worker does not hoard messages an idle one could run) that adaptive
        /// prefetch deepens only into the worker's share of a backlog of quick tasks,
        /// `celeriac@<hostname>`, a 30 s grace period and watchdog, ack after the task finished (Celery's
        /// `acks_late`), no events. `concurrency` and `prefetchMultiplier` below 1 are raised to 1. The properties
        /// without a parameter keep their own defaults; set them afterwards.
        public init(
            queues: [String] = [Topology.defaultQueue], concurrency: Int = 4, prefetchMultiplier: Int = 1,
            hostname: String = "celeriac@\(Hostname.current)", gracePeriod: Duration = .seconds(30),
            limits: TaskCodec.Limits = .init(), maxPriority: Int? = nil, watchdogInterval: Duration = .seconds(30),
            acksEarly: Bool = false, events: Bool = false
        ) {
            self.queues = queues
            self.concurrency = max(1, concurrency)
            self.prefetchMultiplier = max(1, prefetchMultiplier)
            self.hostname = hostname
            self.gracePeriod = gracePeriod
            self.limits = limits
            self.maxPriority = maxPriority
            self.watchdogInterval = watchdogInterval
            self.acksEarly = acksEarly
            self.events = events
        }

        /// The AMQP prefetch count (`basic.qos`) of each queue's consumer at start: at most this many unacked
        /// deliveries per queue. After `pool_grow` / `pool_shrink` the consumers use the new concurrency instead,
        /// and ``adaptivePrefetch`` may raise the multiplier.
        public var prefetch: Int { concurrency * prefetchMultiplier }
    }
}
