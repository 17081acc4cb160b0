import AMQPTransport
import CeleriacAMQP
import CeleriacCanvas
import CeleriacCore
import CeleriacMessaging
import Foundation
import Testing

/// The demo application's tasks, as a client declares them (the workers here are `celeriac-demo` processes).
enum Demo {
    struct Pair: Codable, Sendable, Arguments2 {
        let x: Int; let y: Int; init(_ x: Int, _ y: Int) { self.x = x; self.y = y }
    }
    struct Numbers: Codable, Sendable, Arguments1 { let numbers: [Int]; init(_ n: [Int]) { numbers = n } }
    struct Seconds: Codable, Sendable, Arguments1 { let seconds: Double; init(_ s: Double) { seconds = s } }
    static let add = TaskName<Pair, Int>("demo.add", parameters: "x", "y")
    static let xsum = TaskName<Numbers, Int>("demo.xsum", parameters: "numbers")
    static let sleep = TaskName<Seconds, Double>("demo.sleep", parameters: "seconds")
}

/// Chords survive the death of workers: header members, joiners.
@Suite(.tags(.integration), .serialized)
struct ChordRecoveryTests {
    static var demo: String { DemoApp.path }

    func spawnWorker(queue: String, name: String) throws -> pid_t {
        try Shell.spawn(
            Self.demo,
            ["worker", "-Q", queue, "-c", "4", "-n", "\(name)@test", "--broker", TestBroker.shared.urlString],
            environment: ProcessInfo.processInfo.environment, log: "\(TestBroker.repoRoot)/.run/\(name).log")
    }

    /// Bounded polling of the broker's view (consumer and message counts have no event to wait on).
    func waitFor(
        _ what: String, within timeout: Duration = .seconds(60), _ condition: @escaping @Sendable () async -> Bool
    ) async throws {
        try await within(timeout, what) {
            while !(await condition()) { try await Task.sleep(for: .milliseconds(20)) }
        }
    }

    @Test func chordOfAThousandSurvivesTwoWorkerKills() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("cvkill")
        let client = try await startClient(url: url, queue: queue)
        let admin = AMQPConnection(url: url, options: .init(name: "it-chord-kill", confirms: false))
        try await admin.connect()
        _ = try await admin.declare(Topology.workQueue(queue, maxPriority: nil).1)

        var pids = try (0..<3).map { try spawnWorker(queue: queue, name: "\(queue.suffix(8))-w\($0)") }
        defer { pids.forEach(Shell.kill) }
        try await waitFor("three workers consuming") { (try? await admin.inspect(queue: queue).consumerCount) == 3 }

