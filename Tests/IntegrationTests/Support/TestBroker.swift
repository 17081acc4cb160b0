import AMQPTransport
import Foundation
import Testing

/// A throwaway RabbitMQ node for integration tests, run by `scripts/broker.sh`.
///
/// `shared` is the node most tests use (their queues have unique `it-<UUID>` names). `chaos` is a second node for
/// the tests that restart or freeze the broker, so they never disturb the others. Nodes are started on first use
/// (the script is idempotent) and left running; `scripts/test.sh` stops them at the end.
struct TestBroker: Sendable {
    let name: String
    let port: Int
    let dir: String

    /// The shared node's AMQP port: `CELERIAC_BROKER_PORT` (as `scripts/test.sh` exports it) or 5682. The chaos
    /// node listens 10 above it, so two checkouts can run their suites side by side on different ports.
    static let basePort = ProcessInfo.processInfo.environment["CELERIAC_BROKER_PORT"].flatMap { Int($0) } ?? 5682
    static let shared = TestBroker(name: "shared", port: basePort, dir: "broker")
    static let chaos = TestBroker(name: "chaos", port: basePort + 10, dir: "broker-chaos")

    static var repoRoot: String {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
                return url.path
            }
        }
        fatalError("cannot find the repository root above \(#filePath)")
    }

    var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["CELERIAC_BROKER_PORT"] = String(port)
        env["CELERIAC_BROKER_DIR"] = "\(Self.repoRoot)/.run/\(dir)"
        return env
    }

    /// Runs `scripts/broker.sh ARGS` for this node and returns its stdout; throws with its stderr on failure.
    @discardableResult
    func script(_ args: String...) throws -> String {
        try Shell.run("\(Self.repoRoot)/scripts/broker.sh", args, environment: environment)
    }

    /// `script(...)` on a thread of its own: restarts take ~15 s and must not hold a cooperative-pool thread.
    @discardableResult
    func scriptAsync(_ args: String...) async throws -> String {
        let env = environment
        let result: Result<String, Shell.Failure> = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                do {
                    continuation.resume(
                        returning: .success(try Shell.run("\(Self.repoRoot)/scripts/broker.sh", args, environment: env))
                    )
                } catch let failure as Shell.Failure {
                    continuation.resume(returning: .failure(failure))
                } catch {
                    continuation.resume(
                        returning: .failure(Shell.Failure(command: "broker.sh", status: -1, output: "\(error)")))
                }
            }
        }
        return try result.get()
    }

    /// Starts the node if needed (once per process) and returns its plain AMQP URL.
    func url(heartbeat: Int? = nil, vhost: String = "%2F") throws -> AMQPURL {
        try Self.ensureStarted(self)
        var text = "amqp://guest:guest@127.0.0.1:\(port)/\(vhost)"
        if let heartbeat { text += "?heartbeat=\(heartbeat)" }
        return try AMQPURL(text)
    }

    var urlString: String { "amqp://guest:guest@127.0.0.1:\(port)/%2F" }

    var tlsDir: String { "\(Self.repoRoot)/.run/\(dir)/tls" }
    var tlsPort: Int { port + 1 }
    /// rabbitmq_prometheus of this node (scripts/broker.sh: PORT+10000).
    var prometheusPort: Int { port + 10000 }

    func ctl(_ args: String...) throws -> String {
        try Shell.run("\(Self.repoRoot)/scripts/broker.sh", ["ctl"] + args, environment: environment)
    }

    /// A vhost of its own that guest may use, and its URL, for a test whose queues must not meet those of the
    /// shared vhost. The caller deletes it (`ctl("delete_vhost", vhost)`).
    func freshVhost(_ prefix: String) throws -> (vhost: String, url: AMQPURL) {
        let vhost = uniqueName(prefix)
        let url = try self.url(vhost: vhost)
        _ = try ctl("add_vhost", vhost)
        _ = try ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        return (vhost, url)
    }

    private static let started = StartedNodes()

    static func ensureStarted(_ broker: TestBroker) throws {
        try started.once(broker.name) { _ = try broker.script("start") }
    }
}

/// Remembers which nodes were started in this process, so the script runs once per node.
final class StartedNodes: Sendable {
    private let lock = NSLock()
    nonisolated(unsafe) private var names: Set<String> = []  // guarded by `lock`

    func once(_ name: String, _ body: () throws -> Void) throws {
        lock.lock()
        defer { lock.unlock() }
        if names.contains(name) { return }
        try body()
        names.insert(name)
    }
}

