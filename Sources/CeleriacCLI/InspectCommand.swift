import ArgumentParser
import CeleriacAMQP
import CeleriacBroker
import CeleriacCore
import CeleriacMessaging
import Foundation

/// Options shared by `inspect` and `control`.
struct ControlOptions: ParsableArguments {
    @Option(
        name: [.customShort("d"), .customLong("destination")], help: "Comma-separated node names (default: every node)."
    )
    var destination: String?
    @Option(name: [.customShort("t"), .customLong("timeout")], help: "Seconds to wait for replies.")
    var timeout: Double = 1
    @Flag(name: .customLong("json"), help: "Print the replies as one JSON object (node → reply).")
    var json = false

    var nodes: [String]? {
        destination.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
    }
    var duration: Duration { .milliseconds(Int(timeout * 1000)) }
}

func startControl(_ broker: BrokerOptions) async throws -> ControlClient {
    let amqp = try broker.amqpBroker()
    let control = ControlClient(broker: amqp)
    do { try await control.start() } catch { throw CLIError(description: error.description) }
    return control
}

/// Prints replies like `celery inspect`: one `-> node: reply` block per node, or JSON; exit 1 when nobody replied.
func printReplies(_ replies: [String: JSONValue], json: Bool) throws {
    if json {
        print(JSONValue.object(JSONObject(replies.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })).jsonString)
    } else {
        for (node, value) in replies.sorted(by: { $0.key < $1.key }) {
            if let error = value["error"]?.stringValue {
                print("-> \(node): ERROR\n    \(error)")
            } else if let ok = value["ok"]?.stringValue {
                print("-> \(node): OK\n    \(ok)")
            } else if case .array(let items) = value {
                print("-> \(node): OK")
                if items.isEmpty { print("    - empty -") }
                for item in items { print("    * \(item.stringValue ?? item.jsonString)") }
            } else {
                print("-> \(node): OK\n    \(value.jsonString)")
            }
        }
    }
    if replies.isEmpty {
        throw CLIError(
            description:
                "Error: no nodes replied within the time limit. Is a worker running on this broker (and vhost)? Try a longer --timeout."
        )
    }
}

/// `inspect METHOD`: ask workers (Celeriac or Celery) about themselves, without Python.
public struct InspectCommand: AsyncParsableCommand {
    /// `celeriac inspect METHOD`: broadcasts on `celery.pidbox` and prints the replies collected for `--timeout`
    /// seconds.
    public static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Ask workers about their state (Celery's `celery inspect`).",
        discussion:
            "METHOD: ping, stats, active, reserved, scheduled, revoked, registered, active_queues, conf, clock, report, query_task ID..."
    )

    static let methods: Set<String> = [
        "ping", "stats", "active", "reserved", "scheduled", "revoked", "registered", "active_queues",
        "conf", "clock", "report", "query_task",
    ]

    @OptionGroup var broker: BrokerOptions
    @OptionGroup var options: ControlOptions
    @Argument(help: "What to ask: ping, stats, active, registered, ...") var method: String
    @Argument(help: "Task ids for query_task.") var ids: [String] = []

    /// Required by ArgumentParser; the values come from parsing the command line.
    public init() {}

    /// Rejects a method that is not in the list with a usage error (status 64).
    public func validate() throws {
        guard Self.methods.contains(method) else {
            throw ValidationError(
                "unknown inspect method '\(method)'; use one of: \(Self.methods.sorted().joined(separator: ", "))")
        }
    }

    /// Sends the request and prints the replies like `celery inspect`; exits with status 1 when no node replied.
    public func run() async throws {
        let control = try await startControl(broker)
        defer { Task { await control.close() } }
        let arguments: JSONObject = method == "query_task" ? ["ids": .array(ids.map { .string($0) })] : [:]
        let replies = try await control.call(
            method, arguments: arguments, destination: options.nodes, timeout: options.duration)
        try printReplies(replies, json: options.json)
    }
}

/// `control METHOD ARGS`: change workers at run time (Celery's `celery control`).
public struct ControlCommand: AsyncParsableCommand {
    /// `celeriac control METHOD ARGS`; `shutdown` and `heartbeat` are sent without waiting for replies.
    public static let configuration = CommandConfiguration(
        commandName: "control",
        abstract: "Change workers at run time (Celery's `celery control`).",
        discussion: """
            revoke ID... [--terminate]   revoke tasks (kept on the broker: workers started later skip them too)
            rate_limit TASK RATE         e.g. rate_limit demo.add 10/s (0 removes the limit)
            time_limit TASK SOFT HARD    per-task time limits in seconds
            pool_grow N | pool_shrink N  change concurrency
            add_consumer QUEUE | cancel_consumer QUEUE
            enable_events | disable_events | heartbeat | shutdown
            """)

    @OptionGroup var broker: BrokerOptions
    @OptionGroup var options: ControlOptions
    @Argument(help: "What to do: revoke, rate_limit, pool_grow, add_consumer, shutdown, ...") var method: String
    @Argument(help: "Its arguments.") var arguments: [String] = []
    @Flag(name: .customLong("terminate"), help: "With revoke: also stop the task if it runs now.") var terminate = false

