import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import CeleriacMetrics
import CeleriacWorker
import Foundation
import Logging
import Prometheus
import ServiceLifecycle
import Synchronization

/// What metrics and events cost: the same drain (N `demo.noop` enqueued, then one async worker runs them all)
/// with both off, and with Prometheus metrics recorded, `/metrics` scraped every 100 ms and Celery events on
/// (`-E`). Alternates off/on rounds so drift in the machine's load hits both sides alike.
struct ObservabilityBench {
    let url: AMQPURL
    let n: Int
    let concurrency: Int
    /// `--observed-side on|off`: run one side only (for profiling it); nil runs both.
    let side: String?
    /// `--observed-with metrics|events`: observe with one of them only (diagnosis); nil observes with both.
    let only: String?
    let rounds = 5

    /// Sends every report to the Prometheus metrics (all of them, as the real worker does), and finished tasks
    /// to the counter too.
    struct Both: WorkerObserver {
        let counter: Counter
        let metrics: WorkerMetrics
        func taskReceived(name: String, queue: String) { metrics.taskReceived(name: name, queue: queue) }
        func taskRedelivered(name: String, queue: String) { metrics.taskRedelivered(name: name, queue: queue) }
        func taskStarted(name: String, queue: String) { metrics.taskStarted(name: name, queue: queue) }
        func taskQueueWait(name: String, queue: String, seconds: Double) {
            metrics.taskQueueWait(name: name, queue: queue, seconds: seconds)
        }
        func taskFinished(name: String, queue: String, outcome: TaskFinishedOutcome, seconds: Double) {
            metrics.taskFinished(name: name, queue: queue, outcome: outcome, seconds: seconds)
            counter.taskFinished(name: name, queue: queue, outcome: outcome, seconds: seconds)
        }
        func messageDeadLettered(queue: String, reason: String) {
            metrics.messageDeadLettered(queue: queue, reason: reason)
        }
        func taskParked(name: String, queue: String) { metrics.taskParked(name: name, queue: queue) }
        func messageRequeued(queue: String) { metrics.messageRequeued(queue: queue) }
        func consumerRestarted(queue: String, reason: String) {
            metrics.consumerRestarted(queue: queue, reason: reason)
        }
        func connectionEvent(_ event: String) { metrics.connectionEvent(event) }
        func stateChanged(ready: Bool) { metrics.stateChanged(ready: ready) }
        func chordEvent(_ event: String) { metrics.chordEvent(event) }
        func poolChildRestarted(reason: String) { metrics.poolChildRestarted(reason: reason) }
        func poolProcesses(_ count: Int) { metrics.poolProcesses(count) }
        func tasksReserved(queue: String, delta: Int) { metrics.tasksReserved(queue: queue, delta: delta) }
        func publishConfirmed(seconds: Double) { metrics.publishConfirmed(seconds: seconds) }
        func resultPublishFailed() { metrics.resultPublishFailed() }
        func rateLimitWait(name: String, seconds: Double) { metrics.rateLimitWait(name: name, seconds: seconds) }
        func prefetchChanged(_ prefetch: Int) { metrics.prefetchChanged(prefetch) }
    }

    func run() async throws {
        var off: [Double] = [], on: [Double] = [], cpuOff: [Double] = [], cpuOn: [Double] = []
        for _ in 0..<rounds {
            if side != "on" {
                let a = try await drain(observed: false)
                off.append(a.rate)
                cpuOff.append(a.cpuMicrosPerTask)
            }
            if side != "off" {
                let b = try await drain(observed: true)
                on.append(b.rate)
                cpuOn.append(b.cpuMicrosPerTask)
            }
        }
        guard side == nil else {
            let (rates, cpu) = side == "on" ? (on, cpuOn) : (off, cpuOff)
            emit("obs.drain_rate_\(side!)", percentile(rates, 0.5), "tasks/s")
            emit("obs.cpu_per_task_\(side!)", percentile(cpu, 0.5), "us")
            return
        }
        let medianOff = percentile(off, 0.5), medianOn = percentile(on, 0.5)
        emit("obs.drain_rate_off", medianOff, "tasks/s")
        emit("obs.drain_rate_metrics_events", medianOn, "tasks/s")
        emit("obs.ratio_on_off", medianOn / medianOff, "ratio")
        // The same from each off/on pair run back to back: drift in the machine's load over the run cancels out.
        emit("obs.ratio_on_off_pairs_median", percentile(zip(on, off).map { $0 / $1 }, 0.5), "ratio")
        // CPU time of this process (worker and scraper) per task: less sensitive to the machine's other load than
        // the rates, so it shows what metrics and events cost the worker itself.
        emit("obs.cpu_per_task_off", percentile(cpuOff, 0.5), "us")
        emit("obs.cpu_per_task_metrics_events", percentile(cpuOn, 0.5), "us")
    }

