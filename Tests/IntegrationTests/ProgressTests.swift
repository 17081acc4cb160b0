import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import Foundation
import Synchronization
import Testing

/// Task states while a task runs (`update_state`, `track_started`, RETRY) against real Celery, both ways, in both
/// pools, and `celeriac call --wait` drawing them on a terminal.
@Suite(.tags(.integration), .serialized)
struct ProgressTests {
    /// A `celeriac-demo worker` process on its own queue; killed and reaped by ``stop()``.
    struct DemoWorker {
        let pid: pid_t
        let node: String
        let queue: String

        init(pool: String, _ extra: [String] = []) throws {
            guard DemoApp.isBuilt() else {
                throw Shell.Failure(
                    command: DemoApp.path, status: 127,
                    output: "missing: `swift build --build-tests` builds it (scripts/test.sh does)")
            }
            queue = uniqueName("progress-\(pool)")
            node = "\(queue.suffix(12))@test"
            pid = try Shell.spawn(
                DemoApp.path,
                ["worker", "-Q", queue, "-n", node, "--pool", pool, "-c", "2", "--broker", TestBroker.shared.urlString]
                    + extra,
                environment: ProcessInfo.processInfo.environment, log: "\(TestBroker.repoRoot)/.run/\(queue).log")
        }

        func stop() async {
            Shell.kill(pid)
            await deleteQueues([queue], url: try! TestBroker.shared.url())
        }
    }

    @Test(arguments: ["async", "process"])
    func aPythonClientSeesProgressStartedAndRetryFromACeleriacWorker(pool: String) async throws {
        let worker = try DemoWorker(pool: pool, ["--track-started"])
        var env = ProcessInfo.processInfo.environment
        env["CELERIAC_INTEROP_BROKER"] = TestBroker.shared.urlString
        env["CELERIAC_INTEROP_QUEUE"] = worker.queue
        env["CELERIAC_INTEROP_NODE"] = worker.node
        env["PYTHONPATH"] = CeleryInteropTests.interopDir
        let output = await Shell.runOffPool(
            try TestPython.path(), ["\(CeleryInteropTests.interopDir)/python_progress.py"], environment: env)
        await worker.stop()
        let checks = CeleryInteropTests.checks(in: output)
        for name in ["warm_up", "progress_polled", "on_message_updates", "started_tracked", "retry_state"] {
            let (ok, detail) = checks[name] ?? (false, "missing from the Python output: \(output.suffix(2000))")
            #expect(ok, "\(pool) pool, check \(name): \(detail)")
        }
    }

    @Test func aCeleriacClientSeesAPythonTasksUpdateState() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("progress-py")
        let pid = try CeleryInteropTests.spawnPythonWorker(app: "interop_app", queue: queue)
        defer { Shell.kill(pid) }
        let client = try await startClient(url: url, queue: queue)
        // The first call also waits for the Python worker to come up.
        #expect(try await client.send("interop.add", args: [2, 3]).get(timeout: .seconds(90)) == .int(5))
        let result = try await client.send("interop.count", args: [3])
        var states: [String] = []
        var progress: [Int64] = []
        var final: ResultMessage?
        let updates = await result.updates()
        for await update in updates {
            states.append(update.status.rawValue)
            if update.status == .progress, let current = update.result["current"]?.intValue { progress.append(current) }
            if update.status.isReady { final = update }
        }
        #expect(final?.status == .success && final?.result == .int(3), "\(states)")
        #expect(progress.count >= 2 && progress == progress.sorted() && progress.last == 3, "\(progress)")
        #expect(states.contains("UPLOADING"), "a state of the task's own: \(states)")
        #expect(await result.state() == .success)
        await client.close()
        await deleteQueues([queue], url: url)
    }

    @Test func callWaitDrawsABarOnATerminalAndLinesOtherwise() async throws {
        let worker = try DemoWorker(pool: "async")
        defer { Task { await worker.stop() } }
        let call = [
            DemoApp.path, "call", "demo.count", "--args", "[4, 1.2]", "--wait", "--timeout", "60",
            "--queue", worker.queue, "--broker", TestBroker.shared.urlString,
        ]
        // Under a pseudo-terminal (util-linux `script`): one bar redrawn in place, then the result on its own line.
        let quoted = call.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let terminal = await Shell.runOffPool(
            "/usr/bin/script", ["-q", "-e", "-c", quoted, "/dev/null"], environment: ProcessInfo.processInfo.environment
        )
        #expect(terminal.contains("\r[") && terminal.contains("PROGRESS"), "\(terminal.debugDescription)")
        #expect(
            terminal.contains("] 4/4 PROGRESS") || terminal.contains("] 3/4 PROGRESS"), "\(terminal.debugDescription)")
        let lastLine = terminal.split(whereSeparator: \.isNewline).last.map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(lastLine == "4", "\(terminal.debugDescription)")
        // Not a terminal: plain lines, no carriage returns.
        let plain = await Shell.runOffPool(
            call[0], Array(call.dropFirst()), environment: ProcessInfo.processInfo.environment)
        #expect(!plain.contains("\r"), "\(plain.debugDescription)")
        #expect(
            plain.contains(#"PROGRESS {"current":1,"total":4}"#)
                || plain.contains(#"PROGRESS {"total":4,"current":1}"#), "\(plain)")
        #expect(plain.split(separator: "\n").last == "4", "\(plain)")
    }
}
