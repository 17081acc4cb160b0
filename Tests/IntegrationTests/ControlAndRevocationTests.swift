import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import Foundation
import Testing

/// Remote control without Python (`inspect`, `control`, `events` of `celeriac-demo`) and durable revocations:
/// revoked ids live on the broker (`celeriac.revoked`) and reach workers that start after the revocation.
@Suite(.tags(.integration), .serialized)
struct ControlAndRevocationTests {
    static var demo: String { DemoApp.path }

    func cli(_ args: [String]) async -> (ok: Bool, output: String) {
        await Shell.runOffPoolWithStatus(
            Self.demo, args + ["--broker", TestBroker.shared.urlString],
            environment: ProcessInfo.processInfo.environment)
    }

    /// The last line of a command's output as JSON (the `--json` replies).
    func lastJSON(_ output: String) throws -> JSONValue {
        let line = try #require(output.split(separator: "\n").last, "no output")
        return try JSONValue.parse(String(line))
    }

    func spawnWorker(queue: String, node: String, concurrency: Int = 1) throws -> pid_t {
        try Shell.spawn(
            Self.demo,
            [
                "worker", "-Q", queue, "-c", String(concurrency), "-n", node, "-E", "--broker",
                TestBroker.shared.urlString,
            ],
            environment: ProcessInfo.processInfo.environment, log: "\(TestBroker.repoRoot)/.run/\(node).log")
    }

    /// Waits for an event of `type` about task `id` on a watcher from ``watchTaskEvents(url:name:)``.
    func awaitEvent(_ consumer: AMQPConsumer, _ type: String, id: String) async throws {
        _ = try await first(consumer.deliveries, within: .seconds(60), "\(type) of \(id)") { d in
            taskEvents(in: d.body).contains { $0["type"]?.stringValue == type && $0["uuid"]?.stringValue == id }
        }
    }

    /// The outcome of waiting for a result, as a value (a typed-throws catch in a loop of an async test is
    /// avoided: it makes the compiler's SIL passes very slow).
    func outcome(_ result: AsyncResult) async -> String {
        do {
            let value = try await result.get(timeout: .seconds(60))
            return "SUCCESS \(value.jsonString)"
        } catch .taskRevoked {
            return "REVOKED"
        } catch {
            return "ERROR \(error)"
        }
    }

    @Test func inspectControlAndEventsFromTheSwiftCLI() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("ctl")
        let node = "ctl-\(queue.suffix(8))@test"
        let running = try await startWorker(
            TestTasks.registry(), url: url, queues: [queue], concurrency: 2, hostname: node, events: true)
        let client = try await startClient(url: url, queue: queue)

        let ping = await cli(["inspect", "ping", "-d", node, "--json"])
        #expect(ping.ok, "\(ping.output)")
        #expect(try lastJSON(ping.output)[node]?["ok"]?.stringValue == "pong", "\(ping.output)")

        let registered = await cli(["inspect", "registered", "-d", node, "--json"])
        let names = try lastJSON(registered.output)[node]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(names.contains("it.add") && names.contains("it.mul"), "\(registered.output)")

        _ = try await client.send("it.add", args: [1, 2]).get(timeout: .seconds(30))
        let stats = await cli(["inspect", "stats", "-d", node, "--json"])
        #expect(try lastJSON(stats.output)[node]?["total"]?["it.add"]?.intValue == 1, "\(stats.output)")

        let readable = await cli(["inspect", "ping", "-d", node])
        #expect(readable.output.contains("-> \(node): OK") && readable.output.contains("pong"), "\(readable.output)")

