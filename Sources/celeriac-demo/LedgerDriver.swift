import CeleriacAMQP
import CeleriacCLI
import CeleriacCanvas
import CeleriacCore
import CeleriacMessaging
import Foundation
import Synchronization

/// `celeriac-demo ledger`: sends a known workload and reconciles every result (the fault-injection harness,
/// `Tests/Chaos`, runs it on the client host).
///
/// The workload: `--count` `demo.add(i, i)` with ids `PREFIX-add-i`, `--chains` chains of `--chain-length` adds,
/// and one chord of `--chord` adds with an `xsum` body, all with publisher confirms. Then it waits for every
/// result until `--deadline`. Every 200 ms it prints `progress t=<unix> sent=<n> completed=<n>`; at the end one
/// line `ledger <JSON>` with: sent, completed, wrong, lost, duplicates (final results received again: a task ran
/// twice), max_result_latency_s, elapsed_s, chains_ok, chord_ok, lost_ids (the first 20) and, with `--events`,
/// receipts (task ids received by more than one worker, with hostname and time). Exit status 0 when nothing was
/// lost and nothing was wrong.
enum LedgerDriver {
    struct Options {
        var broker = CLIEnvironment.broker(nil)
        var count = 2_000
        var chains = 10
        var chainLength = 5
        var chord = 200
        var queue = "celery"
        var queueType = QueueType.classic
        var prefix = "ledger-\(Int(Date().timeIntervalSince1970))"
        var deadline = 300.0
        var events = false
        var concurrency = 64
    }

    static let usage = """
        usage: celeriac-demo ledger [-b URL[;URL...]] [--count N] [--chains K] [--chain-length L] [--chord M]
                                    [--queue NAME] [--queue-type classic|quorum] [--id-prefix P] [--deadline SECONDS]
                                    [--events] [--send-concurrency N]
        """

    static func parse(_ arguments: [String]) throws -> Options {
        var o = Options()
        var i = 0
        func value(_ name: String) throws -> String {
            guard i + 1 < arguments.count else { throw LedgerError("\(name) needs a value\n\(usage)") }
            i += 1
            return arguments[i]
        }
        func int(_ name: String, min: Int) throws -> Int {
            let text = try value(name)
            guard let n = Int(text), n >= min else {
                throw LedgerError("\(name) '\(text)' must be an integer ≥ \(min)")
            }
            return n
        }
        while i < arguments.count {
            let a = arguments[i]
            switch a {
            case "-b", "--broker": o.broker = try value(a)
            case "--count": o.count = try int(a, min: 0)
            case "--chains": o.chains = try int(a, min: 0)
            case "--chain-length": o.chainLength = try int(a, min: 0)
            case "--chord": o.chord = try int(a, min: 0)
            case "--queue": o.queue = try value(a)
            case "--queue-type":
                let t = try value(a)
                guard let type = QueueType(rawValue: t) else {
                    throw LedgerError("--queue-type '\(t)' is not classic or quorum")
                }
                o.queueType = type
            case "--id-prefix": o.prefix = try value(a)
            case "--deadline":
                let t = try value(a)
                guard let s = Double(t), s > 0 else {
                    throw LedgerError("--deadline '\(t)' must be a positive number of seconds")
                }
                o.deadline = s
            case "--events": o.events = true
            case "--send-concurrency": o.concurrency = try int(a, min: 1)
            case "-h", "--help": throw Help()
            default: throw LedgerError("unknown argument '\(a)'\n\(usage)")
            }
            i += 1
        }
        if o.chains > 0 && o.chainLength < 1 {
            throw LedgerError("--chain-length must be at least 1 when --chains is more than 0")
        }
        return o
    }

    struct Help: Error {}

    static func run(_ arguments: [String]) async -> Int32 {
        do {
            let options = try parse(arguments)
            let ledger = try await Run(options).execute()
            Run.line("ledger " + String(decoding: ledger.json.jsonBytes, as: UTF8.self))
            return ledger.lost == 0 && ledger.wrong == 0 && ledger.chainsOK && ledger.chordOK ? 0 : 1
        } catch is Help {
            Run.line(usage)
            return 0
        } catch {
            FileHandle.standardError.write(Data("celeriac-demo ledger: \(error)\n".utf8))
            return 2
        }
    }

    struct LedgerError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    struct Ledger {
        var sent = 0, completed = 0, wrong = 0, lost = 0, duplicates = 0
        var maxLatency = 0.0, elapsed = 0.0
        var chainsOK = true, chordOK = true
        var lostIDs: [String] = []
        var receipts: [String: [(String, Double)]]?

