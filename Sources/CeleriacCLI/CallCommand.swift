import ArgumentParser
import CeleriacAMQP
import CeleriacBroker
import CeleriacCore
import CeleriacMessaging
import Foundation
import Synchronization

/// `call NAME --args '[2,3]' --kwargs '{}' [--wait]`: send one task; print its id, and with `--wait` its result.
public struct CallCommand: AsyncParsableCommand {
    /// `celeriac call NAME`: publishes with confirms to `--queue` (default `celery`) on the broker at `--broker`.
    public static let configuration = CommandConfiguration(
        commandName: "call", abstract: "Send a task by name and optionally wait for its result.")

    @OptionGroup var broker: BrokerOptions
    @OptionGroup var signing: SigningOptions
    @Argument(help: "Task name, e.g. demo.add") var name: String
    @Option(name: .customLong("args"), help: "Positional arguments as a JSON list.") var args: String = "[]"
    @Option(name: .customLong("kwargs"), help: "Keyword arguments as a JSON object.") var kwargs: String = "{}"
    @Option(name: .customLong("queue"), help: "Target queue.") var queue: String?
    @Option(name: .customLong("countdown"), help: "Seconds to wait before the task may run.") var countdown: Double?
    @Option(name: .customLong("expires"), help: "Seconds after which the task is not run.") var expires: Double?
    @Option(name: .customLong("priority"), help: "Message priority 0-9.") var priority: UInt8?
    @Flag(
        name: .customLong("wait"),
        help:
            "Wait for the result and print it as JSON on the last line; the task's states (PROGRESS, ...) come before it."
    )
    var wait = false
    @Option(name: .customLong("timeout"), help: "Seconds to wait with --wait.") var timeout: Double = 30

    /// Required by ArgumentParser; the values come from parsing the command line.
    public init() {}

    /// Sends the task and prints its id; without `--wait` it is sent with `ignore_result`. With `--wait`, prints the
    /// result as JSON; a failed task prints `Type: message` (its traceback on stderr) and exits with status 1, as do a
    /// timeout and a broker error. Malformed `--args` or `--kwargs` is a usage error (status 64).
    public func run() async throws {
        guard case .array(let argList) = try parseJSON(args, what: "--args") else {
            throw ValidationError("--args must be a JSON list, e.g. '[2, 3]'")
        }
        guard case .object(let kwargObject) = try parseJSON(kwargs, what: "--kwargs") else {
            throw ValidationError("--kwargs must be a JSON object, e.g. '{\"x\": 1}'")
        }
        let amqp = try broker.amqpBroker()
        var clientConfig = CeleriacClient.Configuration(receiveResults: wait, connectionName: "celeriac-call")
        clientConfig.queueType = try broker.queueType()
        clientConfig.compactQueues = broker.compactQueues()
        clientConfig.signer = try signing.signer()
        let client = CeleriacClient(configuration: clientConfig, broker: amqp)
        do {
            try await client.start()
        } catch {
            throw CLIError(description: error.description)
        }
        defer { Task { await client.close() } }
        var options = SendOptions(queue: queue, countdown: countdown, expiresIn: expires, priority: priority)
        if !wait { options.ignoreResult = true }
        let result = try await client.send(name, args: argList, kwargs: kwargObject, options: options)
        print(result.id)
        guard wait else { return }
        // The task's states while it runs: a progress bar on a terminal, plain lines otherwise.
        let progress = ProgressDisplay(terminal: isatty(STDOUT_FILENO) == 1)
        let follower = Task {
            for await update in await result.updates() where !update.status.isReady {
                progress.show(update)
            }
        }
        defer { follower.cancel() }
        do {
            let value = try await result.get(timeout: .milliseconds(Int(timeout * 1000)))
            follower.cancel()
            await follower.value
            progress.end()
            print(value.jsonString)
        } catch .taskFailed(_, _, let failure) {
            follower.cancel()
            await follower.value
            progress.end()
            print("\(failure.type): \(failure.message)")
            if let tb = failure.traceback { FileHandle.standardError.write(Data((tb + "\n").utf8)) }
            throw ExitCode(1)
        } catch {
            follower.cancel()
            await follower.value
            progress.end()
            throw CLIError(description: error.description)
        }
    }
}

/// `result ID --reply-queue Q`: read a task's result from a reply queue (results live on the caller's queue).
public struct ResultCommand: AsyncParsableCommand {
    /// `celeriac result ID --reply-queue Q`: reads that reply queue itself, with no client and no reply queue of its
    /// own.
    public static let configuration = CommandConfiguration(
        commandName: "result", abstract: "Read a task's result from the reply queue it was sent to.")

