import ArgumentParser
import CeleriacAMQP
import CeleriacBeat
import CeleriacCore
import CeleriacMessaging
import Foundation
import Logging

/// Every environment variable Celeriac's commands read, in one place. Flags win over these.
public enum CLIEnvironment {
    /// Broker URL: `CELERIAC_BROKER_URL`, default `amqp://guest:guest@localhost:5672//`.
    public static let brokerURL = "CELERIAC_BROKER_URL"
    /// Port of the worker's and beat's `/metrics`, `/healthz` and `/readyz` endpoint (`--metrics-port`); unset or 0:
    /// no endpoint.
    public static let metricsPort = "CELERIAC_METRICS_PORT"
    /// `classic` (default) or `quorum`: the type of the queues Celeriac declares (`--queue-type`).
    public static let queueType = "CELERIAC_QUEUE_TYPE"
    /// Comma-separated queues whose task messages use Celeriac's compact form (`--compact-queues`).
    public static let compactQueues = "CELERIAC_COMPACT_QUEUES"
    /// The broker URL when neither `--broker` nor `CELERIAC_BROKER_URL` is given: a local RabbitMQ as `guest`.
    public static let defaultBroker = "amqp://guest:guest@localhost:5672//"

    static func value(_ name: String) -> String? { ProcessInfo.processInfo.environment[name] }

    /// The broker URL a command uses: `flag` (its `--broker`), else `CELERIAC_BROKER_URL`, else ``defaultBroker``.
    public static func broker(_ flag: String?) -> String { flag ?? value(brokerURL) ?? defaultBroker }
}

/// What an application hands to the commands: its tasks.
public struct CeleriacApp: Sendable {
    /// The tasks a worker of this app runs (pool children look them up here too).
    public var registry: TaskRegistry
    /// The application's name, e.g. `celeriac-demo`; for the embedding program, the commands do not read it.
    public var name: String
    /// Periodic tasks for `beat` (used when no `--schedule FILE` is given).
    public var schedule: BeatSchedule?
    /// An app with its tasks and, optionally, beat's built-in schedule.
    public init(name: String, registry: TaskRegistry, schedule: BeatSchedule? = nil) {
        self.name = name
        self.registry = registry
        self.schedule = schedule
    }

    @TaskLocal static var current: CeleriacApp?

    /// Runs the command line of an app that embeds Celeriac's commands (`worker`, `call`, `result`, `purge`).
    public static func main(_ app: CeleriacApp, arguments: [String]? = nil) async {
        await $current.withValue(app) {
            await CeleriacCommand.main(arguments)
        }
    }
}

/// Options shared by every command.
public struct BrokerOptions: ParsableArguments {
    /// `--broker`/`-b`: nil falls back to `CELERIAC_BROKER_URL`, then to ``CLIEnvironment/defaultBroker``.
    @Option(
        name: [.customLong("broker"), .customShort("b")],
        help:
            "Broker URL (env CELERIAC_BROKER_URL); the nodes of a cluster separated by ';' to fail over. Default amqp://guest:guest@localhost:5672//"
    )
    public var broker: String?

    /// `--queue-type`: nil falls back to `CELERIAC_QUEUE_TYPE`, then to `classic`; another value fails the command.
    @Option(
        name: .customLong("queue-type"),
        help:
            "classic or quorum (env CELERIAC_QUEUE_TYPE): the type of the queues declared; quorum for RabbitMQ clusters. Default classic."
    )
    public var queueTypeName: String?

    /// `--compact-queues`: nil falls back to `CELERIAC_COMPACT_QUEUES`, then to none.
    @Option(
        name: .customLong("compact-queues"),
        help:
            "Comma-separated queues that only Celeriac workers consume, whose task messages use Celeriac's compact form (env CELERIAC_COMPACT_QUEUES; docs/compact-form.md). Give workers and producers the same list."
    )
    public var compactQueueNames: String?

    /// `--loglevel`: `debug`, `info` (default), `warning` (or `warn`) or `error`; anything else logs at `info`.
    @Option(name: .customLong("loglevel"), help: "Log level: debug, info, warning, error.")
    public var loglevel: String = "info"

    /// Required by ArgumentParser; the values come from parsing the command line.
    public init() {}

    var url: String { CLIEnvironment.broker(broker) }

    /// The broker the command talks to: RabbitMQ at `--broker` (the CLI's composition root for the broker ports).
    func amqpBroker() throws -> AMQPBroker {
        do { return try AMQPBroker(url) } catch { throw CLIError(description: error.description) }
    }

    func queueType() throws -> QueueType {
        let name = queueTypeName ?? CLIEnvironment.value(CLIEnvironment.queueType) ?? "classic"
        guard let type = QueueType(rawValue: name.lowercased()) else {
            throw CLIError(description: "--queue-type '\(name)' is not classic or quorum")
        }
        return type
    }

    /// The queues named by `--compact-queues` or `CELERIAC_COMPACT_QUEUES`.
    func compactQueues() -> Set<String> {
        let list = compactQueueNames ?? CLIEnvironment.value(CLIEnvironment.compactQueues) ?? ""
        return Set(list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
    }

    func logger(_ label: String) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel =
            Logger.Level(rawValue: loglevel.lowercased()) ?? (loglevel.lowercased() == "warn" ? .warning : .info)
        return logger
    }
}

/// The root command, `celeriac`: dispatches to the subcommands. ``CeleriacApp/main(_:arguments:)`` runs it with the
/// app's tasks available.
public struct CeleriacCommand: AsyncParsableCommand {
    /// The subcommands: `worker`, `beat`, `call`, `result`, `purge`, `inspect`, `control`, `events`, `graph`, `dlq`,
    /// `locks`, and the hidden `pool-child`.
    public static let configuration = CommandConfiguration(
        commandName: "celeriac",
        abstract: "Run Celeriac workers and send tasks (Celery-compatible, over RabbitMQ).",
        subcommands: [
            WorkerCommand.self, BeatCommand.self, CallCommand.self, ResultCommand.self, PurgeCommand.self,
            InspectCommand.self, ControlCommand.self, EventsCommand.self, GraphCommand.self, DLQCommand.self,
            LocksCommand.self,
            PoolChildCommand.self,
        ]
    )
    /// Required by ArgumentParser; the values come from parsing the command line.
    public init() {}
}

/// A failure the user can act on: printed as one line, exit code 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
}

func requireApp() throws -> CeleriacApp {
    guard let app = CeleriacApp.current else {
        throw CLIError(description: "no task registry: embed the commands with CeleriacApp.main(_:)")
    }
    return app
}

func parseJSON(_ text: String, what: String) throws -> JSONValue {
    do { return try JSONValue.parse(text) } catch {
        throw ValidationError("\(what) is not valid JSON (\(error)): \(text)")
    }
}
