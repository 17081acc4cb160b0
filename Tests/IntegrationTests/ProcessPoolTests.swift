import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import Foundation
import Synchronization
import Testing

/// The process pool end to end: the real `celeriac-demo worker --pool process` executable, whose children are
/// `celeriac-demo pool-child` processes, against the throwaway broker.
@Suite(.tags(.integration), .serialized)
struct ProcessPoolTests {
    static var demo: String { DemoApp.path }

    /// A worker process started by the test; killed and reaped at the end whatever happens.
    final class WorkerProcess: Sendable {
        let pid: pid_t
        let log: String
        let node: String
        private let reaped = Mutex(false)

        init(queue: String, _ extra: [String]) throws {
            guard FileManager.default.isExecutableFile(atPath: ProcessPoolTests.demo) else {
                throw Shell.Failure(
                    command: ProcessPoolTests.demo, status: 127,
                    output: "missing: `swift build --build-tests` builds it (scripts/test.sh does)")
            }
            log = "\(TestBroker.repoRoot)/.run/\(queue)-\(UUID().uuidString.prefix(8)).log"
            node = "\(queue)-\(UUID().uuidString.prefix(8))@test"
            pid = try Shell.spawn(
                ProcessPoolTests.demo,
                [
                    "worker", "-Q", queue, "-n", node, "--pool", "process",
                    "--broker", TestBroker.shared.urlString,
                ] + extra,
                environment: ProcessInfo.processInfo.environment, log: log)
        }

        /// The live pool children: processes whose parent is this worker (read from /proc).
        var children: [pid_t] { ProcessPoolTests.children(of: pid) }

        var isRunning: Bool {
            reaped.withLock { done in
                if done { return false }
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid { done = true }
                return !done
            }
        }

        /// SIGKILL and reap (off the cooperative pool: waitpid blocks).
        func killAndReap() async {
            guard !reaped.withLock({ $0 }) else { return }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                Thread.detachNewThread { [self] in
                    reaped.withLock { done in
                        if !done {
                            kill(pid, SIGKILL)
                            var status: Int32 = 0
                            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
                            done = true
                        }
                    }
                    c.resume()
                }
            }
        }

        /// SIGTERM (warm shutdown) and wait for the exit status.
        func terminate() async -> Int32 {
            kill(pid, SIGTERM)
            return await withCheckedContinuation { c in
                Thread.detachNewThread { [self] in
                    var status: Int32 = 0
                    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
                    reaped.withLock { $0 = true }
                    c.resume(returning: status)
                }
            }
        }