enum Shell {
    struct Failure: Error, CustomStringConvertible {
        let command: String
        let status: Int32
        let output: String
        var description: String { "\(command) exited \(status): \(output)" }
    }

    /// Runs a command to completion with posix_spawn + waitpid. Output goes through temporary files, not pipes
    /// (`broker.sh start` leaves a server running), and Foundation's `Process.waitUntilExit` is avoided: it
    /// never returned here for a script that had started a daemon.
    @discardableResult
    static func run(_ executable: String, _ args: [String], environment: [String: String]? = nil) throws -> String {
        let base = NSTemporaryDirectory() + "celeriac-sh-\(UUID().uuidString)"
        let outPath = base + ".out", errPath = base + ".err"
        defer {
            unlink(outPath)
            unlink(errPath)
        }
        let pid = try spawn(
            executable, args, environment: environment ?? ProcessInfo.processInfo.environment,
            stdout: outPath, stderr: errPath)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let stdout = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        if exitCode != 0 {
            let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
            throw Failure(
                command: ([executable] + args).joined(separator: " "), status: exitCode, output: stdout + stderr)
        }
        return stdout
    }
}

extension Shell {
    /// Starts a long-running process (a Python Celery worker) with output to `log`; returns its pid.
    static func spawn(_ executable: String, _ args: [String], environment: [String: String], log: String) throws
        -> pid_t
    {
        try spawn(executable, args, environment: environment, stdout: log, stderr: nil)
    }

    /// posix_spawn with stdin from /dev/null and stdout/stderr to files (stderr joins stdout when nil). With
    /// `ownProcessGroup` the process leads a new process group (its id is the pid), so a test can signal the
    /// group as a terminal or a supervisor does without signalling itself.
    static func spawn(
        _ executable: String, _ args: [String], environment: [String: String], stdout: String, stderr: String?,
        ownProcessGroup: Bool = false
    ) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        if ownProcessGroup {
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
            posix_spawnattr_setpgroup(&attributes, 0)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if let stderr {
            posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        let argv = ([executable] + args).map { strdup($0) } + [nil]
        let env = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            env.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, env)
        guard rc == 0 else {
            throw Failure(
                command: executable, status: rc, output: "posix_spawn failed: \(String(cString: strerror(rc)))")
        }
        return pid
    }

    /// Kills and reaps a spawned process.
    static func kill(_ pid: pid_t) {
        _ = Foundation.kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    }
}

extension Shell {
    /// Runs a command on a thread of its own and awaits it, so a long child (a Python test script) never blocks
    /// one of the cooperative pool's threads (two on a 2-core box) that the worker under test needs. Returns the
    /// output, also when the command fails (the caller checks what it printed).
    /// Like ``runOffPool(_:_:environment:)`` but also says whether the command exited 0.
    static func runOffPoolWithStatus(_ executable: String, _ args: [String], environment: [String: String]) async -> (
        ok: Bool, output: String
    ) {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                do {
                    continuation.resume(returning: (true, try Shell.run(executable, args, environment: environment)))
                } catch let failure as Shell.Failure {
                    continuation.resume(returning: (false, failure.output))
                } catch {
                    continuation.resume(returning: (false, "\(error)"))
                }
            }
        }
    }

    static func runOffPool(_ executable: String, _ args: [String], environment: [String: String]) async -> String {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                do {
                    continuation.resume(returning: try Shell.run(executable, args, environment: environment))
                } catch let failure as Shell.Failure {
                    continuation.resume(returning: failure.output)
                } catch {
                    continuation.resume(returning: "\(error)")
                }
            }
        }
    }
}

/// The Python of the test venv (`scripts/bootstrap.sh` creates `.run/venv` with Celery from PyPI).
enum TestPython {
    static func path() throws -> String {
        let candidate =
            ProcessInfo.processInfo.environment["CELERIAC_TEST_PYTHON"] ?? "\(TestBroker.repoRoot)/.run/venv/bin/python"
        guard FileManager.default.isExecutableFile(atPath: candidate) else {
            throw Shell.Failure(
                command: candidate, status: 127,
                output: "no Python venv with Celery at \(candidate): run scripts/bootstrap.sh (make test does)")
        }
        return candidate
    }
}

/// A unique name for a test's queues and exchanges.
func uniqueName(_ prefix: String = "it") -> String { "\(prefix)-\(UUID().uuidString.lowercased())" }

extension Tag {
    @Tag static var integration: Self
}
