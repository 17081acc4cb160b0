import AMQPTransport
import CeleriacAMQP
import CeleriacCoordination
import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import Foundation
import Testing

/// Global concurrency: N permits on the broker, held unacked while a task runs.
@Suite(.tags(.integration), .serialized)
struct GlobalConcurrencyTests {
    static var demo: String { DemoApp.path }

    /// Three `celeriac-demo` workers (two slots each) under a global limit of 2; one is SIGKILLed in the middle of a
    /// task. The start/end ledger the tasks write never shows three at once, every task completes, and both permits
    /// are back in the queue at the end (none lost with the dead worker, none duplicated). With both pools: in the
    /// process pool the task runs in a child, which must not outlive its dead parent's permit.
    @Test(arguments: ["async", "process"])
    func neverMoreThanTwoRunningAcrossThreeWorkersWhenOneIsKilled(pool: String) async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("gsem")
        let group = "it.sem.\(queue.suffix(8))"
        let ledgerPath = "\(TestBroker.repoRoot)/.run/\(queue).ledger"
        defer { unlink(ledgerPath) }
        let admin = AMQPConnection(url: url, options: .init(name: "it-gsem", confirms: false))
        try await admin.connect()
        _ = try await admin.declare(Topology.workQueue(queue, maxPriority: nil).1)
        let (watcher, events) = try await watchTaskEvents(url: url, name: "it-gsem-events")

        var pids: [String: pid_t] = [:]
        for i in 0..<3 {
            let host = "\(queue.suffix(8))-w\(i)@test"
            pids[host] = try Shell.spawn(
                Self.demo,
                [
                    "worker", "-Q", queue, "-c", "2", "--pool", pool, "-n", host, "-E",
                    "--limit-group", "\(group)=demo.ledger", "--global-concurrency", "\(group)=2", "--broker",
                    TestBroker.shared.urlString,
                ], environment: ProcessInfo.processInfo.environment,
                log: "\(TestBroker.repoRoot)/.run/\(queue)-w\(i).log")
        }
        defer { pids.values.forEach(Shell.kill) }
        try await waitForBroker("three workers consuming", within: .seconds(60)) {
            (try? await admin.inspect(queue: queue).consumerCount) == 3
        }

        let client = try await startClient(url: url, queue: queue)
        var results: [AsyncResult] = []
        for _ in 0..<12 {
            results.append(try await client.send("demo.ledger", args: [.string(ledgerPath), .double(0.6)]))
        }

        // Kill the worker that started the first task, while that task runs (it sleeps 0.6 s).
        let hosts = Set(pids.keys)
        let started = try await first(events.deliveries, within: .seconds(30), "a task-started event from our workers")
        { d in
            startedHost(in: d.body).map(hosts.contains) ?? false
        }
        let victimHost = try #require(startedHost(in: started.body))
        let victim = try #require(pids[victimHost])
        let killedAt = Date().timeIntervalSince1970  // before the kill: the victim's tasks end no earlier than this
        Shell.kill(victim)
        pids[victimHost] = nil

        for r in results { _ = try await r.get(timeout: .seconds(60)) }

        let lines = try String(contentsOfFile: ledgerPath, encoding: .utf8).split(separator: "\n").map {
            $0.split(separator: " ").map(String.init)
        }
        var open: [String: Double] = [:]
        var intervals: [(start: Double, end: Double)] = []
        for l in lines where l.count == 4 {
            let key = "\(l[1]) \(l[2])"
            guard let t = Double(l[3]) else { continue }
            if l[0] == "start" {
                open[key] = t
            } else if let s = open.removeValue(forKey: key) {
                intervals.append((s, t))
            }
        }
        // Runs cut short by the kill end at the kill; any other run without an end is a failure.
        let cut = open.filter { $0.key.hasSuffix(" \(victimHost)") }
        #expect(!cut.isEmpty, "the victim was not running a task when it was killed")
        #expect(cut.count == open.count, "runs of live workers never ended: \(open)")
        for (_, s) in cut { intervals.append((s, killedAt)) }
        let most = maxOverlap(intervals)
        #expect(most <= 2, "\(most) tasks ran at once under a global limit of 2")
        #expect(most == 2, "the limit was never reached (\(most)), so the test proves nothing")
        #expect(intervals.count >= 12 + cut.count)

        // Both permits come back (the dead worker's by itself): none lost, none duplicated.
        let semaphore = CoordinationTopology.semaphoreQueue(group)
        try await waitForBroker("both permits back in \(semaphore)") {
            (try? await admin.inspect(queue: semaphore).messageCount) == 2
        }

        await client.close()
        await watcher.close()
        await admin.close()
        await deleteQueues([queue, semaphore, CoordinationTopology.semaphoreReady(group)], url: url)
    }
}

/// The worker named by the first `task-started` event in a `celeryev` message: one event, or a `task.multi` batch
/// (a JSON array of events).
func startedHost(in body: [UInt8]) -> String? {
    guard let json = try? JSONValue.parse(body) else { return nil }
    let events = json.arrayValue ?? [json]
    return events.first { $0["type"]?.stringValue == "task-started" }?["hostname"]?.stringValue
}

/// In-process cases of the global limits (no extra processes).
@Suite(.tags(.integration), .serialized)
struct GlobalLimitShutdownTests {
    /// A task waiting for a permit when the worker is told to stop does not wait for the permit holder: its message
    /// goes back to the queue at once, and the running task still finishes.
    @Test func warmShutdownReturnsATaskWaitingForAPermit() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("gstop")
        let name = "it.held.\(queue.suffix(8))"
        let gate = Gate()
        var registry = TaskRegistry()
        registry.register(TaskName<NoArguments, Int>(name)) { _, _ in
            await gate.wait()
            return 1
        }
        let (running, _) = try await startCoordinatedWorker(
            registry, url: url, queue: queue,
            limits: [try GlobalLimit(name: name, concurrency: 1)], concurrency: 2)
        let client = try await startClient(url: url, queue: queue)
        let admin = AMQPConnection(url: url, options: .init(name: "it-gstop", confirms: false))
        try await admin.connect()
        let holder = try await client.send(name)
        _ = try await first(running.observer.started, within: .seconds(20), "the first task to start") { $0 == name }
        _ = try await client.send(name)
        // Delivered (nothing ready) while the only permit is held: the second task waits for it.
        try await waitForBroker("the second task delivered") {
            (try? await admin.inspect(queue: queue).messageCount) == 0
        }

        let stopping = Task { try await running.stop() }
        _ = try await first(running.observer.requeued, within: .seconds(10), "the waiting task to go back to the queue")
        { $0 == queue }
        gate.open()
        #expect(try await holder.get(timeout: .seconds(20)) == .int(1))
        try await stopping.value
        #expect(try await admin.inspect(queue: queue).messageCount == 1)
        await client.close()
        await admin.close()
        await deleteQueues(
            [queue, CoordinationTopology.semaphoreQueue(name), CoordinationTopology.semaphoreReady(name)], url: url)
    }
}