        var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
    }

    static func children(of parent: pid_t) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { name -> pid_t? in
            guard let pid = pid_t(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            // Fields after "(comm)": state, ppid, ...
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 1, fields[0] != "Z", pid_t(fields[1]) == parent else { return nil }
            return pid
        }.sorted()
    }

    /// The worker's remote-control `stats` reply (what `celery inspect stats` shows), over the pidbox exchange.
    static func stats(of node: String, url: AMQPURL) async throws -> JSONValue {
        let c = AMQPConnection(url: url, options: .init(name: "it-pool-stats", confirms: false))
        try await c.connect()
        let replies = uniqueName("stats-reply")
        try await c.declare(QueueSpec(replies, durable: false, exclusive: true, autoDelete: true))
        try await c.declare(ExchangeSpec("reply.celery.pidbox", kind: .direct, durable: false))
        try await c.bind(BindingSpec(queue: replies, exchange: "reply.celery.pidbox", routingKey: replies))
        let stream = try await c.consume(queue: replies, prefetch: 0, noAck: true)
        let request: JSONValue = [
            "method": "stats", "arguments": [:], "destination": [.string(node)],
            "reply_to": ["exchange": "reply.celery.pidbox", "routing_key": .string(replies)],
            "ticket": .string(uniqueName()),
        ]
        try await c.publish(
            OutgoingMessage(
                exchange: "celery.pidbox", routingKey: "", body: request.jsonBytes,
                properties: BasicProperties(contentType: "application/json")))
        let reply = try await first(stream.deliveries, within: .seconds(20), "the stats reply") { _ in true }
        await c.close()
        return try JSONValue.parse(reply.body)[node] ?? .null
    }

    static func isAlive(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        return stat[stat.index(after: close)...].split(separator: " ").first != "Z"
    }

    /// Bounded polling of process state, for which there is no event to wait on.
    static func poll(_ what: String, timeout: Duration = .seconds(30), _ condition: @escaping @Sendable () -> Bool)
        async throws
    {
        try await within(timeout, what) {
            while !condition() { try await Task.sleep(for: .milliseconds(50)) }
        }
    }

    static func failure(of result: AsyncResult, timeout: Duration = .seconds(120)) async -> TaskFailure? {
        do {
            _ = try await result.get(timeout: timeout)
            return nil
        } catch .taskFailed(_, _, let failure) {
            return failure
        } catch {
            return TaskFailure(type: "unexpected", arguments: [.string(error.description)], module: "test")
        }
    }

    @Test func crashesAmongAThousandAddsFailAloneAndThePoolStaysFull() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("pool-crash")
        let client = try await startClient(url: url, queue: queue)
        let metricsPort = try freeLoopbackPort()
        let worker = try WorkerProcess(
            queue: queue, ["-c", "4", "--metrics-port", String(metricsPort), "--metrics-bind", "127.0.0.1"])
        defer { Task { await worker.killAndReap() } }

        var adds: [(AsyncResult, Int64)] = []
        var crashes: [AsyncResult] = []
        for i in 0..<1000 {
            adds.append((try await client.send("demo.add", args: [.int(Int64(i)), 1000]), Int64(i) + 1000))
            if i % 50 == 25 { crashes.append(try await client.send("demo.crash")) }
        }
        #expect(crashes.count == 20)
        for (result, expected) in adds {
            let value = try await result.get(timeout: .seconds(180))
            #expect(value == .int(expected), "demo.add result \(value), expected \(expected)")
        }
        for crash in crashes {
            let failure = await Self.failure(of: crash)
            #expect(
                failure?.type == "WorkerLostError" && failure?.module == "billiard.exceptions",
                "\(String(describing: failure))")
            #expect(failure?.message.contains("signal") == true, "\(String(describing: failure))")
        }
        #expect(worker.isRunning, "the worker process died: \(worker.output.suffix(2000))")
        // Replacements start right after each crash; wait (bounded) for the pool to be full again.
        try await Self.poll("4 live pool children") { worker.children.count == 4 }
        // And the new children work.
        #expect(try await client.send("demo.add", args: [40, 2]).get(timeout: .seconds(30)) == .int(42))
        #expect(worker.output.contains("reason=worker_lost"))
        // The stats reply names the same children and counts the losses. A crashed child may still be writing
        // its core dump (alive to /proc, already replaced or about to be): ask until both views agree (bounded).
        let node = worker.node
        let pool: JSONValue? = try await within(.seconds(30), "stats to name the 4 live children") {
            while true {
                let pool = try await Self.stats(of: node, url: url)["pool"]
                let named = Set(pool?["processes"]?.arrayValue?.compactMap(\.intValue) ?? [])
                if named.count == 4, named == Set(worker.children.map(Int64.init)) { return pool }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        #expect(pool?["implementation"] == "celeriac.process")
        #expect(pool?["worker-lost"] == 20 && pool?["child-restarts"] == 20, "\(String(describing: pool))")
        // And the metrics count them.
        let metrics = try httpGet(port: metricsPort, path: "/metrics").body
        #expect(metrics.contains(#"celeriac_pool_child_restarts_total{reason="worker_lost"} 20"#), "\(metrics)")
        #expect(
            metrics.contains(
                #"celeriac_tasks_finished_total{task="demo.crash",queue="\#(queue)",outcome="worker_lost"} 20"#),
            "\(metrics)")
        #expect(metrics.contains("celeriac_pool_processes 4"), "\(metrics)")
        await worker.killAndReap()
        await client.close()
        await deleteQueues([queue], url: url)
    }

    /// One child, tasks pipelined into it (prefetch 4 x 1 slot): crashes with adds queued behind them. Each crash
    /// fails alone with WorkerLost; the adds waiting in the dead child had not started and run in its replacement.
    /// (The order inside the child is certain in `ProcessPoolPipelineTests`; here it is the worker's end to end.)
    @Test func crashesPipelinedAheadOfAddsOnASingleChildFailAlone() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("pool-pipe")
        let client = try await startClient(url: url, queue: queue)
        let worker = try WorkerProcess(
            queue: queue, ["-c", "1", "--prefetch-multiplier", "4", "--pipeline-depth", "3"])
        defer { Task { await worker.killAndReap() } }
        var adds: [(AsyncResult, Int64)] = []
        var crashes: [AsyncResult] = []
        for round in 0..<5 {
            crashes.append(try await client.send("demo.crash"))
            for i in 0..<10 {
                adds.append(
                    (try await client.send("demo.add", args: [.int(Int64(round)), .int(Int64(i))]), Int64(round + i)))
            }
        }
        for (result, expected) in adds {
            #expect(try await result.get(timeout: .seconds(120)) == .int(expected))
        }
        for crash in crashes {
            let failure = await Self.failure(of: crash)
            #expect(failure?.type == "WorkerLostError", "\(String(describing: failure))")
        }
        #expect(worker.isRunning, "the worker process died: \(worker.output.suffix(2000))")
        await worker.killAndReap()
        await client.close()
        await deleteQueues([queue], url: url)
    }

    @Test func hardTimeLimitKillsASpinningTaskAndTheSlotIsUsableAgain() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("pool-limit")
        let client = try await startClient(url: url, queue: queue)
        let worker = try WorkerProcess(queue: queue, ["-c", "1"])
        defer { Task { await worker.killAndReap() } }

        let before = try await client.send("demo.pid").get(timeout: .seconds(60))
        var options = SendOptions()
        options.hardTimeLimit = 1
        let start = ContinuousClock.now
        // demo.spin is a busy loop that ignores cancellation: only killing its process stops it before 60 s.
        let spin = try await client.send("demo.spin", args: [60], options: options)
        let failure = await Self.failure(of: spin, timeout: .seconds(30))
        let elapsed = ContinuousClock.now - start
        #expect(
            failure?.type == "TimeLimitExceeded" && failure?.module == "billiard.exceptions",
            "\(String(describing: failure))")
        #expect(elapsed < .seconds(30), "took \(elapsed)")
        // The only slot runs the next task, in a new child.
        let after = try await client.send("demo.pid").get(timeout: .seconds(30))
        #expect(after != before, "pid before \(before), after \(after)")
        #expect(try await client.send("demo.add", args: [1, 2]).get(timeout: .seconds(30)) == .int(3))
        #expect(worker.output.contains("reason=time_limit"))
        await worker.killAndReap()
        await client.close()
        await deleteQueues([queue], url: url)
    }

    @Test func softTimeLimitCancelsTheTaskInsideItsChild() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("pool-soft")
        let client = try await startClient(url: url, queue: queue)
        let worker = try WorkerProcess(queue: queue, ["-c", "1"])
        defer { Task { await worker.killAndReap() } }

        let before = try await client.send("demo.pid").get(timeout: .seconds(60))
        var options = SendOptions()
        options.softTimeLimit = 0.5
        // demo.sleep honours cancellation: the soft limit ends it long before 60 s, without killing the child.
        let sleep = try await client.send("demo.sleep", args: [60], options: options)
        let failure = await Self.failure(of: sleep, timeout: .seconds(30))
        #expect(
            failure?.type == "SoftTimeLimitExceeded" && failure?.module == "billiard.exceptions",
            "\(String(describing: failure))")
        #expect(
            try await client.send("demo.pid").get(timeout: .seconds(30)) == before,
            "the child survives a soft time limit")
        // Inside the child the task sees SoftTimeLimitExceeded (not a bare cancellation), catches it and returns.
        let tidy = try await client.send("demo.tidy_sleep", args: [60], options: options).get(timeout: .seconds(30))
        #expect(tidy == .string("tidied up after the soft time limit of 0.5s"))
        await worker.killAndReap()
        await client.close()
        await deleteQueues([queue], url: url)
    }

    @Test func maxTasksPerChildRecyclesChildrenWithoutLosingTasks() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("pool-recycle")
        let client = try await startClient(url: url, queue: queue)
        let worker = try WorkerProcess(queue: queue, ["-c", "2", "--max-tasks-per-child", "10"])
        defer { Task { await worker.killAndReap() } }

        var results: [AsyncResult] = []
        for _ in 0..<100 { results.append(try await client.send("demo.pid")) }
        var perPID: [Int64: Int] = [:]
        for r in results {
            let pid = try #require(try await r.get(timeout: .seconds(120)).intValue)
            perPID[pid, default: 0] += 1
        }
        #expect(perPID.values.reduce(0, +) == 100)
        // Each child runs at most 10 tasks, so 100 tasks need at least 10 different children.
        #expect(perPID.values.allSatisfy { $0 <= 10 }, "\(perPID)")
        #expect(perPID.count >= 10, "\(perPID)")
        #expect(!perPID.keys.contains(Int64(worker.pid)), "tasks must run in children, not in the worker")
        try await Self.poll("2 live pool children") { worker.children.count == 2 }
        await worker.killAndReap()
        await client.close()
        await deleteQueues([queue], url: url)
    }

    @Test func maxMemoryPerChildRetiresAChildThatGrewTooBig() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("pool-memory")
        let client = try await startClient(url: url, queue: queue)
        // 1 KiB: every child is over the limit after its first task, so each task gets a fresh child.
        let worker = try WorkerProcess(queue: queue, ["-c", "1", "--max-memory-per-child", "1"])
        defer { Task { await worker.killAndReap() } }
        var pids: [JSONValue] = []
        for _ in 0..<3 { pids.append(try await client.send("demo.pid").get(timeout: .seconds(60))) }
        #expect(Set(pids).count == 3, "\(pids)")
        #expect(worker.output.contains("exceeds the memory limit"))
        await worker.killAndReap()
        await client.close()
        await deleteQueues([queue], url: url)
    }

    @Test func warmShutdownFinishesTheRunningTaskThenStopsTheChildren() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("pool-warm")
        let client = try await startClient(url: url, queue: queue)
        // Task events (-E) tell when the task has started.
        let (watcher, stream) = try await watchTaskEvents(url: url, name: "it-pool-warm")
        let worker = try WorkerProcess(queue: queue, ["-c", "2", "-E"])
        defer { Task { await worker.killAndReap() } }
        try await Self.poll("2 live pool children") { worker.children.count == 2 }
        let children = worker.children
        let sleep = try await client.send("demo.sleep", args: [1.5])
        _ = try await first(stream.deliveries, within: .seconds(60), "task-started") { d in
            taskEvents(in: d.body).contains { $0["type"] == "task-started" }
        }
        let status = await worker.terminate()
        #expect(status == 0, "exit status \(status): \(worker.output.suffix(2000))")
        #expect(
            try await sleep.get(timeout: .seconds(10)).doubleValue == 1.5,
            "the running task finished during the warm shutdown")
        #expect(children.allSatisfy { !Self.isAlive($0) }, "children left behind: \(children.filter(Self.isAlive))")
        await watcher.close()
        await client.close()
        await deleteQueues([queue], url: url)
    }

    @Test func sigkillOfTheParentLeavesNoChildAndTheTasksAreRedelivered() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("pool-orphan")
        let client = try await startClient(url: url, queue: queue)
        let first = try WorkerProcess(queue: queue, ["-c", "2"])
        defer { Task { await first.killAndReap() } }
        try await Self.poll("2 live pool children") { first.children.count == 2 }
        let children = first.children

        let inspector = AMQPConnection(url: url, options: .init(name: "it-pool-orphan", confirms: false))
        try await inspector.connect()
        // Long enough that the first worker cannot finish them before it is killed.
        let sleeps = [try await client.send("demo.sleep", args: [8]), try await client.send("demo.sleep", args: [8])]
        // No message ready means both were delivered to (and are unacked at) the first worker. Bounded polling of the
        // queue: the broker has no event for it.
        try await within(.seconds(30), "both messages delivered to the first worker") {
            while try await inspector.inspect(queue: queue).messageCount > 0 {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        await first.killAndReap()
        // Each child notices the parent's death (its request pipe hits EOF) and exits.
        try await Self.poll("every child of the killed worker to exit", timeout: .seconds(5)) {
            children.allSatisfy { !Self.isAlive($0) }
        }

        let second = try WorkerProcess(queue: queue, ["-c", "2"])
        defer { Task { await second.killAndReap() } }
        for s in sleeps {
            // Only the second worker can have run them: the first died before either could finish.
            #expect(try await s.get(timeout: .seconds(120)).doubleValue == 8)
        }
        await second.killAndReap()
        await inspector.close()
        await client.close()
        await deleteQueues([queue], url: url)
    }

    @Test func aMessageThatKeepsKillingChildrenEndsInTheDeadLetterQueue() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("pool-dlq")
        let raw = AMQPConnection(url: url, options: .init(name: "it-pool-dlq"))
        try await raw.connect()
        // A private queue that receives this test's dead letters only (the DLX routes by source queue).
        let dead = uniqueName("dead")
        try await raw.declare(QueueSpec(dead, durable: false).expires(milliseconds: 120_000))
        try await raw.bind(BindingSpec(queue: dead, exchange: Topology.deadLetterExchange, routingKey: queue))
        let client = try await startClient(url: url, queue: queue)
        let worker = try WorkerProcess(queue: queue, ["-c", "2", "--max-worker-lost", "3"])
        defer { Task { await worker.killAndReap() } }

        // demo.crash_requeue has reject_on_worker_lost: requeued after the 1st and 2nd loss, dead-lettered at the 3rd.
        let crash = try await client.send("demo.crash_requeue")
        let failure = await Self.failure(of: crash)
        #expect(failure?.type == "WorkerLostError", "\(String(describing: failure))")
        let consumer = try await raw.consume(queue: dead, prefetch: 1)
        let letter = try await first(consumer.deliveries, within: .seconds(30), "the dead letter") { _ in true }
        #expect(
            letter.properties.headers?[HeaderKey.deadReason]?.stringValue?.hasPrefix("worker_lost") == true,
            "\(String(describing: letter.properties.headers))")
        #expect(letter.properties.headers?["id"]?.stringValue == crash.id)
        // The dead-lettered copy is the third delivery: two losses counted before it.
        #expect(
            letter.properties.headers?["x-celeriac-worker-lost"]?.intValue == 2,
            "\(String(describing: letter.properties.headers))")
        #expect(worker.output.components(separatedBy: "the task is requeued").count - 1 == 2)
        // Nothing loops: the queue is empty and the worker serves.
        #expect(try await raw.inspect(queue: queue).messageCount == 0)
        #expect(try await client.send("demo.add", args: [2, 2]).get(timeout: .seconds(30)) == .int(4))
        await worker.killAndReap()
        await raw.close()
        await client.close()
        await deleteQueues([queue, dead], url: url)
    }
}
