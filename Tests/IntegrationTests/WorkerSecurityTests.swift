import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import CeleriacMetrics
import CeleriacWorker
import Foundation
import Logging
import Prometheus
import ServiceLifecycle
import Synchronization
import Testing

/// Hostile input against a real worker: signing, limits, header types, remote-control policy, secrets.
@Suite(.tags(.integration))
struct WorkerSecurityTests {
    static let secret = "sig-S3CRET-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    static func signer(_ ids: [String] = ["k1"], secrets: [String]? = nil) throws -> MessageSigner {
        let keys = try ids.enumerated().map { i, id in
            try SigningKey(id: id, secret: Array((secrets?[i] ?? Self.secret).utf8))
        }
        return try MessageSigner(keys: keys)
    }

    /// A task message as a Celery producer would send it, before any tampering.
    static func taskMessage(
        queue: String, body: String, headers extra: FieldTable = [:], contentType: String = "application/json"
    ) -> OutgoingMessage {
        var m = TaskCodec.encode(TaskMessage(name: "it.add", args: [1, 2]), routingKey: queue)
        m.body = Array(body.utf8)
        m.properties.contentType = contentType
        for (k, v) in extra { m.properties.headers?[k] = v }
        return m
    }

    @Test func hostileMessagesAreDeadLetteredWithTheirReasonsWhileTheWorkerKeepsServing() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let signer = try Self.signer()
        let registry = PrometheusCollectorRegistry()
        let metrics = WorkerMetrics(
            registry: registry, knownTasks: TestTasks.registry().names, queues: [queue], concurrency: 2)
        var config = Worker.Configuration(queues: [queue], concurrency: 2, limits: .init(maxBodyBytes: 64 * 1024))
        config.security.signer = signer
        let running = try await startConfiguredWorker(config, url: url, observers: [metrics])
        let raw = AMQPConnection(url: url, options: .init(name: "it-hostile"))
        try await raw.connect()
        let dead = uniqueName("dead")
        try await raw.declare(QueueSpec(dead, durable: false).expires(milliseconds: 120_000))
        try await raw.bind(BindingSpec(queue: dead, exchange: Topology.deadLetterExchange, routingKey: queue))
        var clientConfig = CeleriacClient.Configuration(defaultQueue: queue, connectionName: "it-signed-client")
        clientConfig.signer = signer
        let client = CeleriacClient(configuration: clientConfig, broker: AMQPBroker(url: url))
        try await client.start()

        var tampered = signer.sign(Self.taskMessage(queue: queue, body: "[[1,2],{},{}]"))
        tampered.body = Array("[[1,3],{},{}]".utf8)
        let many = "[[" + Array(repeating: "7", count: 10_000).joined(separator: ",") + "],{},{}]"
        var badUTF8 = signer.sign(Self.taskMessage(queue: queue, body: ""))
        badUTF8.body = Array("[[\"".utf8) + [0xFF, 0xFE] + Array("\"],{},{}]".utf8)
        badUTF8 = signer.sign(badUTF8)
        let hostile: [(expected: String, label: String, message: OutgoingMessage)] = [
            ("signature does not match", "signature", tampered),
            ("not signed", "signature", Self.taskMessage(queue: queue, body: "[[1,2],{},{}]")),
            (
                "byte limit", "limit",
                signer.sign(
                    Self.taskMessage(queue: queue, body: "[[\"" + String(repeating: "x", count: 100_000) + "\"],{},{}]")
                )
            ),
            (
                "nesting deeper than 64", "limit",
                signer.sign(
                    Self.taskMessage(
                        queue: queue,
                        body: "[[" + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)
                            + "],{},{}]"))
            ),
            ("10000 positional arguments", "limit", signer.sign(Self.taskMessage(queue: queue, body: many))),
            ("not valid UTF-8", "invalid", badUTF8),
            (
                "content_type 'application/x-python-serialize' is not accepted", "invalid",
                signer.sign(Self.taskMessage(queue: queue, body: "(lp0", contentType: "application/x-python-serialize"))
            ),
            (
                "header 'retries' is a string; expected an integer", "invalid",
                signer.sign(Self.taskMessage(queue: queue, body: "[[1,2],{},{}]", headers: ["retries": .string("0")]))
            ),
            (
                "header 'timelimit' is a list; expected a pair", "invalid",
                signer.sign(
                    Self.taskMessage(queue: queue, body: "[[1,2],{},{}]", headers: ["timelimit": .array([.int32(5)])]))
            ),
            (
                "invalid ETA", "invalid",
                signer.sign(Self.taskMessage(queue: queue, body: "[[1,2],{},{}]", headers: ["eta": .string("soon")]))
            ),
        ]
        // Each bad message is followed by a good one; every good one must come back.
        var results: [AsyncResult] = []
        for (i, bad) in hostile.enumerated() {
            try await raw.publish(bad.message)
            results.append(try await client.send("it.add", args: [.int(Int64(i)), 100]))
        }
        for (i, result) in results.enumerated() {
            #expect(try await result.get(timeout: .seconds(30)) == .int(Int64(i) + 100))
        }

        let consumer = try await raw.consume(queue: dead, prefetch: 50)
        var reasons: [String] = []
        for await d in consumer.deliveries {
            #expect(d.properties.headers?[HeaderKey.deadQueue] == .string(queue))
            reasons.append(d.properties.headers?[HeaderKey.deadReason]?.stringValue ?? "?")
            await raw.ack(d.tag)
            if reasons.count == hostile.count { break }
        }
        for bad in hostile {
            #expect(
                reasons.contains { $0.contains(bad.expected) },
                "no dead letter with reason '\(bad.expected)' in \(reasons)")
        }
        let labels = running.observer.deadLettered.withLock { $0 }
        #expect(labels.count == hostile.count)
        var text: [UInt8] = []
        registry.emit(into: &text)
        let scrape = String(decoding: text, as: UTF8.self)
        for label in ["signature", "limit", "invalid"] {
            let count = hostile.filter { $0.label == label }.count
            #expect(
                scrape.contains(
                    #"celeriac_messages_dead_lettered_total{queue="\#(queue)",reason="\#(label)"} \#(count)"#),
                "\(label) × \(count)")
        }
        #expect(try await raw.inspect(queue: queue).messageCount == 0)
        await raw.close()
        await client.close()
        try await running.stop()
        await deleteQueues([queue, dead], url: url)
    }

    /// Client and worker sign; the worker's own retries are re-signed; keys rotate without downtime.
    @Test func signedTasksAndTheirRetriesRunAcrossAKeyRotation() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        var config = Worker.Configuration(queues: [queue])
        config.security.signer = try Self.signer(
            ["k1", "k2"], secrets: [Self.secret, "second-secret-for-rotation-0123456789"])
        let running = try await startConfiguredWorker(config, url: url)
        var clientConfig = CeleriacClient.Configuration(defaultQueue: queue, connectionName: "it-rotated-client")
        clientConfig.signer = try Self.signer(
            ["k2", "k1"], secrets: ["second-secret-for-rotation-0123456789", Self.secret])
        let client = CeleriacClient(configuration: clientConfig, broker: AMQPBroker(url: url))
        try await client.start()
        // it.flaky retries twice: the worker republishes it (signed with k1) and runs the copies.
        #expect(try await client.delay(TestTasks.flaky, .init(times: 2)).get(timeout: .seconds(30)) == 2)
        #expect(try await client.delay(TestTasks.add, .init(x: 2, y: 40)).get(timeout: .seconds(30)) == 42)
        #expect(running.observer.deadLettered.withLock { $0.isEmpty })
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func aReadOnlyWorkerRefusesStateChangingControlCommands() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        var config = Worker.Configuration(queues: [queue], hostname: "it-\(UUID().uuidString.prefix(8))@ro")
        config.security.remoteControl = .readOnly
        let running = try await startConfiguredWorker(config, url: url)
        let node = config.hostname
        let ping = try await control("ping", node: node, url: url)
        #expect(ping["ok"] == "pong")
        let victim = uniqueName("not-revoked")
        for (method, args) in [
            ("shutdown", JSONObject()), ("revoke", ["task_id": .string(victim)] as JSONObject),
            ("rate_limit", ["task_name": "it.add", "rate_limit": "1/m"] as JSONObject),
            ("pool_shrink", ["n": 1] as JSONObject),
        ] {
            let reply = try await control(method, args, node: node, url: url)
            #expect(
                reply["error"]?.stringValue == "'\(method)' is disabled on this worker (--remote-control read-only)")
        }
        // (Other tests' revocations are replayed from the broker's log; only this id must be absent.)
        #expect(await !running.worker.revokedIDs().contains(victim))
        // Still running and serving after the refused shutdown, at full rate.
        let client = try await startClient(url: url, queue: queue)
        #expect(try await client.delay(TestTasks.add, .init(x: 1, y: 1)).get(timeout: .seconds(20)) == 2)
        #expect(running.worker.isReady)
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    /// The broker password and the signing secret appear nowhere an operator or attacker could read them.
    @Test func secretsNeverAppearInLogsMetricsControlRepliesOrErrors() async throws {
        let broker = TestBroker.shared
        _ = try broker.url()
        let user = "it-sec-\(UUID().uuidString.prefix(8))"
        let password = "pw-Hunter2-\(UUID().uuidString.prefix(12))"
        _ = try broker.ctl("add_user", user, password)
        defer { _ = try? broker.ctl("delete_user", user) }
        _ = try broker.ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
        let url = try AMQPURL("amqp://\(user):\(password)@127.0.0.1:\(broker.port)/%2F")
        let queue = uniqueName()
        let logs = LogRecorder()
        let registry = PrometheusCollectorRegistry()
        let metrics = WorkerMetrics(
            registry: registry, knownTasks: TestTasks.registry().names, queues: [queue], concurrency: 2)
        var config = Worker.Configuration(
            queues: [queue], concurrency: 2, hostname: "it-\(UUID().uuidString.prefix(8))@sec")
        config.security.signer = try Self.signer()
        let running = try await startConfiguredWorker(
            config, url: url, observers: [metrics], logger: logs.logger("it.sec"))
        let endpoint = MetricsEndpoint(
            registry: registry, host: "127.0.0.1", port: 0, isReady: { running.worker.isReady })
        let port = try endpoint.start()
        defer { endpoint.stop() }

        var clientConfig = CeleriacClient.Configuration(defaultQueue: queue, connectionName: "it-sec-client")
        clientConfig.signer = config.security.signer
        let client = CeleriacClient(configuration: clientConfig, broker: AMQPBroker(url: url))
        try await client.start()
        #expect(try await client.delay(TestTasks.add, .init(x: 3, y: 4)).get(timeout: .seconds(20)) == 7)
        // A forged message makes the worker log a signature rejection.
        let raw = AMQPConnection(url: url, options: .init(name: "it-sec-raw"))
        try await raw.connect()
        var forged = try Self.signer(secrets: ["an-attacker-guess-of-the-secret-value"]).sign(
            Self.taskMessage(queue: queue, body: "[[1,2],{},{}]"))
        forged.properties.headers?["x-note"] = .string("forged")
        try await raw.publish(forged)
        try await within(.seconds(20), "the forged message to be dead-lettered") {
            while running.observer.deadLettered.withLock({ $0.isEmpty }) {
                try await Task.sleep(for: .milliseconds(20))
            }
        }

        var exposed: [(String, String)] = []
        for method in ["conf", "stats", "report"] {
            exposed.append((method, try await control(method, node: config.hostname, url: url).jsonString))
        }
        exposed.append(("/metrics", try httpGet(port: port, path: "/metrics").body))
        // A connection error (wrong vhost) and a URL parse error, as an operator would see them.
        let wrong = AMQPConnection(
            url: try AMQPURL("amqp://\(user):\(password)@127.0.0.1:\(broker.port)/no-such-vhost"),
            options: .init(name: "it-sec-wrong"))
        do {
            try await wrong.connect()
            Issue.record("connecting to a missing vhost succeeded")
        } catch {
            exposed.append(("connect error", "\(error) \(String(reflecting: error))"))
        }
        do {
            _ = try AMQPURL("amqp://\(user):\(password)@host:notaport/")
        } catch {
            exposed.append(("parse error", "\(error)"))
        }
        var dumped = ""
        dump(config, to: &dumped)
        exposed.append(("configuration", "\(config) \(String(reflecting: config)) \(dumped)"))
        exposed.append(("logs", logs.text))
        for (place, text) in exposed {
            #expect(!text.contains(password), "broker password in \(place)")
            #expect(!text.contains(Self.secret), "signing secret in \(place)")
            #expect(!text.contains("sig-S3CRET"), "signing secret in \(place)")
        }
        // They were really looked at: the places name the redacted URL and the key id.
        #expect(exposed.first { $0.0 == "conf" }?.1.contains("amqp://\(user):***@127.0.0.1") == true)
        #expect(exposed.first { $0.0 == "conf" }?.1.contains(#""celeriac_signing_key_ids":["k1"]"#) == true)
        #expect(logs.text.contains("signature does not match"))
        #expect(logs.text.contains(":***@"))
        await raw.close()
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func theMetricsEndpointListensOnlyOnTheChosenAddress() async throws {
        let endpoint = MetricsEndpoint(
            registry: PrometheusCollectorRegistry(), host: "127.0.0.2", port: 0, isReady: { true })
        let port = try endpoint.start()
        defer { endpoint.stop() }
        #expect(tcpConnects(host: "127.0.0.2", port: port))
        #expect(!tcpConnects(host: "127.0.0.1", port: port))
        #expect(throws: (any Error).self) {
            try MetricsEndpoint(
                registry: PrometheusCollectorRegistry(), host: "localhost:80", port: 0, isReady: { true }
            ).start()
        }
    }
}

