import AMQPTransport
import CeleriacAMQP
import CeleriacBeat
import CeleriacCore
import CeleriacMessaging
import Foundation
import Logging
import Synchronization
import Testing

/// One task message beat sent, as read back from the target queue.
struct BeatMessage: Sendable, Hashable {
    let id: String
    let entry: String
    let instant: Date
    let received: Date
}

/// Consumes `queue` and keeps each beat message (from its `id`, `beat_entry` and `beat_instant` headers);
/// ``wait(for:within:_:)`` returns once the N-th has arrived.
final class BeatWatch: Sendable {
    private struct State {
        var messages: [BeatMessage] = []
        var waiters: [UUID: (Int, CheckedContinuation<Void, Never>)] = [:]
    }
    private let state = Mutex(State())
    let connection: AMQPConnection

    init(url: AMQPURL, queue: String) async throws {
        connection = AMQPConnection(url: url, options: .init(name: "it-beat-watch", confirms: false))
        try await connection.connect()
        try await connection.declare(QueueSpec(queue))
        let consumer = try await connection.consume(queue: queue, prefetch: 0, noAck: true)
        Task { [self] in
            for await d in consumer.deliveries {
                let h = d.properties.headers
                guard let id = h?["id"]?.stringValue, let entry = h?["beat_entry"]?.stringValue,
                    let text = h?["beat_instant"]?.stringValue, let instant = ScheduleFile.parseInstant(text)
                else { continue }
                let m = BeatMessage(id: id, entry: entry, instant: instant, received: Date())
                let ready = self.state.withLock { s -> [CheckedContinuation<Void, Never>] in
                    s.messages.append(m)
                    let done = s.waiters.filter { $0.value.0 <= s.messages.count }
                    for k in done.keys { s.waiters[k] = nil }
                    return done.values.map(\.1)
                }
                ready.forEach { $0.resume() }
            }
        }
    }

    var messages: [BeatMessage] { state.withLock { $0.messages } }

    /// Waits until `count` messages have arrived in all, at most `timeout`; returns them.
    @discardableResult
    func wait(for count: Int, within timeout: Duration, _ what: String) async throws -> [BeatMessage] {
        try await within(timeout, "\(what) (\(count) messages)") { [self] in
            let id = UUID()
            await withTaskCancellationHandler {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let now = state.withLock { s -> Bool in
                        if s.messages.count >= count || Task.isCancelled { return true }
                        s.waiters[id] = (count, c)
                        return false
                    }
                    if now { c.resume() }
                }
            } onCancel: {
                state.withLock { $0.waiters.removeValue(forKey: id) }?.1.resume()
            }
            try Task.checkCancellation()
            return messages
        }
    }

    func close() async { await connection.close() }
}

/// Asserts that the runs are distinct instants `step` seconds apart with none missing, and returns them sorted.
@discardableResult
func expectContiguous(_ messages: [BeatMessage], step: Double, sourceLocation: SourceLocation = #_sourceLocation)
    -> [Date]
{
    let ids = messages.map(\.id)
    #expect(Set(ids).count == ids.count, "duplicate task ids: \(ids)", sourceLocation: sourceLocation)
    let instants = messages.map(\.instant).sorted()
    #expect(Set(instants).count == instants.count, "a run was sent twice: \(instants)", sourceLocation: sourceLocation)
    for (a, b) in zip(instants, instants.dropFirst()) {
        #expect(
            abs(b.timeIntervalSince(a) - step) < 0.001, "gap between \(a) and \(b): a run was lost",
            sourceLocation: sourceLocation)
    }
    for m in messages {
        #expect(m.id == BeatTaskID.make(entry: m.entry, instant: m.instant), sourceLocation: sourceLocation)
    }
    return instants
}

final class LatenessRecorder: BeatObserver {
    let values = Mutex<[Double]>([])
    func sent(entry: String, lateness: Double) { values.withLock { $0.append(lateness) } }
    func dropped(entry: String, policy: String, count: Int) {}
    func leadership(_ leader: Bool) {}
    func nextSend(entry: String, at: Date?) {}
}

func percentile(_ xs: [Double], _ p: Double) -> Double {
    let s = xs.sorted()
    guard !s.isEmpty else { return .nan }
    return s[min(s.count - 1, Int((Double(s.count - 1) * p).rounded()))]
}