        var json: JSONValue {
            var o: JSONObject = [
                "sent": .int(Int64(sent)), "completed": .int(Int64(completed)), "wrong": .int(Int64(wrong)),
                "lost": .int(Int64(lost)), "duplicates": .int(Int64(duplicates)),
                "max_result_latency_s": .double(maxLatency), "elapsed_s": .double(elapsed),
                "chains_ok": .bool(chainsOK), "chord_ok": .bool(chordOK),
                "lost_ids": .array(lostIDs.map { .string($0) }),
            ]
            if let receipts {
                var r: JSONObject = [:]
                for (id, list) in receipts { r[id] = .array(list.map { .array([.string($0.0), .double($0.1)]) }) }
                o["receipts"] = .object(r)
            }
            return .object(o)
        }
    }

    /// One run: the client, the counters the progress line reads, the event tail.
    final class Run: Sendable {
        let options: Options
        let client: CeleriacClient
        let broker: AMQPBroker
        let sent = Atomic<Int>(0)
        let completed = Atomic<Int>(0)
        let nextAdd = Atomic<Int>(0)
        let receipts = Mutex<[String: [(String, Double)]]>([:])

        init(_ options: Options) throws {
            self.options = options
            broker = try AMQPBroker(options.broker)
            var config = CeleriacClient.Configuration(
                defaultQueue: options.queue,
                resultCacheSize: options.count + options.chains * options.chainLength + options.chord + 1_000,
                publishRetryWindow: .seconds(options.deadline), connectionName: "celeriac-ledger")
            config.queueType = options.queueType
            client = CeleriacClient(configuration: config, broker: broker)
        }

        static var now: Double { Date().timeIntervalSince1970 }
        /// One line on stdout, unbuffered (the harness reads progress as it comes).
        static func line(_ text: String) { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }

        func execute() async throws -> Ledger {
            try await client.start()
            var receiver: EventReceiver?
            if options.events {
                let r = EventReceiver(broker: broker, connectionName: "celeriac-ledger-events")
                let stream = try await r.start(routingKey: "task.#")
                receiver = r
                Task { [self] in
                    for await event in stream where event["type"]?.stringValue == "task-received" {
                        guard let id = event["uuid"]?.stringValue, let host = event["hostname"]?.stringValue else {
                            continue
                        }
                        receipts.withLock { $0[id, default: []].append((host, Run.now)) }
                    }
                }
            }
            let start = ContinuousClock.now
            let deadline = start + .seconds(options.deadline)
            let progress = Task { [self] in
                while !Task.isCancelled {
                    Run.line(
                        "progress t=\(String(format: "%.3f", Run.now)) sent=\(sent.load(ordering: .relaxed)) completed=\(completed.load(ordering: .relaxed))"
                    )
                    try? await Task.sleep(for: .milliseconds(200))
                }
            }
            defer { progress.cancel() }

            var ledger = Ledger()
            let adds = try await sendAndWaitAdds(until: deadline)
            ledger.wrong = adds.wrong
            ledger.lostIDs = adds.lost
            ledger.maxLatency = adds.maxLatency
            let canvases = try await canvases(until: deadline)
            ledger.chainsOK = canvases.chainsOK
            ledger.chordOK = canvases.chordOK
            ledger.lostIDs += canvases.lost
            ledger.wrong += canvases.wrong
            ledger.maxLatency = max(ledger.maxLatency, canvases.maxLatency)

            ledger.sent = sent.load(ordering: .relaxed)
            ledger.completed = completed.load(ordering: .relaxed)
            ledger.lost = ledger.lostIDs.count
            ledger.lostIDs = Array(ledger.lostIDs.prefix(20))
            ledger.elapsed = (ContinuousClock.now - start).seconds
            // Repeated results can still be on their way: a short quiet period picks up the stragglers.
            try? await Task.sleep(for: .milliseconds(500))
            ledger.duplicates = await client.repeatedResults
            if let receiver {
                await receiver.close()
                ledger.receipts = receipts.withLock { $0.filter { Set($0.value.map(\.0)).count > 1 } }
            }
            Run.line("progress t=\(String(format: "%.3f", Run.now)) sent=\(ledger.sent) completed=\(ledger.completed)")
            await client.close()
            return ledger
        }