/// Starts a worker with a full configuration (security settings included) and waits until it consumes.
func startConfiguredWorker(
    _ config: Worker.Configuration, url: AMQPURL, observers: [any WorkerObserver] = [], logger: Logger? = nil
) async throws -> RunningWorker {
    let observer = RecordingObserver()
    let logger = logger ?? testLogger("it.worker")
    let worker = Worker(
        registry: TestTasks.registry(), configuration: config, broker: AMQPBroker(url: url), logger: logger,
        observer: FanOut(observers: [observer] + observers))
    let group = ServiceGroup(configuration: .init(services: [.init(service: worker)], logger: testLogger("it.group")))
    let task = Task { try await group.run() }
    _ = try await first(observer.readyEvents, within: .seconds(30), "the worker to be ready") { $0 }
    return RunningWorker(worker: worker, observer: observer, group: group, task: task)
}

/// Sends one remote-control request to `node` and returns its reply (what `celery inspect/control` prints).
func control(_ method: String, _ arguments: JSONObject = [:], node: String, url: AMQPURL) async throws -> JSONValue {
    let c = AMQPConnection(url: url, options: .init(name: "it-control", confirms: false))
    try await c.connect()
    let replies = uniqueName("control-reply")
    try await c.declare(QueueSpec(replies, durable: false, exclusive: true, autoDelete: true))
    try await c.declare(ExchangeSpec("reply.celery.pidbox", kind: .direct, durable: false))
    try await c.bind(BindingSpec(queue: replies, exchange: "reply.celery.pidbox", routingKey: replies))
    let stream = try await c.consume(queue: replies, prefetch: 0, noAck: true)
    let request: JSONValue = [
        "method": .string(method), "arguments": .object(arguments), "destination": [.string(node)],
        "reply_to": ["exchange": "reply.celery.pidbox", "routing_key": .string(replies)],
        "ticket": .string(uniqueName()),
    ]
    try await c.publish(
        OutgoingMessage(
            exchange: "celery.pidbox", routingKey: "", body: request.jsonBytes,
            properties: BasicProperties(contentType: "application/json")))
    let reply = try await first(stream.deliveries, within: .seconds(20), "the \(method) reply") { _ in true }
    await c.close()
    return try JSONValue.parse(reply.body)[node] ?? .null
}

func tcpConnects(host: String, port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    inet_pton(AF_INET, host, &addr.sin_addr)
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    } == 0
}

/// Keeps every log line with its metadata, at trace level, so a test can search what was logged.
final class LogRecorder: Sendable {
    private let lines = Mutex<[String]>([])
    var text: String { lines.withLock { $0.joined(separator: "\n") } }

    func logger(_ label: String) -> Logger {
        var logger = Logger(label: label) { _ in Handler(recorder: self) }
        logger.logLevel = .trace
        return logger
    }

    fileprivate func append(_ line: String) { lines.withLock { $0.append(line) } }

    struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(
            level: Logger.Level, message: Logger.Message, metadata extra: Logger.Metadata?, source: String,
            file: String, function: String, line: UInt
        ) {
            let all = metadata.merging(extra ?? [:]) { $1 }
            recorder.append(
                "\(level) \(message) \(all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))"
            )
        }
    }
}
