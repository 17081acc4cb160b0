import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import Foundation
import Testing

/// The `celeriac-demo` executable end to end, as the quick start uses it: a worker process, `call`, `purge`,
/// bad input on the command line, and a clean exit on SIGTERM.
@Suite(.tags(.integration))
struct DemoCLITests {
    static var demo: String { DemoApp.path }

    func cli(_ args: [String]) async -> (ok: Bool, output: String) { await DemoApp.run(args) }

    @Test func workerProcessCallAndShutdown() async throws {
        let url = try TestBroker.shared.url()
        let broker = TestBroker.shared.urlString
        let queue = uniqueName("cli")
        guard DemoApp.isBuilt() else { return }
        let log = "\(TestBroker.repoRoot)/.run/\(queue).log"
        let pid = try Shell.spawn(
            Self.demo, ["worker", "-Q", queue, "-c", "2", "-n", "\(queue)@test", "--broker", broker],
            environment: ProcessInfo.processInfo.environment, log: log)
        var exited = false
        defer { if !exited { Shell.kill(pid) } }

        // The first call also waits for the worker process to come up.
        let add = await cli([
            "call", "demo.add", "--args", "[2,3]", "--queue", queue, "--wait", "--timeout", "60", "--broker", broker,
        ])
        #expect(add.ok && add.output.split(separator: "\n").last == "5", "\(add.output)")
        let xsum = await cli([
            "call", "demo.xsum", "--args", "[[1,2,3,4]]", "--queue", queue, "--wait", "--broker", broker,
        ])
        #expect(xsum.output.split(separator: "\n").last == "10", "\(xsum.output)")
        let mul = await cli([
            "call", "demo.mul", "--kwargs", #"{"x": 6, "y": 7}"#, "--queue", queue, "--wait", "--broker", broker,
        ])
        #expect(mul.output.split(separator: "\n").last == "42", "\(mul.output)")
        // Fails and retries itself (countdown 0.1 s) until its retries header reaches 2, then returns 2.
        let flaky = await cli([
            "call", "demo.flaky", "--args", "[2]", "--queue", queue, "--wait", "--timeout", "60", "--broker", broker,
        ])
        #expect(flaky.ok && flaky.output.split(separator: "\n").last == "2", "\(flaky.output)")
        let echo = await cli([
            "call", "demo.echo", "--kwargs", #"{"value": {"a": [1, null, "ü"]}}"#, "--queue", queue, "--wait",
            "--broker", broker,
        ])
        #expect(echo.output.split(separator: "\n").last == #"{"a":[1,null,"ü"]}"#, "\(echo.output)")
        let fail = await cli([
            "call", "demo.fail", "--args", #"["boom"]"#, "--queue", queue, "--wait", "--broker", broker,
        ])
        #expect(!fail.ok && fail.output.contains("ValueError: boom"), "\(fail.output)")
        let badJSON = await cli(["call", "demo.add", "--args", "[2,", "--queue", queue, "--broker", broker])
        #expect(!badJSON.ok && badJSON.output.contains("--args is not valid JSON"), "\(badJSON.output)")
        let badURL = await cli(["call", "demo.add", "--broker", "http://nope"])
        #expect(!badURL.ok && badURL.output.contains("scheme"), "\(badURL.output)")

        // `result ID --reply-queue Q` reads a result sent to a reply queue of the caller's choosing.
        let replies = uniqueName("reply")
        let admin = AMQPConnection(url: url, options: .init(name: "it-cli-result", confirms: false))
        try await admin.connect()
        _ = try await admin.declare(QueueSpec(replies, durable: true))
        let client = try await startClient(url: url, queue: queue)
        var options = SendOptions()
        options.replyTo = replies
        let sum = try await client.send("demo.add", args: [20, 22], options: options)
        let failed = try await client.send("demo.fail", args: ["kaput"], options: options)
        // The failure first: when the sum's result is ahead of it in the queue, the look holds that one and puts it
        // back for its owner (the next look).
        let readFailure = await cli([
            "result", failed.id, "--reply-queue", replies, "--timeout", "60", "--broker", broker,
        ])
        #expect(
            !readFailure.ok && readFailure.output.contains("FAILURE") && readFailure.output.contains("kaput"),
            "\(readFailure.output)")
        let read = await cli(["result", sum.id, "--reply-queue", replies, "--timeout", "60", "--broker", broker])
        let readLines: [String] = read.output.split(separator: "\n").suffix(2).map(String.init)
        #expect(read.ok && readLines == ["SUCCESS", "42"], "\(read.output)")
        let missing = await cli([
            "result", "no-such-id", "--reply-queue", replies, "--timeout", "1", "--broker", broker,
        ])
        #expect(!missing.ok && missing.output.contains("no result for no-such-id"), "\(missing.output)")
        // Reading acks nothing: both results are still in the queue for whoever owns it.
        #expect(try await admin.inspect(queue: replies).messageCount == 2)
        await client.close()
        _ = try? await admin.deleteQueue(replies)
        await admin.close()

