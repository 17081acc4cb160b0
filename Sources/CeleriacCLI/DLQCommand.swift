import ArgumentParser
import CeleriacAMQP
import CeleriacBroker
import CeleriacCoordination
import CeleriacMessaging
import Foundation

/// `dlq list|replay|purge`: the dead-letter queue `celeriac.dead`.
public struct DLQCommand: AsyncParsableCommand {
    /// `celeriac dlq list|replay|purge`; each subcommand connects to `--broker` and declares the dead-letter queue
    /// first.
    public static let configuration = CommandConfiguration(
        commandName: "dlq", abstract: "Inspect, replay or purge the dead-letter queue (celeriac.dead).",
        subcommands: [List.self, Replay.self, Purge.self])
    /// Required by ArgumentParser; the values come from parsing the command line.
    public init() {}

    static func open(_ broker: BrokerOptions, _ name: String) async throws -> (any BrokerConnection, DeadLetterQueue) {
        let amqp = try broker.amqpBroker()
        let connection = amqp.connection(.init(name: name, confirms: true))
        let dlq = DeadLetterQueue(connection: connection)
        do {
            try await connection.connect()
            try await dlq.declare()
        } catch {
            await connection.close()
            throw CLIError(description: error.description)
        }
        return (connection, dlq)
    }

    static func row(_ e: DeadLetterQueue.Entry) -> String {
        let age =
            e.age.map { a -> String in a >= 3600 ? "\(Int(a / 3600))h" : a >= 60 ? "\(Int(a / 60))m" : "\(Int(a))s" }
            ?? "?"
        return "\(e.taskID)  \(e.task)  queue=\(e.queue)  age=\(age)  replays=\(e.replays)  reason=\(e.reason)"
    }

    /// `dlq list`: one line per message (id, task, queue, age, replays, reason = first error), then counts by reason.
    public struct List: AsyncParsableCommand {
        /// `celeriac dlq list`: reads the messages without removing them (they go back to the queue).
        public static let configuration = CommandConfiguration(
            commandName: "list", abstract: "List dead-lettered messages and their reasons.")
        @OptionGroup var broker: BrokerOptions
        /// Required by ArgumentParser; the values come from parsing the command line.
        public init() {}
        /// Prints one row per message and the counts by reason; exits with status 1 on a broker error.
        public func run() async throws {
            let (connection, dlq) = try await DLQCommand.open(broker, "celeriac-dlq-list")
            defer { Task { await connection.close() } }
            let entries: [DeadLetterQueue.Entry]
            do { entries = try await dlq.list() } catch { throw CLIError(description: error.description) }
            for e in entries { print(DLQCommand.row(e)) }
            var byReason: [String: Int] = [:]
            for e in entries { byReason[e.reason, default: 0] += 1 }
            print("\(entries.count) message(s) in \(dlq.queue)")
            for (reason, n) in byReason.sorted(by: { $0.value > $1.value }) { print("  \(n)  \(reason)") }
        }
    }

    /// `dlq replay ID | --all [--task NAME]`.
    public struct Replay: AsyncParsableCommand {
        /// `celeriac dlq replay`: each replayed message gets its `replays` count raised by one.
        public static let configuration = CommandConfiguration(
            commandName: "replay",
            abstract: "Republish dead-lettered messages to their original queue, once, and remove them from the DLQ.")
        @OptionGroup var broker: BrokerOptions
        @Argument(help: "Task id to replay.") var id: String?
        @Flag(name: .customLong("all"), help: "Replay every message (with --task: every message of that task).")
        var all = false
        @Option(name: .customLong("task"), help: "Only messages of this task name.") var task: String?
        /// Required by ArgumentParser; the values come from parsing the command line.
        public init() {}
        /// Requires exactly one of a task id and `--all`; otherwise a usage error (status 64).
        public func validate() throws {
            guard (id != nil) != all else { throw ValidationError("give a task id or --all (not both)") }
        }
        /// Replays the chosen messages (each dead copy is acked only after the broker confirmed the new one) and prints
        /// them. Exits with status 1 when the given id is not in the queue or the broker fails.
        public func run() async throws {
            let (connection, dlq) = try await DLQCommand.open(broker, "celeriac-dlq-replay")
            defer { Task { await connection.close() } }
            let replayed: [DeadLetterQueue.Entry]
            do { replayed = try await dlq.replay(id: id, task: task) } catch {
                throw CLIError(description: error.description)
            }
            for e in replayed { print("replayed \(e.taskID) \(e.task) -> \(e.queue)") }
            print("\(replayed.count) message(s) replayed")
            if replayed.isEmpty, let id {
                throw CLIError(description: "no message with task id \(id) in \(dlq.queue) (see `dlq list`)")
            }
        }
    }

    /// `dlq purge`: empties the dead-letter queue; the messages are gone for good (no replay afterwards).
    public struct Purge: AsyncParsableCommand {
        /// `celeriac dlq purge`: prints how many messages it deleted.
        public static let configuration = CommandConfiguration(
            commandName: "purge", abstract: "Delete every message in the dead-letter queue.")
        @OptionGroup var broker: BrokerOptions
        /// Required by ArgumentParser; the values come from parsing the command line.
        public init() {}
        /// Purges the queue and prints the count; exits with status 1 on a broker error.
        public func run() async throws {
            let (connection, dlq) = try await DLQCommand.open(broker, "celeriac-dlq-purge")
            defer { Task { await connection.close() } }
            do { print("purged \(try await dlq.purge()) message(s) from \(dlq.queue)") } catch {
                throw CLIError(description: error.description)
            }
        }
    }
}
