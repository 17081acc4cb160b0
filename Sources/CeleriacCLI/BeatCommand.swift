import ArgumentParser
import CeleriacAMQP
import CeleriacBeat
import CeleriacBroker
import CeleriacCore
import CeleriacMessaging
import CeleriacMetrics
import Foundation
import Logging
import Prometheus
import ServiceLifecycle

/// `beat`: send periodic tasks on schedule; with several beats, one is active (a lock queue on the broker).
public struct BeatCommand: AsyncParsableCommand {
    /// `celeriac beat`, with `explain ENTRY` as an optional action argument.
    public static let configuration = CommandConfiguration(
        commandName: "beat",
        abstract: "Send periodic tasks on schedule (intervals, crontabs in any time zone, one-off runs).",
        discussion: "`beat explain ENTRY` (or --explain ENTRY) prints the entry's next 10 fire instants and exits.")

    @OptionGroup var broker: BrokerOptions
    @OptionGroup var signing: SigningOptions

    @Argument(help: "`explain ENTRY` prints an entry's next 10 fire instants.")
    var action: [String] = []

    @Option(
        name: [.customShort("s"), .customLong("schedule")],
        help: "YAML schedule file (default: the app's built-in schedule).")
    var schedule: String?

    @Option(
        name: .customLong("explain"), help: "Print the next 10 fire instants of ENTRY with their UTC offsets, and exit."
    )
    var explain: String?

    @Option(name: .customLong("state"), help: "Local state file (written atomically).")
    var statePath: String = "celeriac-beat-state.json"

    @Option(
        name: .customLong("lock"),
        help: "Name of the beat group: the lock queue is NAME.lock, the shared state queue NAME.state.")
    var lockName: String = "celeriac.beat"

    @Flag(
        name: .customLong("no-lock"),
        help: "Run without the broker lock and shared state (a single beat; local state file only).")
    var noLock = false

    @Option(
        name: .customLong("metrics-port"),
        help: "Serve /metrics, /healthz, /readyz on this port (env CELERIAC_METRICS_PORT; 0 = off).")
    var metricsPort: Int?

    @Option(name: .customLong("metrics-bind"), help: "Address for the metrics endpoint.")
    var metricsBind: String = "0.0.0.0"

    /// Required by ArgumentParser; the values come from parsing the command line.
    public init() {}

    func loadSchedule() throws -> BeatSchedule {
        if let schedule {
            do { return try ScheduleFile.load(path: schedule) } catch { throw CLIError(description: "\(error)") }
        }
        if let s = CeleriacApp.current?.schedule { return s }
        throw CLIError(
            description:
                "no schedule: pass --schedule FILE (YAML), or give the app a schedule in code (CeleriacApp.schedule)")
    }

    /// With `explain ENTRY` (or `--explain`), prints the entry's next 10 fire instants and exits without connecting.
    /// Otherwise connects a client to `--broker` and, unless `--no-lock`, a state connection and the lock `NAME.lock`,
    /// then runs beat (and the metrics endpoint) until SIGTERM or SIGINT. Exits with status 1 when there is no
    /// schedule, the schedule is invalid or the broker cannot be reached.
    public func run() async throws {
        let beatSchedule = try loadSchedule()
        if !action.isEmpty || explain != nil {
            let name: String
            if let explain {
                name = explain
            } else {
                guard action.count == 2, action[0] == "explain" else {
                    throw ValidationError(
                        "unknown arguments '\(action.joined(separator: " "))'; did you mean `beat explain ENTRY`?")
                }
                name = action[1]
            }
            print(try Self.explain(name, in: beatSchedule, now: Date()), terminator: "")
            return
        }
        let logger = broker.logger("celeriac.beat")
        let amqp = try broker.amqpBroker()
        var clientConfig = CeleriacClient.Configuration(receiveResults: false, connectionName: "celeriac-beat")
        clientConfig.queueType = try broker.queueType()
        clientConfig.compactQueues = broker.compactQueues()
        clientConfig.signer = try signing.signer()
        let client = CeleriacClient(configuration: clientConfig, broker: amqp)
        do { try await client.start() } catch { throw CLIError(description: "\(error)") }
        var stores: [any BeatStateStore] = [FileStateStore(path: statePath, logger: logger)]
        var election: any LeaderElection = AlwaysLeader()
        let stateConnection = amqp.connection(.init(name: "celeriac-beat-state", confirms: true))
        if !noLock {
            do { try await stateConnection.connect() } catch { throw CLIError(description: "\(error)") }
            stores.append(
                BrokerStateStore(
                    connection: stateConnection, queue: "\(lockName).state", logger: logger,
                    quorum: try broker.queueType() == .quorum))
            election = QueueLeaderLock(broker: amqp, lockQueue: "\(lockName).lock", logger: logger)
        }
        let registry = PrometheusCollectorRegistry()
        let policies = Dictionary(
            beatSchedule.entries.map { ($0.name, $0.catchUp.label) }, uniquingKeysWith: { first, _ in first })
        let metrics = BeatMetrics(
            registry: registry, entries: beatSchedule.entries.map(\.name), catchUpPolicies: policies)
        let beat = Beat(
            schedule: beatSchedule,
            sender: ClientSender(client: client, stateQueue: noLock ? nil : "\(lockName).state"),
            store: CombinedStateStore(stores),
            election: election, observer: metrics, logger: logger)
        var services: [any Service] = []
        let port = metricsPort ?? CLIEnvironment.value(CLIEnvironment.metricsPort).flatMap(Int.init) ?? 0
        if port > 0 {
            let endpoint = MetricsEndpoint(registry: registry, host: metricsBind, port: port, isReady: { true })
            do { try endpoint.start() } catch { throw CLIError(description: "\(error)") }
            logger.info("metrics endpoint up", metadata: ["address": .string("http://\(metricsBind):\(port)/metrics")])
            services.append(endpoint)
        }
        services.append(beat)
        for e in beatSchedule.entries {
            logger.info(
                "beat entry",
                metadata: [
                    "entry": .string(e.name), "task": .string(e.task), "schedule": .string(e.schedule.summary),
                    "catch_up": .string(e.catchUp.description),
                ])
        }
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                cancellationSignals: [.sigquit],
                logger: logger))
        do { try await group.run() } catch {
            logger.error("beat stopped", metadata: ["error": .string("\(error)")])
        }
        await client.close()
        await stateConnection.close()
    }

    /// The `explain` text: the entry, its schedule, and its next 10 fire instants in its zone with UTC offsets.
    public static func explain(_ name: String, in schedule: BeatSchedule, now: Date) throws -> String {
        guard let entry = schedule[name] else {
            throw CLIError(
                description: "no entry '\(name)'; entries: \(schedule.entries.map(\.name).joined(separator: ", "))")
        }
        let utc = TimeZone(identifier: "UTC")!
        var out = "\(entry.name): \(entry.task) \(entry.schedule.summary), catch-up \(entry.catchUp)\n"
        out += "next 10 fire instants after \(ZonedTime.format(now, in: utc)):\n"
        for t in entry.upcoming(after: now, count: 10) {
            out += "  \(ZonedTime.format(t, in: entry.schedule.zone))   (\(ZonedTime.format(t, in: utc)))\n"
        }
        return out
    }
}
