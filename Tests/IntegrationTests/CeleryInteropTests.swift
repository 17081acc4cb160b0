import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import Foundation
import Testing

/// Real Celery (PyPI, in .run/venv) against Celeriac, both ways, on the throwaway broker.
@Suite(.tags(.integration))
struct CeleryInteropTests {
    static var interopDir: String { "\(TestBroker.repoRoot)/Tests/Interop" }

    @Test func pythonCeleryClientCallsCeleriacWorker() async throws {
        let python = try TestPython.path()
        let url = try TestBroker.shared.url()
        let queue = uniqueName("interop")
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue], concurrency: 8)
        var env = ProcessInfo.processInfo.environment
        env["CELERIAC_INTEROP_BROKER"] = TestBroker.shared.urlString
        env["CELERIAC_INTEROP_QUEUE"] = queue
        env["PYTHONPATH"] = Self.interopDir
        let output = await Shell.runOffPool(python, ["\(Self.interopDir)/python_client.py"], environment: env)
        let lines = output.split(separator: "\n").compactMap { try? JSONValue.parse(String($0)) }
        let checks = Dictionary(uniqueKeysWithValues: lines.compactMap { l -> (String, (Bool, String))? in
            guard let name = l["check"]?.stringValue else { return nil }
            return (name, (l["ok"]?.boolValue ?? false, l["detail"]?.stringValue ?? ""))
        })
        for name in ["positional", "keywords", "echo_nested", "failure", "wrong_type", "unknown_task", "flaky",
                     "countdown", "expires", "many_in_random_order"] {
            let (ok, detail) = checks[name] ?? (false, "missing from the Python output: \(output.suffix(2000))")
            #expect(ok, "Python check \(name): \(detail)")
        }
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func celeryInspectAndControlReachCeleriacWorkers() async throws {
        let python = try TestPython.path()
        let url = try TestBroker.shared.url()
        let queue = uniqueName("interop-ctl")
        let node = "celeriac-\(queue.suffix(8))@test"
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue], concurrency: 8, hostname: node)
        var env = ProcessInfo.processInfo.environment
        env["CELERIAC_INTEROP_BROKER"] = TestBroker.shared.urlString
        env["CELERIAC_INTEROP_QUEUE"] = queue
        env["CELERIAC_INTEROP_NODE"] = node
        env["PYTHONPATH"] = Self.interopDir
        let output = await Shell.runOffPool(python, ["\(Self.interopDir)/python_control.py"], environment: env)
        let checks = Self.checks(in: output)
        for name in ["ping", "registered", "stats", "active_queues", "revoke", "rate_limit", "cli_ping"] {
            let (ok, detail) = checks[name] ?? (false, "missing from the Python output: \(output.suffix(2000))")
            #expect(ok, "Python check \(name): \(detail)")
        }
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func celeryEventReceiverSeesCeleriacWorkerAndTasks() async throws {
        let python = try TestPython.path()
        let url = try TestBroker.shared.url()
        let queue = uniqueName("interop-ev")
        let node = "celeriac-ev-\(queue.suffix(8))@test"
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue], concurrency: 4, hostname: node, events: true)
        var env = ProcessInfo.processInfo.environment
        env["CELERIAC_INTEROP_BROKER"] = TestBroker.shared.urlString
        env["CELERIAC_INTEROP_QUEUE"] = queue
        env["CELERIAC_INTEROP_NODE"] = node
        env["PYTHONPATH"] = Self.interopDir
        let output = await Shell.runOffPool(python, ["\(Self.interopDir)/python_events.py"], environment: env)
        let checks = Self.checks(in: output)
        for name in ["heartbeat", "received", "started", "succeeded", "failed", "worker_alive_in_state", "task_state_success", "failed_exception"] {
            let (ok, detail) = checks[name] ?? (false, "missing from the Python output: \(output.suffix(2000))")
            #expect(ok, "Python check \(name): \(detail)")
        }
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func flowerListsCeleriacWorkerAndItsTasks() async throws {
        let python = try TestPython.path()
        let url = try TestBroker.shared.url()
        let queue = uniqueName("interop-flower")
        let node = "celeriac-fl-\(queue.suffix(8))@test"
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue], concurrency: 4, hostname: node, events: true)
        var env = ProcessInfo.processInfo.environment
        env["CELERIAC_INTEROP_BROKER"] = TestBroker.shared.urlString
        env["CELERIAC_INTEROP_QUEUE"] = queue
        env["CELERIAC_INTEROP_NODE"] = node
        env["CELERIAC_INTEROP_FLOWER_PORT"] = String(try freeLoopbackPort())
        env["PYTHONPATH"] = Self.interopDir
        let output = await Shell.runOffPool(python, ["\(Self.interopDir)/python_flower.py"], environment: env)
        let checks = Self.checks(in: output)
        for name in ["online", "listed_with_stats", "registered", "task_seen"] {
            let (ok, detail) = checks[name] ?? (false, "missing from the Python output: \(output.suffix(2000))")
            #expect(ok, "Flower check \(name): \(detail)")
        }
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    static func checks(in output: String) -> [String: (Bool, String)] {
        let lines = output.split(separator: "\n").compactMap { try? JSONValue.parse(String($0)) }
        return Dictionary(lines.compactMap { l -> (String, (Bool, String))? in
            guard let name = l["check"]?.stringValue else { return nil }
            return (name, (l["ok"]?.boolValue ?? false, l["detail"]?.stringValue ?? ""))
        }, uniquingKeysWith: { a, _ in a })
    }

    @Test func celeriacClientCallsPythonCeleryWorker() async throws {
        let python = try TestPython.path()
        let url = try TestBroker.shared.url()
        let queue = uniqueName("interop-py")
        var env = ProcessInfo.processInfo.environment
        env["CELERIAC_INTEROP_BROKER"] = TestBroker.shared.urlString
        env["CELERIAC_INTEROP_QUEUE"] = queue
        env["PYTHONPATH"] = Self.interopDir
        let log = "\(TestBroker.repoRoot)/.run/interop-\(queue).log"
        let pid = try Shell.spawn(python, ["-m", "celery", "-A", "interop_app", "worker", "-P", "solo", "-Q", queue,
                                           "-n", "py-\(queue)@test", "--without-mingle", "--without-gossip", "--loglevel", "WARNING"],
                                  environment: env, log: log)
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
            return f.type == "ValueError" && f.module == "builtins" && f.message == "from python" && (f.traceback ?? "").contains("Traceback")
        }
        // A countdown through the delayed-delivery topology reaches a Python worker too.
        let sent = Date()
        #expect(try await client.send("interop.add", args: [1, 1], options: SendOptions(countdown: 2)).get(timeout: .seconds(30)) == .int(2))
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
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}