        let rate = await cli(["control", "rate_limit", "it.add", "100/s", "-d", node, "--json"])
        #expect(
            try lastJSON(rate.output)[node]?["ok"]?.stringValue == "new rate limit set successfully", "\(rate.output)")
        let unknownTask = await cli(["control", "rate_limit", "no.such.task", "1/s", "-d", node, "--json"])
        #expect(
            try lastJSON(unknownTask.output)[node]?["error"]?.stringValue == "unknown task", "\(unknownTask.output)")

        // it.nap sleeps 120 s; a 0.3 s soft limit set at run time stops it.
        let limits = await cli(["control", "time_limit", "it.nap", "0.3", "10", "-d", node, "--json"])
        #expect(
            try lastJSON(limits.output)[node]?["ok"]?.stringValue == "time limits set successfully", "\(limits.output)")
        let napped = await outcome(try await client.send("it.nap"))
        #expect(napped.contains("SoftTimeLimitExceeded"), "\(napped)")

        let nobody = await cli(["inspect", "ping", "-d", "nobody@nowhere", "--timeout", "0.5"])
        #expect(!nobody.ok && nobody.output.contains("no nodes replied"), "\(nobody.output)")
        let badMethod = await cli(["inspect", "frobnicate"])
        #expect(!badMethod.ok && badMethod.output.contains("unknown inspect method"), "\(badMethod.output)")

        // `events` prints the events of a task it sees happen (the ready line on stderr comes first).
        let eventsLog = "\(TestBroker.repoRoot)/.run/\(queue)-events.log"
        let eventsErr = "\(TestBroker.repoRoot)/.run/\(queue)-events.err"
        let tail = try Shell.spawn(
            Self.demo,
            [
                "events", "--json", "--no-heartbeats", "--count", "4", "--timeout", "60",
                "--broker", TestBroker.shared.urlString,
            ],
            environment: ProcessInfo.processInfo.environment, stdout: eventsLog, stderr: eventsErr)
        defer { Shell.kill(tail) }
        try await within(.seconds(30), "the events command to listen") {
            while !((try? String(contentsOfFile: eventsErr, encoding: .utf8))?.contains("listening for events") ?? false)
            {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        // A client with Celery's task_send_sent_event adds task-sent.
        let announcing = CeleriacClient(
            configuration: .init(defaultQueue: queue, connectionName: "it-sent", sendSentEvents: true),
            broker: AMQPBroker(url: url))
        try await announcing.start()
        let sent = try await announcing.send("it.add", args: [20, 22])
        let answer = try await sent.get(timeout: .seconds(30))
        #expect(answer == .int(42))
        try await within(.seconds(30), "the events command to exit after 4 events") {
            while kill(tail, 0) == 0 {
                var status: Int32 = 0
                if waitpid(tail, &status, WNOHANG) == tail { break }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        let lines = try String(contentsOfFile: eventsLog, encoding: .utf8).split(separator: "\n").compactMap {
            try? JSONValue.parse(String($0))
        }
        let ours = lines.filter { $0["uuid"]?.stringValue == sent.id }.compactMap { $0["type"]?.stringValue }
        // The worker's events keep their order; the client's task-sent comes from another connection, so it may
        // arrive after them (receivers order by timestamp/clock, as Celery's do).
        let workerEvents: [String] = ours.filter { $0 != "task-sent" }
        let expected: [String] = ["task-received", "task-started", "task-succeeded"]
        #expect(workerEvents == expected, "\(lines)")
        #expect(ours.filter { $0 == "task-sent" }.count == 1, "\(lines)")

        try await running.stop()
        await announcing.close()
        await client.close()
        await deleteQueues([queue], url: url)
    }

    /// Revoke a running, a queued and an ETA-held task (Swift) and a queued one (Python's `celery control revoke`),
    /// SIGKILL the only worker, start a new one: it runs none of them (each ends REVOKED).
    @Test func revocationsReachWorkersStartedLater() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("rvk")
        let client = try await startClient(url: url, queue: queue)
        let (watcher, events) = try await watchTaskEvents(url: url, name: "it-revoke-events")
        let first = try spawnWorker(queue: queue, node: "rvk-a-\(queue.suffix(8))@test")
        var firstAlive = true
        defer { if firstAlive { Shell.kill(first) } }

        // One slot: the sleep runs, the others wait in the queue or in the broker's delay topology.
        let running = try await client.send("demo.sleep", args: [60])
        try await awaitEvent(events, "task-started", id: running.id)
        let queued = try await client.send("demo.add", args: [1, 1])
        var later = SendOptions()
        later.countdown = 2
        let held = try await client.send("demo.add", args: [2, 2], options: later)
        let byPython = try await client.send("demo.add", args: [3, 3])

        let control = ControlClient(broker: AMQPBroker(url: url))
        try await control.start()
        let replies = try await control.revoke([running.id, queued.id, held.id])
        #expect(replies.count == 1, "the running worker acknowledges the revoke: \(replies)")

        var env = ProcessInfo.processInfo.environment
        env["CELERIAC_INTEROP_BROKER"] = TestBroker.shared.urlString
        env["PYTHONPATH"] = CeleryInteropTests.interopDir
        let python = await Shell.runOffPoolWithStatus(
            try TestPython.path(), ["-m", "celery", "-A", "interop_app", "control", "revoke", byPython.id],
            environment: env)
        #expect(python.ok, "\(python.output)")
        // The worker that got Celery's broadcast writes it to the log: wait until the log has it.
        try await awaitLogged(byPython.id, url: url)

        Shell.kill(first)  // SIGKILL: the running sleep goes back to the queue, unacknowledged
        firstAlive = false
        let second = try spawnWorker(queue: queue, node: "rvk-b-\(queue.suffix(8))@test", concurrency: 2)
        defer { Shell.kill(second) }

        for (what, result) in [
            ("running", running), ("queued", queued), ("eta-held", held), ("revoked from Python", byPython),
        ] {
            let got = await outcome(result)
            #expect(got == "REVOKED", "the \(what) task: \(got)")
        }
        await control.close()
        await watcher.close()
        await client.close()
        await deleteQueues([queue], url: url)
    }

    /// `pool_grow` / `pool_shrink` change a process-pool worker's children; `add_consumer` / `cancel_consumer`
    /// change its queues, all through the Swift CLI.
    @Test func poolSizeAndQueuesChangeAtRunTime() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("rt")
        let extra = uniqueName("rt-extra")
        let node = "rt-\(queue.suffix(8))@test"
        let pid = try spawnWorker(queue: queue, node: node, concurrency: 2)
        defer { Shell.kill(pid) }
        let client = try await startClient(url: url, queue: queue)
        _ = try await client.send("demo.add", args: [1, 1]).get(timeout: .seconds(60))  // the worker is up

        @Sendable func processes() async throws -> Int {
            let stats = await cli(["inspect", "stats", "-d", node, "--json"])
            return try lastJSON(stats.output)[node]?["pool"]?["processes"]?.arrayValue?.count ?? -1
        }
        #expect(try await processes() == 2)
        let grow = await cli(["control", "pool_grow", "2", "-d", node, "--json"])
        #expect(try lastJSON(grow.output)[node]?["ok"]?.stringValue == "pool will grow to 4", "\(grow.output)")
        // Children start asynchronously: ask until the pool reports them (bounded).
        try await within(.seconds(30), "4 pool children") {
            while (try await processes()) != 4 { try await Task.sleep(for: .milliseconds(50)) }
        }
        let shrink = await cli(["control", "pool_shrink", "3", "-d", node, "--json"])
        #expect(try lastJSON(shrink.output)[node]?["ok"]?.stringValue == "pool will shrink to 1", "\(shrink.output)")
        try await within(.seconds(30), "1 pool child") {
            while (try await processes()) != 1 { try await Task.sleep(for: .milliseconds(50)) }
        }
        let stillRuns = try await client.send("demo.add", args: [2, 3]).get(timeout: .seconds(60))
        #expect(stillRuns == .int(5))

        let add = await cli(["control", "add_consumer", extra, "-d", node, "--json"])
        #expect(try lastJSON(add.output)[node]?["ok"]?.stringValue == "add consumer \(extra)", "\(add.output)")
        var toExtra = SendOptions()
        toExtra.queue = extra
        let viaExtra = try await client.send("demo.add", args: [20, 22], options: toExtra).get(timeout: .seconds(60))
        #expect(viaExtra == .int(42))
        let queues = await cli(["inspect", "active_queues", "-d", node, "--json"])
        let names = try lastJSON(queues.output)[node]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        #expect(Set(names) == Set([queue, extra]), "\(queues.output)")

        let cancel = await cli(["control", "cancel_consumer", extra, "-d", node, "--json"])
        #expect(
            try lastJSON(cancel.output)[node]?["ok"]?.stringValue == "no longer consuming from \(extra)",
            "\(cancel.output)")
        let admin = AMQPConnection(url: url, options: .init(name: "it-rt-admin", confirms: false))
        try await admin.connect()
        #expect(try await admin.inspect(queue: extra).consumerCount == 0)
        let last = await cli(["control", "cancel_consumer", queue, "-d", node, "--json"])
        #expect(
            try lastJSON(last.output)[node]?["error"]?.stringValue?.contains("last queue") == true, "\(last.output)")

        await admin.close()
        await client.close()
        await deleteQueues([queue, extra], url: url)
    }

    /// Garbage on the pidbox exchange is ignored with a log line, an unknown method gets Celery's KeyError reply,
    /// and the worker keeps answering and running tasks.
    @Test func badRemoteControlMessagesAreIgnoredOrAnsweredWithAnError() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("badctl")
        let node = "badctl-\(queue.suffix(8))@test"
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue], hostname: node)
        let control = ControlClient(broker: AMQPBroker(url: url))
        try await control.start()
        let raw = AMQPConnection(url: url, options: .init(name: "it-bad-pidbox", confirms: true))
        try await raw.connect()
        for body in ["not json at all", #"{"no_method": true}"#, #"[1, 2, 3]"#, #"{"method": 42}"#] {
            try await raw.publish(
                OutgoingMessage(exchange: ControlClient.exchange, routingKey: "", body: Array(body.utf8)))
        }
        let unknown = try await control.call("frobnicate", destination: [node])
        #expect(unknown[node]?["error"]?.stringValue == "KeyError('frobnicate')", "\(unknown)")
        let pong = try await control.call("ping", destination: [node])
        #expect(pong[node]?["ok"]?.stringValue == "pong", "\(pong)")
        let client = try await startClient(url: url, queue: queue)
        let sum = try await client.send("it.add", args: [2, 2]).get(timeout: .seconds(30))
        #expect(sum == .int(4))
        await client.close()
        await raw.close()
        await control.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    /// Reads the revocation log from its start until it holds `id`.
    func awaitLogged(_ id: String, url: AMQPURL) async throws {
        let reader = AMQPConnection(url: url, options: .init(name: "it-revocation-log", confirms: false))
        try await reader.connect()
        let log = try await reader.consume(
            queue: RevocationLog.queue, prefetch: 1000, arguments: RevocationLog.fromFirst)
        _ = try await first(log.deliveries, within: .seconds(30), "\(id) in \(RevocationLog.queue)") { d in
            reader.ackInBackground(d.tag)
            if case .revoke(let logged, _, _)? = RevocationLog.decode(d.body) { return logged == id }
            return false
        }
        await reader.close()
    }

    /// Workers started together on a broker that has no revocation log yet race to create its stream; the losers
    /// see it missing for a moment and their connection is closed. They must wait and try again, not fail to start
    /// (found by the multi-host harness, Tests/Chaos).
    @Test func workersStartingTogetherOnAFreshVhostAllReplayTheLog() async throws {
        let broker = TestBroker.shared
        let (vhost, url) = try broker.freshVhost("fresh")
        defer { _ = try? broker.ctl("delete_vhost", vhost) }
        let queue = uniqueName("fresh-q")
        let workers = try await withThrowingTaskGroup(of: RunningWorker.self) { group in
            for i in 0..<4 {
                group.addTask {
                    try await startWorker(
                        TestTasks.registry(), url: url, queues: [queue], hostname: "fresh\(i)-\(queue.suffix(6))@test")
                }
            }
            var started: [RunningWorker] = []
            for try await w in group { started.append(w) }
            return started
        }
        #expect(workers.count == 4)
        let client = try await startClient(url: url, queue: queue)
        #expect(try await client.send("it.add", args: [20, 22]).get(timeout: .seconds(30)) == .int(42))
        await client.close()
        for w in workers { try await w.stop() }
    }
}
