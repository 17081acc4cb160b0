import ArgumentParser
import CeleriacAMQP
import CeleriacMessaging
import CeleriacBeat
import CeleriacCore
import Foundation
import Logging

/// Every environment variable Celeriac's commands read, in one place. Flags win over these.
public enum CLIEnvironment {
    /// Broker URL: `CELERIAC_BROKER_URL`, default `amqp://guest:guest@localhost:5672//`.
    public static let brokerURL = "CELERIAC_BROKER_URL"
    public static let metricsPort = "CELERIAC_METRICS_PORT"
    /// `classic` (default) or `quorum`: the type of the queues Celeriac declares (`--queue-type`).
    public static let queueType = "CELERIAC_QUEUE_TYPE"
    public static let defaultBroker = "amqp://guest:guest@localhost:5672//"

    static func value(_ name: String) -> String? { ProcessInfo.processInfo.environment[name] }
}

/// What an application hands to the commands: its tasks.
public struct CeleriacApp: Sendable {
    public var registry: TaskRegistry
    public var name: String
    /// Periodic tasks for `beat` (used when no `--schedule FILE` is given).
    public var schedule: BeatSchedule?
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
    @Option(name: [.customLong("broker"), .customShort("b")], help: "Broker URL (env CELERIAC_BROKER_URL); the nodes of a cluster separated by ';' to fail over. Default amqp://guest:guest@localhost:5672//")
    public var broker: String?

    @Option(name: .customLong("queue-type"), help: "classic or quorum (env CELERIAC_QUEUE_TYPE): the type of the queues declared; quorum for RabbitMQ clusters. Default classic.")
    public var queueTypeName: String?

    @Option(name: .customLong("loglevel"), help: "Log level: debug, info, warning, error.")
    public var loglevel: String = "info"

    public init() {}

    var url: String { broker ?? CLIEnvironment.value(CLIEnvironment.brokerURL) ?? CLIEnvironment.defaultBroker }

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

    func logger(_ label: String) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = Logger.Level(rawValue: loglevel.lowercased()) ?? (loglevel.lowercased() == "warn" ? .warning : .info)
        return logger
    }
}

public struct CeleriacCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "celeriac",
        abstract: "Run Celeriac workers and send tasks (Celery-compatible, over RabbitMQ).",
        subcommands: [WorkerCommand.self, BeatCommand.self, CallCommand.self, ResultCommand.self, PurgeCommand.self,
                       InspectCommand.self, ControlCommand.self, EventsCommand.self, GraphCommand.self, DLQCommand.self, LocksCommand.self,
                       PoolChildCommand.self]
    )
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