        struct Outcome: Sendable {
            var wrong = 0
            var lost: [String] = []
            var maxLatency = 0.0
        }

        /// Sends the adds (a bounded number of sends in flight) and waits for each result from the moment it is
        /// sent, so `completed` in the progress lines counts results as they arrive.
        func sendAndWaitAdds(until deadline: ContinuousClock.Instant) async throws -> Outcome {
            let total = options.count
            let lanes = min(options.concurrency, max(total, 1))
            let (sentIDs, sentSink) = AsyncStream<(String, Int, ContinuousClock.Instant)>.makeStream()
            return try await withThrowingTaskGroup(of: Outcome.self) { group in
                group.addTask { [self] in
                    defer { sentSink.finish() }
                    try await withThrowingTaskGroup(of: Void.self) { senders in
                        for _ in 0..<lanes {
                            senders.addTask { [self] in
                                while true {
                                    let i = nextAdd.add(1, ordering: .relaxed).oldValue
                                    guard i < total else { return }
                                    let id = "\(options.prefix)-add-\(i)"
                                    let sentAt = ContinuousClock.now
                                    _ = try await client.delay(DemoTasks.add, .init(i, i), options: .init(taskID: id))
                                    sent.add(1, ordering: .relaxed)
                                    sentSink.yield((id, i, sentAt))
                                }
                            }
                        }
                        try await senders.waitForAll()
                    }
                    return Outcome()
                }
                for await (id, i, sentAt) in sentIDs {
                    group.addTask { [self] in
                        var out = Outcome()
                        do {
                            let value = try await client.result(
                                of: id, name: DemoTasks.add.name, timeout: max(.zero, deadline - .now))
                            out.maxLatency = (ContinuousClock.now - sentAt).seconds
                            completed.add(1, ordering: .relaxed)
                            if value != .int(Int64(2 * i)) { out.wrong += 1 }
                        } catch CeleriacError.resultTimeout {
                            out.lost.append(id)
                        } catch {
                            completed.add(1, ordering: .relaxed)
                            out.wrong += 1
                        }
                        return out
                    }
                }
                var all = Outcome()
                for try await part in group {
                    all.wrong += part.wrong
                    all.lost += part.lost
                    all.maxLatency = max(all.maxLatency, part.maxLatency)
                }
                return all
            }
        }

        /// The chains (add(i, i) | add(1) | … : 2i + length − 1) and the chord (xsum of add(i, i): M(M − 1)).
        func canvases(until deadline: ContinuousClock.Instant) async throws -> (
            chainsOK: Bool, chordOK: Bool, wrong: Int, lost: [String], maxLatency: Double
        ) {
            let add = DemoTasks.add
            var pending: [(CanvasResult<Int>, Int, ContinuousClock.Instant)] = []
            for c in 0..<options.chains {
                var signature = add.s(c, c)
                for _ in 1..<options.chainLength { signature = signature | add.s(1) }
                let sentAt = ContinuousClock.now
                pending.append((try await client.apply(signature), 2 * c + options.chainLength - 1, sentAt))
                sent.add(1, ordering: .relaxed)
            }
            let chainCount = pending.count
            if options.chord > 0 {
                let m = options.chord
                let sentAt = ContinuousClock.now
                pending.append(
                    (
                        try await client.apply(chord(group { for i in 0..<m { add.s(i, i) } }, DemoTasks.xsum.s())),
                        m * (m - 1), sentAt
                    ))
                sent.add(1, ordering: .relaxed)
            }
            var chainsOK = true, chordOK = true, wrong = 0, maxLatency = 0.0
            var lost: [String] = []
            for (index, (result, expected, sentAt)) in pending.enumerated() {
                let isChain = index < chainCount
                do {
                    let value = try await result.get(timeout: max(.zero, deadline - .now))
                    maxLatency = max(maxLatency, (ContinuousClock.now - sentAt).seconds)
                    completed.add(1, ordering: .relaxed)
                    if value != expected {
                        wrong += 1
                        if isChain { chainsOK = false } else { chordOK = false }
                    }
                } catch CeleriacError.resultTimeout {
                    lost.append(result.id)
                    if isChain { chainsOK = false } else { chordOK = false }
                } catch {
                    completed.add(1, ordering: .relaxed)
                    wrong += 1
                    if isChain { chainsOK = false } else { chordOK = false }
                }
            }
            return (chainsOK, chordOK, wrong, lost, maxLatency)
        }
    }
}

extension Duration {
    fileprivate var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
