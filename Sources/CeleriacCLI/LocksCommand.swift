import ArgumentParser
import CeleriacBroker
import CeleriacAMQP
import CeleriacCoordination
import Foundation

/// `locks list|clear`: unique-task locks (`celeriac.unique.<key>`).
public struct LocksCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "locks", abstract: "List or clear unique-task locks.", subcommands: [List.self, Clear.self])
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

    public struct List: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(commandName: "list", abstract: "Show the unique keys held now, by which task, since when.")
        @OptionGroup var broker: BrokerOptions
        public init() {}
        public func run() async throws {
            let connection = try await LocksCommand.connect(broker, "celeriac-locks")
            let probe = try await LocksCommand.connect(broker, "celeriac-locks-probe")
            defer { Task { await connection.close(); await probe.close() } }
            let held: [UniqueLock.Holder]
            do { held = try await UniqueLock.list(on: connection, probe: probe) } catch { throw CLIError(description: error.description) }
            let now = Date().timeIntervalSince1970
            for h in held {
                print("\(h.key)  task=\(h.task)  id=\(h.taskID)  held=\(Int(now - h.since))s  ttl=\(h.ttlMilliseconds / 1000)s")
            }
            print("\(held.count) lock(s) held")
        }
    }

    public struct Clear: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(commandName: "clear", abstract: "Release unique locks by key (or all), whatever holds them.")
        @OptionGroup var broker: BrokerOptions
        @Argument(help: "Keys to release.") var keys: [String] = []
        @Flag(name: .customLong("all"), help: "Release every lock listed by `locks list`.") var all = false
        public init() {}
        public func validate() throws {
            guard keys.isEmpty != !all else { throw ValidationError("give keys or --all (not both)") }
        }
        public func run() async throws {
            let connection = try await LocksCommand.connect(broker, "celeriac-locks")
            let probe = try await LocksCommand.connect(broker, "celeriac-locks-probe")
            defer { Task { await connection.close(); await probe.close() } }
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
