import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import Foundation
import Testing

/// The security flags of `celeriac-demo worker` and `call` end to end.
@Suite(.tags(.integration))
struct SecurityCLITests {
    static var demo: String { DemoApp.path }
    static let secret = "cli-S3CRET-5f4e3d2c1b0a99887766554433221100"

    func cli(_ args: [String]) async -> (ok: Bool, output: String) { await DemoApp.run(args) }

    @Test func aWorkerWithSigningKeysRunsSignedCallsAndDeadLettersUnsignedOnes() async throws {
        let url = try TestBroker.shared.url()
        let broker = TestBroker.shared.urlString
        let queue = uniqueName("cli-sec")
        guard DemoApp.isBuilt() else { return }
        let keys = "\(TestBroker.repoRoot)/.run/\(queue).keys"
        try "# test keys\nk1=\(Self.secret)\n".write(toFile: keys, atomically: true, encoding: .utf8)
        let badKeys = "\(TestBroker.repoRoot)/.run/\(queue).bad-keys"
        try "k1=short-S3CRET\n".write(toFile: badKeys, atomically: true, encoding: .utf8)
        defer { unlink(keys); unlink(badKeys) }

        // A bad key file stops the worker at start-up with the line, without echoing the secret.
        let bad = await cli(["worker", "-Q", queue, "--broker", broker, "--signing-keys-file", badKeys])
        #expect(!bad.ok && bad.output.contains("line 1") && !bad.output.contains("short-S3CRET"), "\(bad.output)")
        let badPolicy = await cli(["worker", "-Q", queue, "--broker", broker, "--remote-control", "everything"])
        #expect(!badPolicy.ok && badPolicy.output.contains("--remote-control"), "\(badPolicy.output)")

        let admin = AMQPConnection(url: url, options: .init(name: "it-cli-sec", confirms: false))
        try await admin.connect()
        let dead = uniqueName("dead")
        try await admin.declare(QueueSpec(dead, durable: false).expires(milliseconds: 120_000))
        try await admin.bind(BindingSpec(queue: dead, exchange: Topology.deadLetterExchange, routingKey: queue))

        let log = "\(TestBroker.repoRoot)/.run/\(queue).log"
        let pid = try Shell.spawn(
            Self.demo,
            [
                "worker", "-Q", queue, "-c", "2", "--pool", "async", "-n", "\(queue)@test", "--broker", broker,
                "--signing-keys-file", keys, "--remote-control", "read-only", "--max-args", "8",
            ],
            environment: ProcessInfo.processInfo.environment, log: log)
        defer { Shell.kill(pid); unlink(log) }
        let signed = await cli([
            "call", "demo.add", "--args", "[2,3]", "--queue", queue, "--wait", "--timeout", "60", "--broker", broker,
            "--signing-keys-file", keys,
        ])
        #expect(signed.ok && signed.output.split(separator: "\n").last == "5", "\(signed.output)")
        let unsigned = await cli(["call", "demo.add", "--args", "[2,3]", "--queue", queue, "--broker", broker])
        #expect(unsigned.ok, "\(unsigned.output)")
        let tooMany = await cli([
            "call", "demo.add", "--args", "[1,2,3,4,5,6,7,8,9]", "--queue", queue, "--broker", broker,
            "--signing-keys-file", keys,
        ])
        #expect(tooMany.ok, "\(tooMany.output)")
        let consumer = try await admin.consume(queue: dead, prefetch: 10)
        var reasons: [String] = []
        for await d in consumer.deliveries {
            reasons.append(d.properties.headers?[HeaderKey.deadReason]?.stringValue ?? "?")
            await admin.ack(d.tag)
            if reasons.count == 2 { break }
        }
        #expect(reasons.contains { $0.contains("not signed") }, "\(reasons)")
        #expect(reasons.contains { $0.contains("9 positional arguments, over the limit of 8") }, "\(reasons)")
        let conf = try await control("conf", node: "\(queue)@test", url: url)
        #expect(conf["celeriac_remote_control"] == "read-only")
        let shutdown = try await control("shutdown", node: "\(queue)@test", url: url)
        #expect(shutdown["error"] != nil)
        // Still serving after the refused shutdown.
        let again = await cli([
            "call", "demo.add", "--args", "[4,5]", "--queue", queue, "--wait", "--timeout", "60", "--broker", broker,
            "--signing-keys-file", keys,
        ])
        #expect(again.ok && again.output.split(separator: "\n").last == "9", "\(again.output)")
        let logText = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(logText.contains("not signed"))
        #expect(!logText.contains(Self.secret))
        await admin.close()
        await deleteQueues([queue, dead], url: url)
    }
}