        // Members sleep 20 ms before adding, so the run lasts long enough to kill workers in the middle of it.
        let header = group {
            for i in 0..<1000 { Demo.sleep.s(0.02) | Demo.add.si(i, i) }
        }
        let result = try await client.apply(chord(header, Demo.xsum.s()))
        let joinQueue = "celeriac.chord.\(try #require(result.chordIDs.first))"
        for (round, threshold) in [250, 500].enumerated() {
            try await waitFor("\(threshold) header results in the join queue") {
                (try? await admin.inspect(queue: joinQueue).messageCount).map { $0 >= threshold } ?? true
            }
            let victim = Int.random(in: 0..<3)
            Shell.kill(pids[victim])  // SIGKILL: its unacked tasks go back to the queue
            // The kill must land while the header is still running, or this test would prove nothing.
            let parts = try await admin.inspect(queue: joinQueue).messageCount
            #expect(parts < 1000, "worker killed only after the header had completed (\(parts) parts)")
            pids[victim] = try spawnWorker(queue: queue, name: "\(queue.suffix(8))-r\(round)")
        }
        let total: Int = try await result.get(timeout: .seconds(300))
        #expect(total == 999_000)
        // Joined, nothing left: the joiner publishes the body first and deletes the join queue right after.
        try await waitFor("the join queue to be deleted") { (try? await admin.inspect(queue: joinQueue)) == nil }
        await client.close()
        await admin.close()
        await deleteQueues([queue], url: url)
    }

    /// A joiner that died after marking the chord joined (and perhaps after publishing the body): the join task is
    /// redelivered, the next joiner publishes the body again and reports the possible duplicate.
    @Test func joinRedoneAfterAJoinerDiedIsCompletedAndReported() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("cvrejoin")
        let client = try await startClient(url: url, queue: queue)
        let frozen = CanvasFreezer(replyTo: client.replyQueue, defaultQueue: queue)
            .freeze(
                chord(
                    group {
                        CanvasTasks.add.s(1, 1); CanvasTasks.add.s(2, 2)
                    }, CanvasTasks.xsum.s()
                ).node)
        guard case .chord(_, let body, _) = frozen, let info = ChordInfo(json: body.options[ChordInfo.optionKey]),
            case .task(let bodyTask) = body, let bodyID = bodyTask.options["task_id"]?.stringValue
        else {
            Issue.record("unexpected frozen chord \(frozen)"); return
        }
        // The state a dead joiner leaves: both parts and its marker in the join queue, the join task unacked (here:
        // published again, as the broker would redeliver it).
        let admin = AMQPConnection(url: url, options: .init(name: "it-rejoin", confirms: true))
        try await admin.connect()
        _ = try await admin.declare(ChordQueues.joinQueue(info))
        _ = try await admin.declare(Topology.workQueue(queue, maxPriority: nil).1)
        let parts: [JSONValue] = [
            ChordPart(index: 1, taskID: "m1", outcome: .success(4)).json,
            JSONValue.object(["joined": "dead-joiner"]),
            ChordPart(index: 0, taskID: "m0", outcome: .success(2)).json,
        ]
        try await admin.publish(
            parts.map {
                OutgoingMessage(routingKey: info.joinQueue, body: $0.jsonBytes, properties: .init(deliveryMode: 2))
            })
        let join = ChordJoin.joinMessage(info: info, body: body.json, reason: .complete, parent: nil)
        try await admin.publish(TaskCodec.encode(join, routingKey: queue))

        let running = try await startWorker(CanvasTasks.registry(), url: url, queues: [queue])
        let six: JSONValue = try await client.result(of: bodyID, timeout: .seconds(30))
        #expect(six == .int(6))
        // The join reports the redo ("rejoined") and then its completion ("joined", after the join queue is gone).
        let events = running.observer.chords
        let seen = try await within(.seconds(30), "the redone join to complete") {
            var seen: [String] = []
            for await event in events {
                seen.append(event)
                if event == "joined" { break }
            }
            return seen
        }
        #expect(seen.contains("rejoined"), "chord events: \(seen)")
        await #expect(throws: AMQPError.self) { try await admin.inspect(queue: info.joinQueue) }
        try await running.stop()
        await client.close()
        await admin.close()
        await deleteQueues([queue], url: url)
    }

    /// The quick start's `celeriac-demo canvas` against a `celeriac-demo worker`: the README's canvases, end to end.
    @Test func demoCanvasCommandPrintsTheResults() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("cvdemo")
        let pid = try spawnWorker(queue: queue, name: "\(queue.suffix(8))-demo")
        defer { Shell.kill(pid) }
        let admin = AMQPConnection(url: url, options: .init(name: "it-canvas-demo", confirms: false))
        try await admin.connect()
        _ = try await admin.declare(Topology.workQueue(queue, maxPriority: nil).1)
        try await waitFor("the demo worker consuming") { (try? await admin.inspect(queue: queue).consumerCount) == 1 }
        let (ok, output) = await Shell.runOffPoolWithStatus(
            Self.demo, ["canvas", "--queue", queue, "--broker", TestBroker.shared.urlString],
            environment: ProcessInfo.processInfo.environment)
        #expect(ok, "\(output)")
        #expect(output.contains("= 80"))  // (2+2)*4*5
        #expect(output.contains("= 9900"))  // sum of 2i for i < 100
        #expect(output.contains("= 30"))  // the nested canvas
        #expect(output.contains("ChordError"))
        await admin.close()
        await deleteQueues([queue], url: url)
    }
}