    @OptionGroup var broker: BrokerOptions
    @Argument(help: "Task id") var id: String
    @Option(name: .customLong("reply-queue"), help: "The reply queue (reply_to) the task was sent with.")
    var replyQueue: String
    @Option(name: .customLong("timeout"), help: "Seconds to wait.") var timeout: Double = 10

    /// Required by ArgumentParser; the values come from parsing the command line.
    public init() {}

    /// How many messages of the reply queue one look may hold.
    static let window: UInt16 = 1000

    /// Looks through the reply queue (up to 1000 messages) for the task's states and prints the last one: its name,
    /// then the value, the failure or the meta. Nothing is acked: every message, the task's own included, goes back
    /// to the queue for whoever waits for it. When the queue holds no final state for the task yet, it keeps looking
    /// until one arrives or `--timeout` passes. Exits with status 0 for SUCCESS; 1 when the task failed, was revoked,
    /// is still running (its last state is shown), no state came within `--timeout`, or the queue cannot be read.
    public func run() async throws {
        let amqp = try broker.amqpBroker()
        let connection = amqp.connection(.init(name: "celeriac-result", confirms: false))
        defer { Task { await connection.close() } }
        let waiting: UInt32
        do {
            try await connection.connect()
            waiting = try await connection.inspect(queue: replyQueue).messageCount
        } catch {
            throw CLIError(description: error.description)
        }
        // Every message is held (unacked) while looking, and all go back to the queue at the end: handing each back
        // at once would get it delivered again straight away, round and round until the timeout.
        let consumer = try await connection.consume(queue: replyQueue, prefetch: Self.window)
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        let id = self.id
        let held = HeldTags()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                var seen: UInt32 = 0
                for await d in consumer.deliveries {
                    held.tags.withLock { $0.append(d.tag) }
                    seen += 1
                    if let r = ResultCodec.decode(d), r.taskID == id {
                        held.latest.withLock { $0 = r }
                        if r.status.isReady { return }
                    }
                    // All that waited is read and a state of the task is among it: that is its last state now.
                    if seen >= min(waiting, UInt32(Self.window)), held.latest.withLock({ $0 != nil }) { return }
                    if seen >= UInt32(Self.window) { return }
                }
            }
            group.addTask {
                try? await Task.sleep(until: deadline)
            }
            _ = await group.next()
            group.cancelAll()
        }
        try? await connection.cancel(consumer)
        let all = held.tags.withLock { $0 }
        for tag in all { await connection.reject(tag, requeue: true) }  // left for their owners
        guard let found = held.latest.withLock({ $0 }) else {
            let more =
                all.count >= Self.window ? " (only the first \(Self.window) messages of the queue were looked at)" : ""
            throw CLIError(description: "no result for \(id) on \(replyQueue) within \(timeout)s\(more)")
        }
        print(found.status.rawValue)
        switch found.status {
        case .success: print(found.result.jsonString)
        case .failure, .revoked, .retry: print(found.failure?.description ?? found.result.jsonString)
        default: print(found.result.jsonString)
        }
        if found.status != .success { throw ExitCode(1) }
    }
}

/// `purge -Q a,b`: remove every ready message from queues.
public struct PurgeCommand: AsyncParsableCommand {
    /// `celeriac purge -Q a,b`: purges each queue on the broker and prints how many messages it removed.
    public static let configuration = CommandConfiguration(
        commandName: "purge", abstract: "Remove all ready messages from queues.")
    @OptionGroup var broker: BrokerOptions
    @Option(name: [.customShort("Q"), .customLong("queues")], help: "Comma-separated queues.") var queues: String =
        Topology.defaultQueue
    /// Required by ArgumentParser; the values come from parsing the command line.
    public init() {}

    /// Purges the queues in order with queue.purge (delivered, unacked messages are not removed). Exits with status 1
    /// on a broker error, e.g. a queue that does not exist; the queues before it are already purged.
    public func run() async throws {
        let amqp = try broker.amqpBroker()
        let connection = amqp.connection(.init(name: "celeriac-purge", confirms: false))
        defer { Task { await connection.close() } }
        do {
            try await connection.connect()
            for queue in queues.split(separator: ",").map(String.init) {
                let n = try await connection.purge(queue: queue)
                print("purged \(n) message(s) from \(queue)")
            }
        } catch {
            throw CLIError(description: error.description)
        }
    }
}

/// The deliveries a `result` look holds back for their owners.
private final class HeldTags: Sendable {
    let tags = Mutex<[DeliveryTag]>([])
    /// The task's last state seen so far.
    let latest = Mutex<ResultMessage?>(nil)
}