    /// GET /metrics over a plain socket (as Prometheus does, without an HTTP client library's own cost); returns
    /// the bytes read.
    static func scrape(port: Int) -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else { return 0 }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = Array("GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var total = 0
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            total += n
        }
        return total
    }

    /// Process CPU time (user + system) in microseconds.
    static func cpuMicros() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec)
    }

    func drain(observed: Bool) async throws -> (rate: Double, cpuMicrosPerTask: Double) {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let queue = benchQueue("obs")
        let client = CeleriacClient(
            configuration: .init(defaultQueue: queue, connectionName: "bench-obs-client"), broker: AMQPBroker(url: url))
        try await client.start()
        try await sendNoops(client, count: n, lanes: 32)
        let counter = Counter()
        let registry = PrometheusCollectorRegistry()
        let withMetrics = observed && only != "events", withEvents = observed && only != "metrics"
        let observer: any WorkerObserver =
            withMetrics
            ? Both(
                counter: counter,
                metrics: WorkerMetrics(
                    registry: registry, knownTasks: TaskBench.registry().names, queues: [queue],
                    concurrency: concurrency))
            : counter
        let worker = Worker(
            registry: TaskBench.registry(),
            configuration: .init(
                queues: [queue], concurrency: concurrency,
                prefetchMultiplier: 8, events: withEvents), broker: AMQPBroker(url: url),
            logger: logger, observer: observer)
        var endpoint: MetricsEndpoint?
        var scraper: Scraper?
        if withMetrics {
            let e = MetricsEndpoint(registry: registry, host: "127.0.0.1", port: 0, isReady: { worker.isReady })
            let port = try e.start()
            endpoint = e
            scraper = Scraper(port: port)
        }
        let group = ServiceGroup(configuration: .init(services: [.init(service: worker)], logger: logger))
        let start = ContinuousClock.now
        let cpuStart = Self.cpuMicros()
        let running = Task { try await group.run() }
        try await counter.wait(for: n, while: running)
        let rate = Double(n) / seconds(ContinuousClock.now - start)
        let cpu = (Self.cpuMicros() - cpuStart) / Double(n)
        scraper?.stop()
        endpoint?.stop()
        await group.triggerGracefulShutdown()
        try await running.value
        try await deleteBenchQueue(queue, url: url)
        await client.close()
        return (rate, cpu)
    }
}

/// Scrapes `/metrics` every 100 ms (Prometheus scrapes every 15 s: this is 150 times harsher) from a thread of its
/// own, as Prometheus, another process, would: its blocking socket calls never hold one of the cooperative pool's
/// threads (two on a 2-core machine), which run the worker being measured.
final class Scraper: Sendable {
    private let stopped = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    init(port: Int) {
        let thread = Thread { [self] in
            while !stopped.load(ordering: .relaxed) {
                let bytes = ObservabilityBench.scrape(port: port)
                precondition(bytes > 0, "the metrics endpoint on port \(port) answered nothing")
                usleep(100_000)
            }
            finished.signal()
        }
        thread.name = "bench-scraper"
        thread.start()
    }

    /// Stops scraping and waits for the last scrape to end.
    func stop() {
        stopped.store(true, ordering: .relaxed)
        finished.wait()
    }
}
