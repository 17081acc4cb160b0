import ArgumentParser
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import CeleriacMetrics
import CeleriacPool
import CeleriacWorker
import Logging
import Prometheus
import ServiceLifecycle
import UnixSignals

/// `worker`: consume queues and run tasks, with Celery's flag names.
public struct WorkerCommand: AsyncParsableCommand {
    /// `celeriac worker`; flags take Celery's names where Celery has one (`-Q`, `-c`, `-n`, `-E`,
    /// `--prefetch-multiplier`).
    public static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "Consume queues and run tasks.")

    @OptionGroup var broker: BrokerOptions
    @OptionGroup var signing: SigningOptions
    @OptionGroup var hardening: WorkerHardeningOptions
    @OptionGroup var coordination: CoordinationOptions

    @Option(name: [.customShort("Q"), .customLong("queues")], help: "Comma-separated queues to consume.")
    var queues: String = Topology.defaultQueue

    @Option(name: [.customShort("c"), .customLong("concurrency")], help: "Tasks run at once.")
    var concurrency: Int = 4

    @Option(name: [.customShort("n"), .customLong("hostname")], help: "Node name (default celeriac@<hostname>).")
    var hostname: String?

    @Option(
        name: .customLong("prefetch-multiplier"),
        help: "Prefetch = concurrency × this; with adaptive prefetch (the default), the least.")
    var prefetchMultiplier: Int = 1

    @Flag(
        name: .customLong("adaptive-prefetch"), inversion: .prefixedNo,
        help:
            "Size prefetch from the worker's pace while messages wait in the queue: about 50 ms of work, up to concurrency × --max-prefetch-multiplier. --no-adaptive-prefetch fixes it at concurrency × --prefetch-multiplier (see docs/worker.md)."
    )
    var adaptivePrefetch = true

    @Option(
        name: .customLong("max-prefetch-multiplier"),
        help: "With adaptive prefetch: the highest multiplier.")
    var maxPrefetchMultiplier: Int = Worker.AdaptivePrefetch().maxMultiplier

    @Option(
        name: .customLong("metrics-port"),
        help: "Serve /metrics, /healthz, /readyz on this port (env CELERIAC_METRICS_PORT; 0 = off).")
    var metricsPort: Int?

    @Option(name: .customLong("metrics-bind"), help: "Address for the metrics endpoint.")
    var metricsBind: String = "0.0.0.0"

    @Option(name: .customLong("grace-period"), help: "Seconds running tasks may finish after SIGTERM (warm shutdown).")
    var gracePeriod: Int = 30

    @Option(name: .customLong("max-priority"), help: "Declare queues with x-max-priority (0-9 priorities).")
    var maxPriority: Int?

    @Option(
        name: .customLong("max-message-size"),
        help: "Largest message body accepted, in bytes; larger ones are dead-lettered.")
    var maxMessageSize: Int = 10 * 1024 * 1024

    @Flag(
        name: [.customShort("E"), .customLong("task-events")],
        help: "Send Celery events (worker heartbeats, task events) for Flower and `celery events`.")
    var taskEvents = false

    @Flag(
        name: .customLong("no-revocation-log"),
        help:
            "Do not read or write the broker's revocation log (celeriac.revoked); revocations then live in memory only."
    )
    var noRevocationLog = false

    @Flag(name: .customLong("acks-early"), help: "Ack when a task starts (at-most-once) instead of after its result.")
    var acksEarly = false

    @Flag(
        name: .customLong("track-started"),
        help: "Report STARTED (pid, hostname) to the caller when a task starts, as Celery's task_track_started.")
    var trackStarted = false

    @Option(
        name: .customLong("pool"),
        help:
            "process (default): each task runs in one of -c child processes, crash-isolated; async: in the worker process."
    )
    var pool: String = "process"

    @Option(
        name: .customLong("time-limit"),
        help: "Hard time limit in seconds for tasks that set none (process pool: the child is killed).")
    var timeLimit: Double?

    @Option(
        name: .customLong("soft-time-limit"),
        help: "Soft time limit in seconds for tasks that set none (the task is cancelled).")
    var softTimeLimit: Double?

    @Option(name: .customLong("max-tasks-per-child"), help: "Process pool: replace a child after this many tasks.")
    var maxTasksPerChild: Int?

    @Option(
        name: .customLong("max-memory-per-child"),
        help: "Process pool: replace a child whose resident memory exceeds this many KiB after a task.")
    var maxMemoryPerChild: Int?

    @Option(
        name: .customLong("max-worker-lost"),
        help:
            "Process pool, tasks with reject_on_worker_lost: dead-letter a message after this many deliveries killed a child."
    )
    var maxWorkerLost: Int = 2

    @Option(
        name: .customLong("pipeline-depth"),
        help:
            "Process pool: tasks a child may hold at once, the running one and those queued behind it (1: no pipelining)."
    )
    var pipelineDepth: Int = 2

    /// Required by ArgumentParser; the values come from parsing the command line.
    public init() {}

    /// Checks the flag values before anything connects; a bad value exits with a usage error (status 64).
    public func validate() throws {
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        guard prefetchMultiplier >= 1 else { throw ValidationError("--prefetch-multiplier must be at least 1") }
        guard maxPrefetchMultiplier >= 1 else { throw ValidationError("--max-prefetch-multiplier must be at least 1") }
        if let maxPriority, !(1...255).contains(maxPriority) {
            throw ValidationError("--max-priority must be in 1...255")
        }
        guard pool == "process" || pool == "async" else { throw ValidationError("--pool must be process or async") }
        if let timeLimit, timeLimit <= 0 { throw ValidationError("--time-limit must be positive") }
        if let softTimeLimit, softTimeLimit <= 0 { throw ValidationError("--soft-time-limit must be positive") }
        if let maxTasksPerChild, maxTasksPerChild < 1 {
            throw ValidationError("--max-tasks-per-child must be at least 1")
        }
        if let maxMemoryPerChild, maxMemoryPerChild < 1 {
            throw ValidationError("--max-memory-per-child must be at least 1 (KiB)")
        }
        guard maxWorkerLost >= 1 else { throw ValidationError("--max-worker-lost must be at least 1") }
        guard pipelineDepth >= 1 else { throw ValidationError("--pipeline-depth must be at least 1") }
        _ = try coordination.limits()
    }

    /// Runs a worker of the app's tasks (see ``CeleriacApp/main(_:arguments:)``) on the broker at `--broker`, with the
    /// process pool or in-process, and the metrics endpoint when a port is set. SIGTERM or SIGINT starts the warm
    /// shutdown (running tasks get `--grace-period` seconds); a second signal, or SIGQUIT, is a cold shutdown. A
    /// failure the user can act on (no app, a refused flag combination, a worker error) prints one line and exits with
    /// status 1.
    public func run() async throws {
        let app = try requireApp()
        let logger = broker.logger("celeriac.worker")
        let amqp = try broker.amqpBroker()
        let queueList = queues.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
            !$0.isEmpty
        }
        var config = Worker.Configuration(
            queues: queueList, concurrency: concurrency, prefetchMultiplier: prefetchMultiplier,
            hostname: hostname ?? "celeriac@\(Hostname.current)", gracePeriod: .seconds(gracePeriod),
            limits: .init(maxBodyBytes: maxMessageSize), maxPriority: maxPriority, acksEarly: acksEarly,
            events: taskEvents)
        config.adaptivePrefetch = adaptivePrefetch ? Worker.AdaptivePrefetch(maxMultiplier: maxPrefetchMultiplier) : nil
        config.timeLimit = timeLimit
        config.softTimeLimit = softTimeLimit
        config.durableRevocations = !noRevocationLog
        config.trackStarted = trackStarted
        try hardening.apply(to: &config, signing: signing)
        config.globalLimits = try coordination.limits()
        config.duplicateWindow = max(0, coordination.duplicateWindow)
        config.queueType = try broker.queueType()
        config.compactQueues = broker.compactQueues()
        if config.queueType == .quorum, maxPriority != nil {
            throw CLIError(
                description:
                    "--max-priority cannot be used with --queue-type quorum (RabbitMQ 3.x quorum queues have no priorities)"
            )
        }
        let registry = PrometheusCollectorRegistry()
        let metrics = WorkerMetrics(
            registry: registry, knownTasks: app.registry.names, queues: queueList, concurrency: concurrency)
        let executor: any TaskExecutor
        if pool == "process" {
            // The children are this same executable in its hidden `pool-child` mode (spawned, not forked).
            executor = ProcessPool(
                configuration: .init(
                    executable: "/proc/self/exe",
                    arguments: ["pool-child", "--hostname", config.hostname, "--loglevel", broker.loglevel],
                    processes: concurrency, maxTasksPerChild: maxTasksPerChild,
                    maxMemoryPerChild: maxMemoryPerChild.map { Int64($0) * 1024 },
                    maxWorkerLost: maxWorkerLost, pipelineDepth: pipelineDepth), observer: metrics)
        } else {
            executor = InProcessExecutor()
        }
        let worker = Worker(
            registry: app.registry, configuration: config, broker: amqp, logger: logger, observer: metrics,
            executor: executor)
        // ServiceGroup shuts services down in reverse order: the endpoint comes first so that it stops last and
        // /readyz reports 503 (not "connection refused") while the worker drains.
        var services: [any Service] = []
        let port = metricsPort ?? CLIEnvironment.value(CLIEnvironment.metricsPort).flatMap(Int.init) ?? 0
        if port > 0 {
            let endpoint = MetricsEndpoint(
                registry: registry, host: metricsBind, port: port, isReady: { worker.isReady })
            do { try endpoint.start() } catch { throw CLIError(description: "\(error)") }
            logger.info("metrics endpoint up", metadata: ["address": .string("http://\(metricsBind):\(port)/metrics")])
            services.append(endpoint)
        }
        services.append(worker)
        var groupConfig = ServiceGroupConfiguration(
            services: services.map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            cancellationSignals: [.sigquit],
            logger: logger)
        // After the grace period running tasks are cancelled (cold shutdown); unacked messages go back to the queue.
        groupConfig.maximumGracefulShutdownDuration = .seconds(gracePeriod)
        let group = ServiceGroup(configuration: groupConfig)
        let running = Task { try await group.run() }
        // The first SIGTERM/SIGINT starts the warm shutdown (ServiceGroup); a second one is a cold shutdown:
        // running tasks are cancelled and unacked messages go back to the queue.
        let coldShutdown = Task {
            var seen = 0
            for await _ in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                seen += 1
                if seen >= 2 {
                    logger.warning("second signal: cold shutdown, cancelling running tasks")
                    running.cancel()
                    return
                }
            }
        }
        defer { coldShutdown.cancel() }
        do {
            try await running.value
        } catch let error as CeleriacError {
            throw CLIError(description: error.description)
        } catch is CancellationError {
            logger.info("worker stopped (cold shutdown)")
        }
    }
}