    /// Required by ArgumentParser; the values come from parsing the command line.
    public init() {}

    func request() throws -> (JSONObject, cast: Bool) {
        func need(_ n: Int, _ usage: String) throws {
            guard arguments.count >= n else { throw ValidationError("usage: control \(method) \(usage)") }
        }
        func int(_ text: String) throws -> JSONValue {
            guard let n = Int64(text) else { throw ValidationError("'\(text)' is not a whole number") }
            return .int(n)
        }
        switch method {
        case "rate_limit":
            try need(2, "TASK RATE (e.g. demo.add 10/s)")
            return (["task_name": .string(arguments[0]), "rate_limit": .string(arguments[1])], false)
        case "time_limit":
            try need(3, "TASK SOFT HARD")
            guard let soft = Double(arguments[1]), let hard = Double(arguments[2]) else {
                throw ValidationError("SOFT and HARD are seconds")
            }
            return (["task_name": .string(arguments[0]), "soft": .double(soft), "hard": .double(hard)], false)
        case "pool_grow", "pool_shrink":
            return (["n": try int(arguments.first ?? "1")], false)
        case "add_consumer":
            try need(1, "QUEUE")
            return (
                [
                    "queue": .string(arguments[0]), "exchange": .string(arguments[0]), "exchange_type": "direct",
                    "routing_key": .string(arguments[0]),
                ], false
            )
        case "cancel_consumer":
            try need(1, "QUEUE")
            return (["queue": .string(arguments[0])], false)
        case "enable_events", "disable_events", "ping":
            return ([:], false)
        case "heartbeat", "shutdown":
            return ([:], true)
        default:
            throw ValidationError("unknown control method '\(method)'; see `control --help`")
        }
    }

    /// `revoke` (and `terminate`) records the ids in the revocation log before broadcasting, so it succeeds even when
    /// no worker replies. Other methods print the replies and exit with status 1 when none came. A wrong method or
    /// argument count is a usage error (status 64).
    public func run() async throws {
        let control = try await startControl(broker)
        defer { Task { await control.close() } }
        if method == "revoke" || method == "terminate" {
            guard !arguments.isEmpty else { throw ValidationError("usage: control revoke ID... [--terminate]") }
            let replies = try await control.revoke(
                arguments, terminate: terminate || method == "terminate", timeout: options.duration)
            print("recorded \(arguments.count) revocation(s) in \(RevocationLog.queue)")
            if replies.isEmpty {
                print("no worker replied now; workers that start later read the log and skip these tasks")
            } else {
                try printReplies(replies, json: options.json)
            }
            return
        }
        let (args, cast) = try request()
        if cast {
            try await control.cast(method, arguments: args, destination: options.nodes)
            print("sent \(method)")
            return
        }
        let replies = try await control.call(
            method, arguments: args, destination: options.nodes, timeout: options.duration)
        try printReplies(replies, json: options.json)
    }
}

/// `events`: a live, readable tail of Celery events (workers started with `-E`).
public struct EventsCommand: AsyncParsableCommand {
    /// `celeriac events`: binds a private queue to `celeryev`; the line `listening for events on ...` on stderr says it
    /// is ready.
    public static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Print Celery events as they happen (workers need -E, or `control enable_events`).")

    @OptionGroup var broker: BrokerOptions
    @Option(name: .customLong("count"), help: "Stop after this many events.") var count: Int?
    @Option(name: .customLong("timeout"), help: "Stop after this many seconds.") var timeout: Double?
    @Flag(name: .customLong("json"), help: "One JSON object per line instead of readable lines.") var json = false
    @Flag(name: .customLong("no-heartbeats"), help: "Leave out worker-heartbeat events.") var noHeartbeats = false

    /// Required by ArgumentParser; the values come from parsing the command line.
    public init() {}

    /// Prints events until `--count` were printed, `--timeout` seconds passed or the stream ends; exits with status 1
    /// when it cannot subscribe.
    public func run() async throws {
        let amqp = try broker.amqpBroker()
        let receiver = EventReceiver(broker: amqp)
        let events: AsyncStream<JSONObject>
        do { events = try await receiver.start() } catch { throw CLIError(description: error.description) }
        defer { Task { await receiver.close() } }
        // Ready: scripts and tests wait for this line before they cause events.
        FileHandle.standardError.write(Data("listening for events on \(amqp)\n".utf8))
        let limit = count
        let json = self.json, noHeartbeats = self.noHeartbeats
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                var seen = 0
                for await event in events {
                    if noHeartbeats, event["type"]?.stringValue == "worker-heartbeat" { continue }
                    let line = json ? JSONValue.object(event).jsonString : EventReceiver.describe(event)
                    FileHandle.standardOutput.write(Data((line + "\n").utf8))
                    seen += 1
                    if let limit, seen >= limit { return }
                }
            }
            if let timeout {
                group.addTask { try? await Task.sleep(for: .milliseconds(Int(timeout * 1000))) }
            }
            await group.next()
            group.cancelAll()
        }
    }
}
