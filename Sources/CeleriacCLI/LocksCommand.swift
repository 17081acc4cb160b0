import ArgumentParser
import CeleriacAMQP
import CeleriacBroker
import CeleriacCoordination
import Foundation

/// `locks list|clear`: unique-task locks (`celeriac.unique.<key>`).
public struct LocksCommand: AsyncParsableCommand {
    /// `celeriac locks list|clear`; each subcommand opens two connections to `--broker` (the second probes lock
    /// queues).
    public static let configuration = CommandConfiguration(
        commandName: "locks", abstract: "List or clear unique-task locks.", subcommands: [List.self, Clear.self])
    /// Required by ArgumentParser; the values come from parsing the command line.
    public init() {}

    static func connect(_ broker: BrokerOptions, _ name: String) async throws -> any BrokerConnection {
        let amqp = try broker.amqpBroker()
        let connection = amqp.connection(.init(name: name, confirms: true))
        do { try await connection.connect() } catch {
            await connection.close()
            throw CLIError(description: error.description)
        }
        return connection
    }

    /// `locks list`: prints each held lock's key, task, task id, age and TTL, then the count.
    public struct List: AsyncParsableCommand {
        /// `celeriac locks list`; index entries of released or expired locks are dropped on the way.
        public static let configuration = CommandConfiguration(
            commandName: "list", abstract: "Show the unique keys held now, by which task, since when.")
        @OptionGroup var broker: BrokerOptions
        /// Required by ArgumentParser; the values come from parsing the command line.
        public init() {}
        /// Lists the held locks; exits with status 1 on a broker error.
        public func run() async throws {
            let connection = try await LocksCommand.connect(broker, "celeriac-locks")
            let probe = try await LocksCommand.connect(broker, "celeriac-locks-probe")
            defer {
                Task {
                    await connection.close(); await probe.close()
                }
            }
            let held: [UniqueLock.Holder]
            do { held = try await UniqueLock.list(on: connection, probe: probe) } catch {
                throw CLIError(description: error.description)
            }
            let now = Date().timeIntervalSince1970
            for h in held {
                print(
                    "\(h.key)  task=\(h.task)  id=\(h.taskID)  held=\(Int(now - h.since))s  ttl=\(h.ttlMilliseconds / 1000)s"
                )
            }
            print("\(held.count) lock(s) held")
        }
    }

    /// `locks clear KEY... | --all`: deletes lock queues even while their holder runs, so the next send with the key is
    /// accepted.
    public struct Clear: AsyncParsableCommand {
        /// `celeriac locks clear`; prints each key it cleared, then the count.
        public static let configuration = CommandConfiguration(
            commandName: "clear", abstract: "Release unique locks by key (or all), whatever holds them.")
        @OptionGroup var broker: BrokerOptions
        @Argument(help: "Keys to release.") var keys: [String] = []
        @Flag(name: .customLong("all"), help: "Release every lock listed by `locks list`.") var all = false
        /// Required by ArgumentParser; the values come from parsing the command line.
        public init() {}
        /// Requires keys or `--all`, not both; otherwise a usage error (status 64).
        public func validate() throws {
            guard keys.isEmpty != !all else { throw ValidationError("give keys or --all (not both)") }
        }
        /// Clears the locks; exits with status 1 on a broker error (keys before it stay cleared).
        public func run() async throws {
            let connection = try await LocksCommand.connect(broker, "celeriac-locks")
            let probe = try await LocksCommand.connect(broker, "celeriac-locks-probe")
            defer {
                Task {
                    await connection.close(); await probe.close()
                }
            }
            do {
                let targets = all ? try await UniqueLock.list(on: connection, probe: probe).map(\.key) : keys
                for key in targets {
                    try await UniqueLock.clear(key: key, on: probe)
                    print("cleared \(key)")
                }
                print("\(targets.count) lock(s) cleared")
            } catch {
                throw CLIError(description: "\(error)")
            }
        }
    }
}