        // Warm shutdown on SIGTERM: the process exits 0.
        kill(pid, SIGTERM)
        let status = await exitStatus(of: pid)
        exited = true
        #expect(
            status == 0,
            "worker exit status \(status); log: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")

        // Nothing is left in the queue; purge reports it.
        let purge = await cli(["purge", "-Q", queue, "--broker", broker])
        #expect(purge.output.contains("purged 0 message(s) from \(queue)"), "\(purge.output)")
        await deleteQueues([queue], url: url)
    }

    /// A second SIGTERM is a cold shutdown: the running task is interrupted, reports nothing, and its message goes
    /// back to the queue (nothing unacknowledged is dropped).
    @Test func secondSIGTERMIsAColdShutdownThatReturnsTheRunningTask() async throws {
        let url = try TestBroker.shared.url()
        let broker = TestBroker.shared.urlString
        let queue = uniqueName("cold")
        let node = "\(queue)@test"
        // Watch the worker's task events (worker started with -E) to know when the task is running.
        let (watcher, stream) = try await watchTaskEvents(url: url, name: "it-cold-watch")

        let log = "\(TestBroker.repoRoot)/.run/\(queue).log"
        let metricsPort = try freeLoopbackPort()
        // A long grace period, so only the second signal can end the task within this test's deadline.
        let pid = try Shell.spawn(
            Self.demo,
            [
                "worker", "-Q", queue, "-c", "1", "-n", node, "-E", "--grace-period", "600",
                "--metrics-port", String(metricsPort), "--metrics-bind", "127.0.0.1", "--broker", broker,
            ],
            environment: ProcessInfo.processInfo.environment, log: log)
        var exited = false
        defer { if !exited { Shell.kill(pid) } }
        let sent = await cli(["call", "demo.sleep", "--args", "[60]", "--queue", queue, "--broker", broker])
        let id = String(sent.output.split(separator: "\n").last ?? "")
        _ = try await first(stream.deliveries, within: .seconds(60), "task-started for \(id)") { d in
            taskEvents(in: d.body).contains { $0["type"] == "task-started" }
        }
        kill(pid, SIGTERM)
        // Two SIGTERMs sent back to back may merge into one pending signal; send the second once the worker
        // shows it is in its warm shutdown (/readyz turns 503).
        try await within(.seconds(30), "/readyz to turn 503 after SIGTERM") {
            while (try? httpGet(port: metricsPort, path: "/readyz").status) != 503 {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        kill(pid, SIGTERM)
        let status = try await within(.seconds(60), "the worker to exit after the second SIGTERM") {
            await exitStatus(of: pid)
        }
        exited = true
        #expect(status == 0, "worker exit status \(status)")
        // The interrupted task's message is back in the queue, ready for another worker.
        #expect(try await watcher.inspect(queue: queue).messageCount == 1)
        let logText = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(logText.contains("cold shutdown"), "\(logText.suffix(1000))")
        await watcher.close()
        await deleteQueues([queue], url: url)
    }

    /// SIGTERM to the worker's whole process group (`kill -TERM -- -PGID`, a supervisor that signals every process)
    /// is a warm shutdown: the pool children ignore it, finish the running task, and are not replaced.
    @Test func sigtermToTheWholeProcessGroupLetsThePoolChildrenFinish() async throws {
        let url = try TestBroker.shared.url()
        let broker = TestBroker.shared.urlString
        let queue = uniqueName("group-term")
        let (watcher, stream) = try await watchTaskEvents(url: url, name: "it-group-term-watch")
        let log = "\(TestBroker.repoRoot)/.run/\(queue).log"
        let pid = try Shell.spawn(
            Self.demo, ["worker", "-Q", queue, "-c", "1", "-n", "\(queue)@test", "-E", "--broker", broker],
            environment: ProcessInfo.processInfo.environment, stdout: log, stderr: nil, ownProcessGroup: true)
        var exited = false
        defer { if !exited { Shell.kill(pid) } }
        let sent = await cli(["call", "demo.sleep", "--args", "[1]", "--queue", queue, "--broker", broker])
        let id = String(sent.output.split(separator: "\n").last ?? "")
        _ = try await first(stream.deliveries, within: .seconds(60), "task-started for \(id)") { d in
            taskEvents(in: d.body).contains { $0["type"] == "task-started" }
        }
        kill(-pid, SIGTERM)
        let ended = try await first(stream.deliveries, within: .seconds(60), "the task's end for \(id)") { d in
            taskEvents(in: d.body).contains { $0["type"] == "task-succeeded" || $0["type"] == "task-failed" }
        }
        #expect(taskEvents(in: ended.body).contains { $0["type"] == "task-succeeded" })
        let status = try await within(.seconds(60), "the worker to exit after the group's SIGTERM") {
            await exitStatus(of: pid)
        }
        exited = true
        #expect(status == 0, "worker exit status \(status)")
        let logText = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(!logText.contains("starting a replacement"), "\(logText.suffix(1000))")
        #expect(try await watcher.inspect(queue: queue).messageCount == 0)
        await watcher.close()
        await deleteQueues([queue], url: url)
    }
}

/// Waits for process `pid` to exit and returns its wait status, on a thread of its own (waitpid blocks).
func exitStatus(of pid: pid_t) async -> Int32 {
    await withCheckedContinuation { c in
        Thread.detachNewThread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            c.resume(returning: status)
        }
    }
}
