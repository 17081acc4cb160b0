import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import Foundation
import Testing

/// Real Celery (PyPI, in .run/venv) against Celeriac, both ways, on the throwaway broker.
@Suite(.tags(.integration))
struct CeleryInteropTests {
    static var interopDir: String { "\(TestBroker.repoRoot)/Tests/Interop" }

    /// Starts a Celeriac worker, runs a Python script from `Tests/Interop` against it, and expects every named
    /// check the script prints (one JSON line each) to have passed.
    func runPythonChecks(
        _ script: String, checks expected: [String], events: Bool = false,
        extraEnvironment: [String: String] = [:]
    ) async throws {
        let python = try TestPython.path()
        let url = try TestBroker.shared.url()
        let queue = uniqueName("interop")
        let node = "celeriac-\(queue.suffix(8))@test"
        let running = try await startWorker(
            TestTasks.registry(), url: url, queues: [queue], concurrency: 8, hostname: node, events: events)
        var env = ProcessInfo.processInfo.environment
        env["CELERIAC_INTEROP_BROKER"] = TestBroker.shared.urlString
        env["CELERIAC_INTEROP_QUEUE"] = queue
        env["CELERIAC_INTEROP_NODE"] = node
        env["PYTHONPATH"] = Self.interopDir
        for (k, v) in extraEnvironment { env[k] = v }
        let output = await Shell.runOffPool(python, ["\(Self.interopDir)/\(script)"], environment: env)
        let checks = Self.checks(in: output)
        for name in expected {
            let (ok, detail) = checks[name] ?? (false, "missing from the Python output: \(output.suffix(2000))")
            #expect(ok, "\(script) check \(name): \(detail)")
        }
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func pythonCeleryClientCallsCeleriacWorker() async throws {
        try await runPythonChecks(
            "python_client.py",
            checks: [
                "positional", "keywords", "echo_nested", "failure", "wrong_type", "unknown_task", "flaky", "countdown",
                "expires", "many_in_random_order", "chain_add_mul", "group_add", "chain_into_group",
            ])
    }

    @Test func celeryInspectAndControlReachCeleriacWorkers() async throws {
        try await runPythonChecks(
            "python_control.py",
            checks: [
                "ping", "registered", "stats", "active_queues", "revoke", "active_then_terminate", "rate_limit",
                "cli_ping",
            ])
    }

    @Test func celeryEventReceiverSeesCeleriacWorkerAndTasks() async throws {
        try await runPythonChecks(
            "python_events.py",
            checks: [
                "heartbeat", "received", "started", "succeeded", "failed", "worker_alive_in_state",
                "task_state_success", "failed_exception",
            ], events: true)
    }

    @Test func flowerListsCeleriacWorkerAndItsTasks() async throws {
        try await runPythonChecks(
            "python_flower.py",
            checks: ["online", "listed_with_stats", "registered", "task_seen", "processed_count", "screenshot"],
            events: true,
            extraEnvironment: ["CELERIAC_INTEROP_FLOWER_PORT": String(try freeLoopbackPort())])
    }

    /// Starts a real Celery worker (solo pool) of a Python app from `Tests/Interop` on `queue`; kill it at the end.
    static func spawnPythonWorker(
        app: String, queue: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> pid_t {
        var env = environment
        env["CELERIAC_INTEROP_BROKER"] = TestBroker.shared.urlString
        env["CELERIAC_INTEROP_QUEUE"] = queue
        env["PYTHONPATH"] = interopDir
        return try Shell.spawn(
            try TestPython.path(),
            [
                "-m", "celery", "-A", app, "worker", "-P", "solo", "-Q", queue,
                "-n", "py-\(queue)@test", "--without-mingle", "--without-gossip", "--loglevel", "WARNING",
            ],
            environment: env, log: "\(TestBroker.repoRoot)/.run/\(app)-\(queue).log")
    }

    static func checks(in output: String) -> [String: (Bool, String)] {
        let lines = output.split(separator: "\n").compactMap { try? JSONValue.parse(String($0)) }
        return Dictionary(
            lines.compactMap { l -> (String, (Bool, String))? in
                guard let name = l["check"]?.stringValue else { return nil }
                return (name, (l["ok"]?.boolValue ?? false, l["detail"]?.stringValue ?? ""))
            }, uniquingKeysWith: { a, _ in a })
    }

    @Test func celeriacClientCallsPythonCeleryWorker() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("interop-py")
        let pid = try Self.spawnPythonWorker(app: "interop_app", queue: queue)
        defer { Shell.kill(pid) }
        let client = try await startClient(url: url, queue: queue)
        // The first call also waits for the Python worker to come up.
        #expect(try await client.send("interop.add", args: [2, 3]).get(timeout: .seconds(90)) == .int(5))
        #expect(try await client.send("interop.add", kwargs: ["x": 40, "y": 2]).get(timeout: .seconds(30)) == .int(42))
        let nested: JSONValue = ["a": [1, 2.5, nil, true, "héllo ✓"], "big": .int(1 << 62), "empty": [:]]
        #expect(try await client.send("interop.echo", args: [nested]).get(timeout: .seconds(30)) == nested)
        await #expect {
            _ = try await client.send("interop.fail", args: ["from python"]).get(timeout: .seconds(30))
        } throws: { error in
            guard case .taskFailed(_, _, let f)? = error as? CeleriacError else { return false }
            return f.type == "ValueError" && f.module == "builtins" && f.message == "from python"
                && (f.traceback ?? "").contains("Traceback")
        }
        // A countdown through the delayed-delivery topology reaches a Python worker too.
        let sent = Date()
        #expect(
            try await client.send("interop.add", args: [1, 1], options: SendOptions(countdown: 2)).get(
                timeout: .seconds(30)) == .int(2))
        #expect(Date().timeIntervalSince(sent) >= 2.0)
        await client.close()
        await deleteQueues([queue], url: url)
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
    _ = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    return Int(UInt16(bigEndian: addr.sin_port))
}