@Suite(.tags(.integration), .serialized)
struct BeatTests {
    var logger: Logger { testLogger("it-beat") }

    func beat(
        _ url: AMQPURL, entry: ScheduleEntry, store: any BeatStateStore, election: any LeaderElection = AlwaysLeader(),
        observer: any BeatObserver = NoBeatObserver(), stateQueue: String? = nil
    ) async throws -> (Beat, CeleriacClient) {
        let client = CeleriacClient(
            configuration: .init(receiveResults: false, connectionName: "it-beat"), broker: AMQPBroker(url: url))
        try await client.start()
        let b = Beat(
            schedule: try BeatSchedule([entry]), sender: ClientSender(client: client, stateQueue: stateQueue),
            store: store,
            election: election, observer: observer, logger: logger)
        return (b, client)
    }

    @Test func aOneSecondIntervalFiresOncePerSecondOverTenSeconds() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("beat-interval")
        let watcher = try await BeatWatch(url: url, queue: queue)
        let lateness = LatenessRecorder()
        let (b, client) = try await beat(
            url, entry: ScheduleEntry(name: "tick", task: "demo.add", schedule: .every(1), args: [1, 2], queue: queue),
            store: MemoryStateStore(), observer: lateness)
        let running = Task { try await b.run() }
        // 10 s of real time from the first run: runs at t, t+1, ..., t+10.
        let messages = try await watcher.wait(for: 11, within: .seconds(30), "11 runs of a 1 s interval")
        running.cancel()
        _ = try? await running.value
        let instants = expectContiguous(messages, step: 1)
        #expect(instants.last!.timeIntervalSince(instants.first!) == 10)
        #expect(b.sent == 11 || b.sent == 12, "beat sent \(b.sent)")  // one more may be in flight when stopped
        let l = lateness.values.withLock { $0 }
        print(
            "beat lateness over \(l.count) sends: p50 \(percentile(l, 0.5) * 1000) ms, p99 \(percentile(l, 0.99) * 1000) ms, max \((l.max() ?? 0) * 1000) ms"
        )
        await client.close()
        await watcher.close()
        await deleteQueues([queue], url: url)
    }

    @Test func aRestartInTheMiddleNeitherDuplicatesNorLosesARun() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("beat-restart")
        let path = NSTemporaryDirectory() + "\(queue).json"
        defer { unlink(path) }
        let watcher = try await BeatWatch(url: url, queue: queue)
        let entry = ScheduleEntry(
            name: "tick", task: "demo.add", schedule: .every(1), args: [1, 2], queue: queue, catchUp: .all(limit: 100))
        let (first, c1) = try await beat(url, entry: entry, store: FileStateStore(path: path, logger: logger))
        let running1 = Task { try await first.run() }
        try await watcher.wait(for: 3, within: .seconds(20), "3 runs before the restart")
        running1.cancel()
        _ = try? await running1.value
        await c1.close()
        // Downtime: beat is stopped while two or three runs fall due (the time passing is what is being tested).
        try await Task.sleep(for: .milliseconds(2500))
        let (second, c2) = try await beat(url, entry: entry, store: FileStateStore(path: path, logger: logger))
        let running2 = Task { try await second.run() }
        try await watcher.wait(for: first.sent + 5, within: .seconds(20), "5 runs after the restart")
        running2.cancel()
        _ = try? await running2.value
        await c2.close()
        // Whatever was in flight when the second beat stopped.
        let sentTotal = first.sent + second.sent
        let messages = try await watcher.wait(for: sentTotal, within: .seconds(10), "every confirmed run")
        #expect(messages.count == sentTotal)
        let instants = expectContiguous(messages, step: 1)
        #expect(second.sent >= 5 && instants.count >= 8)
        await watcher.close()
        await deleteQueues([queue], url: url)
    }

    @Test func twoBeatsTogetherSendEachRunOnce() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("beat-pair")
        let group = uniqueName("beat-group")
        let watcher = try await BeatWatch(url: url, queue: queue)
        let entry = ScheduleEntry(name: "tick", task: "demo.add", schedule: .every(1), args: [1, 2], queue: queue)
        let stateConnections = [
            AMQPConnection(url: url, options: .init(name: "it-beat-state-a")),
            AMQPConnection(url: url, options: .init(name: "it-beat-state-b")),
        ]
        var beats: [(Beat, CeleriacClient, Task<Void, any Error>)] = []
        for c in stateConnections {
            try await c.connect()
            let (b, client) = try await beat(
                url, entry: entry, store: BrokerStateStore(connection: c, queue: "\(group).state", logger: logger),
                election: QueueLeaderLock(broker: AMQPBroker(url: url), lockQueue: "\(group).lock", logger: logger),
                stateQueue: "\(group).state")
            beats.append((b, client, Task { try await b.run() }))
        }
        let messages = try await watcher.wait(for: 6, within: .seconds(30), "6 runs from two beats")
        for (_, _, t) in beats { t.cancel(); _ = try? await t.value }
        expectContiguous(messages, step: 1)
        let sent = beats.map { $0.0.sent }
        #expect(sent.filter { $0 > 0 }.count == 1, "both beats sent: \(sent)")
        for (_, client, _) in beats { await client.close() }
        for c in stateConnections { await c.close() }
        await watcher.close()
        await deleteQueues([queue, "\(group).state", "\(group).lock"], url: url)
    }

    @Test func killingTheActiveBeatProcessHandsOverWithoutDoubleSending() async throws {
        let url = try TestBroker.shared.url()
        let demo = DemoApp.path
        guard DemoApp.isBuilt() else { return }
        let queue = uniqueName("beat-ha")
        let group = uniqueName("beat-ha-group")
        let dir = "\(TestBroker.repoRoot)/.run"
        let schedulePath = "\(dir)/\(queue).yaml"
        try """
        entries:
          tick:
            task: demo.add
            every: 1s
            args: [1, 2]
            queue: \(queue)
            catch_up: all
        """.write(toFile: schedulePath, atomically: true, encoding: .utf8)
        defer { unlink(schedulePath) }
        let watcher = try await BeatWatch(url: url, queue: queue)
        var pids: [pid_t] = []
        var logs: [String] = []
        for i in 0..<2 {
            let log = "\(dir)/\(queue)-\(i).log"
            logs.append(log)
            pids.append(
                try Shell.spawn(
                    demo,
                    [
                        "beat", "--schedule", schedulePath, "--lock", group, "--state", "\(dir)/\(queue)-\(i).state",
                        "--broker", TestBroker.shared.urlString,
                    ], environment: ProcessInfo.processInfo.environment, log: log))
        }
        var alive = Set(pids)
        defer { for p in alive { Shell.kill(p) } }
        var messages = try await watcher.wait(for: 3, within: .seconds(60), "3 runs from the first leader")
        // Which process leads: its log says so. (Bounded polling of another process's output: there is no event.)
        func leaderIndex() -> Int? {
            logs.firstIndex {
                ((try? String(contentsOfFile: $0, encoding: .utf8)) ?? "").contains("beat lock acquired")
            }
        }
        let leader = try #require(leaderIndex())
        Shell.kill(pids[leader])
        alive.remove(pids[leader])
        let killedAt = Date()
        let lastBefore = messages.map(\.instant).max()!
        // The old leader may have had one more run confirmed before the kill; the standby sends the rest.
        messages = try await watcher.wait(
            for: messages.count + 5, within: .seconds(30), "5 more runs after the leader was killed")
        let firstByNew = messages.map(\.instant).filter { $0 > lastBefore }.min()!
        let firstNew = messages.first { $0.instant == firstByNew }!
        let takeover = firstNew.received.timeIntervalSince(killedAt)
        let lateness = firstNew.received.timeIntervalSince(firstNew.instant)
        let standbyLog = (try? String(contentsOfFile: logs[1 - leader], encoding: .utf8)) ?? ""
        #expect(standbyLog.contains("beat lock acquired") && standbyLog.contains("beat sent"), "\(standbyLog)")
        for p in alive { Shell.kill(p) }
        alive.removeAll()
        expectContiguous(watcher.messages, step: 1)
        print(
            "beat takeover: first run from the standby \(String(format: "%.3f", takeover)) s after the kill, \(String(format: "%.3f", lateness)) s after its scheduled instant"
        )
        await watcher.close()
        await deleteQueues([queue, "\(group).state", "\(group).lock"], url: url)
    }
}
