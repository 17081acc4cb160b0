import AMQPTransport
import Foundation
import Testing

/// The `celeriac-demo` executable end to end, as the quick start uses it: a worker process, `call`, `purge`,
/// bad input on the command line, and a clean exit on SIGTERM.
@Suite(.tags(.integration))
struct DemoCLITests {
    static var demo: String { "\(TestBroker.repoRoot)/.build/debug/celeriac-demo" }

    func cli(_ args: [String]) async -> (ok: Bool, output: String) {
        await Shell.runOffPoolWithStatus(Self.demo, args, environment: ProcessInfo.processInfo.environment)
    }

    @Test func workerProcessCallAndShutdown() async throws {
        let url = try TestBroker.shared.url()
        let broker = TestBroker.shared.urlString
        let queue = uniqueName("cli")
        guard FileManager.default.isExecutableFile(atPath: Self.demo) else {
            Issue.record("\(Self.demo) is missing: `swift build --build-tests` builds it (scripts/test.sh does)")
            return
        }
        let log = "\(TestBroker.repoRoot)/.run/\(queue).log"
        let pid = try Shell.spawn(Self.demo, ["worker", "-Q", queue, "-c", "2", "-n", "\(queue)@test", "--broker", broker],
                                  environment: ProcessInfo.processInfo.environment, log: log)
        var exited = false
        defer { if !exited { Shell.kill(pid) } }

        // The first call also waits for the worker process to come up.
        let add = await cli(["call", "demo.add", "--args", "[2,3]", "--queue", queue, "--wait", "--timeout", "60", "--broker", broker])
        #expect(add.ok && add.output.split(separator: "\n").last == "5", "\(add.output)")
        let xsum = await cli(["call", "demo.xsum", "--args", "[[1,2,3,4]]", "--queue", queue, "--wait", "--broker", broker])
        #expect(xsum.output.split(separator: "\n").last == "10", "\(xsum.output)")
        let echo = await cli(["call", "demo.echo", "--kwargs", #"{"value": {"a": [1, null, "ü"]}}"#, "--queue", queue, "--wait", "--broker", broker])
        #expect(echo.output.split(separator: "\n").last == #"{"a":[1,null,"ü"]}"#, "\(echo.output)")
        let fail = await cli(["call", "demo.fail", "--args", #"["boom"]"#, "--queue", queue, "--wait", "--broker", broker])
        #expect(!fail.ok && fail.output.contains("ValueError: boom"), "\(fail.output)")
        let badJSON = await cli(["call", "demo.add", "--args", "[2,", "--queue", queue, "--broker", broker])
        #expect(!badJSON.ok && badJSON.output.contains("--args is not valid JSON"), "\(badJSON.output)")
        let badURL = await cli(["call", "demo.add", "--broker", "http://nope"])
        #expect(!badURL.ok && badURL.output.contains("scheme"), "\(badURL.output)")

        // Warm shutdown on SIGTERM: the process exits 0.
        kill(pid, SIGTERM)
        let status: Int32 = await withCheckedContinuation { c in
            Thread.detachNewThread {
                var status: Int32 = 0
                while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
                c.resume(returning: status)
            }
        }
        exited = true
        #expect(status == 0, "worker exit status \(status); log: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")

        // Nothing is left in the queue; purge reports it.
        let purge = await cli(["purge", "-Q", queue, "--broker", broker])
        #expect(purge.output.contains("purged 0 message(s) from \(queue)"), "\(purge.output)")
        await deleteQueues([queue], url: url)
    }
}
