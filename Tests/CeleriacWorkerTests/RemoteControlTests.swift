import CeleriacBroker
import CeleriacCore
import FoundationEssentials
import Logging
import Synchronization
import Testing

@testable import CeleriacWorker

/// Remote control on its own, against a fake worker: what each command asks of the worker and what it answers.
@Suite struct RemoteControlTests {
    final class FakeWorker: RemoteControlTarget, MessagePublishing {
        struct Calls {
            var revoked: [(String, Bool)] = []
            var broadcast: [[String]] = []
            var rateLimits: [(String, Double?)] = []
            var timeLimits: [(String, TaskMessage.TimeLimit)] = []
            var resized: [Int] = []
            var events: [Bool] = []
            var heartbeats = 0
            var shutdowns = 0
            var published: [OutgoingMessage] = []
            var clock = 0
        }
        let calls = Mutex(Calls())
        let configuration: Worker.Configuration
        init(_ configuration: Worker.Configuration = .init(hostname: "fake@host")) {
            self.configuration = configuration
        }

        var replies: any MessagePublishing { self }
        func publish(_ messages: [OutgoingMessage], settler: PublishSettler?) async throws(BrokerError) {
            calls.withLock { $0.published += messages }
        }
        func publishInBackground(_ message: OutgoingMessage) { calls.withLock { $0.published.append(message) } }
        var brokerInfo: BrokerInfo {
            BrokerInfo(
                transport: "memory", host: "h", port: 1, user: "u", virtualHost: "/", tls: false, connectTimeout: 1,
                heartbeat: 0)
        }
        var brokerDescription: String { "memory://" }
        var logger: Logger { Logger(label: "fake", factory: { _ in SwiftLogNoOpLogHandler() }) }
        func tick() -> Int {
            calls.withLock {
                $0.clock += 1; return $0.clock
            }
        }
        var lamportClock: Int { calls.withLock { $0.clock } }
        var registeredTaskNames: [String] { ["a.task", "b.task"] }
        var startedAt: Date { Date(timeIntervalSince1970: 0) }
        var concurrencyNow: Int { 3 }
        var prefetchNow: Int { 12 }
        var queuesConsumed: [String] { ["celery", "extra"] }
        var totalsByTask: [String: Int] { ["a.task": 7] }
        var poolStatistics: JSONObject { ["processes": [1, 2]] }
        func activeTasks() -> [(message: TaskMessage, queue: String, startedAt: Date)] {
            [(TaskMessage(id: "run-1", name: "a.task", args: [1]), "celery", Date(timeIntervalSince1970: 100))]
        }
        func reservedDeliveries() -> [(Delivery, String)] { [] }
        func revokedIDs() async -> [String] { calls.withLock { $0.revoked.map(\.0) } }
        func revoke(_ id: String, terminate: Bool) async { calls.withLock { $0.revoked.append((id, terminate)) } }
        func recordBroadcastRevocations(_ ids: [String], terminate: Bool) {
            calls.withLock { $0.broadcast.append(ids) }
        }
        func setRateLimit(_ task: String, _ limit: RateLimit?) async throws(CeleriacError) {
            guard registeredTaskNames.contains(task) else { throw .configuration("unknown task '\(task)'") }
            calls.withLock { $0.rateLimits.append((task, limit?.perSecond)) }
        }
        func setTimeLimit(_ task: String, _ limit: TaskMessage.TimeLimit) {
            calls.withLock { $0.timeLimits.append((task, limit)) }
        }
        func resizePool(by delta: Int) async -> Int {
            calls.withLock { $0.resized.append(delta) }
            return 3 + delta
        }
        func addConsumer(_ queue: String) async throws(CeleriacError) -> Bool { queue != "celery" }
        func cancelConsumer(_ queue: String) async throws(CeleriacError) -> Bool { queue == "extra" }
        var eventsEnabled: Bool { calls.withLock { $0.events.last ?? false } }
        func setEventsEnabled(_ on: Bool) { calls.withLock { $0.events.append(on) } }
        func sendHeartbeat() { calls.withLock { $0.heartbeats += 1 } }
        func requestShutdown() { calls.withLock { $0.shutdowns += 1 } }
    }

    func request(_ method: String, _ arguments: JSONObject = [:], destination: [String]? = nil) -> Delivery {
        var body: JSONObject = [
            "method": .string(method), "arguments": .object(arguments), "ticket": "t-1",
            "reply_to": ["exchange": "reply.celery.pidbox", "routing_key": "oid-1"],
        ]
        if let destination { body["destination"] = .array(destination.map { .string($0) }) }
        return Delivery(
            tag: DeliveryTag(generation: 1, channel: 1, value: 1), consumerTag: "", redelivered: false,
            exchange: "celery.pidbox",
            routingKey: "", properties: .init(), body: JSONValue.object(body).jsonBytes, messageCount: nil)
    }

    func reply(of fake: FakeWorker) throws -> JSONValue {
        let message = try #require(fake.calls.withLock { $0.published.last })
        #expect(message.exchange == "reply.celery.pidbox" && message.routingKey == "oid-1")
        #expect(message.properties.headers?["ticket"] == .string("t-1"))
        return try #require(try JSONValue.parse(message.body)["fake@host"])
    }

    @Test func pingRepliesPongUnderTheNodeNameWithTheTicketAndAClockTick() async throws {
        let fake = FakeWorker()
        await RemoteControl(worker: fake).handle(request("ping"))
        #expect(try reply(of: fake) == ["ok": "pong"])
        #expect(fake.calls.withLock { $0.published.last?.properties.headers?["clock"] } == .int(1))
    }

    @Test func aCommandForAnotherNodeIsIgnored() async throws {
        let fake = FakeWorker()
        await RemoteControl(worker: fake).handle(request("ping", destination: ["other@host"]))
        #expect(fake.calls.withLock { $0.published.isEmpty })
    }

    @Test func revokeFlagsEveryIDAndRecordsTheBroadcast() async throws {
        let fake = FakeWorker()
        await RemoteControl(worker: fake).handle(request("revoke", ["task_id": ["x", "y"], "terminate": true]))
        #expect(fake.calls.withLock { $0.revoked.map(\.0) } == ["x", "y"])
        #expect(fake.calls.withLock { $0.revoked.allSatisfy(\.1) })
        #expect(fake.calls.withLock { $0.broadcast } == [["x", "y"]])
        #expect(try reply(of: fake)["ok"]?.stringValue == "terminate: {'x', 'y'}")
    }

    @Test func rateLimitForAnUnknownTaskAnswersUnknownTask() async throws {
        let fake = FakeWorker()
        await RemoteControl(worker: fake).handle(request("rate_limit", ["task_name": "nope", "rate_limit": "5/s"]))
        #expect(try reply(of: fake) == ["error": "unknown task"])
        await RemoteControl(worker: fake).handle(request("rate_limit", ["task_name": "a.task", "rate_limit": "5/s"]))
        #expect(fake.calls.withLock { $0.rateLimits.map(\.1) } == [5])
    }

    @Test func timeLimitAndPoolSizeReachTheWorker() async throws {
        let fake = FakeWorker()
        let control = RemoteControl(worker: fake)
        await control.handle(request("time_limit", ["task_name": "a.task", "soft": 2, "hard": 4]))
        #expect(fake.calls.withLock { $0.timeLimits.first?.1 } == TaskMessage.TimeLimit(hard: 4, soft: 2))
        await control.handle(request("time_limit", ["task_name": "unknown.task", "soft": 2]))
        #expect(try reply(of: fake) == ["error": "unknown task"])
        await control.handle(request("pool_shrink", ["n": 2]))
        #expect(fake.calls.withLock { $0.resized } == [-2])
        #expect(try reply(of: fake)["ok"]?.stringValue == "pool will shrink to 1")
        await control.handle(request("pool_grow", ["n": 0]))
        #expect(try reply(of: fake) == ["error": "n must be a positive number"])
    }

    @Test func inspectAnswersComeFromTheWorkersState() async throws {
        let fake = FakeWorker()
        let control = RemoteControl(worker: fake)
        await control.handle(request("registered"))
        #expect(try reply(of: fake) == ["a.task", "b.task"])
        await control.handle(request("active"))
        #expect(try reply(of: fake).arrayValue?.first?["id"] == .string("run-1"))
        await control.handle(request("active_queues"))
        #expect(try reply(of: fake).arrayValue?.compactMap { $0["name"]?.stringValue } == ["celery", "extra"])
        await control.handle(request("stats"))
        let stats = try reply(of: fake)
        #expect(stats["total"] == ["a.task": 7] && stats["prefetch_count"] == .int(12))
        #expect(stats["pool"]?["max-concurrency"] == .int(3) && stats["pool"]?["processes"] == [1, 2])
        #expect(stats["broker"]?["transport"] == .string("memory"))
    }

    @Test func eventsHeartbeatAndShutdownAreSwitchedOnTheWorker() async throws {
        let fake = FakeWorker()
        let control = RemoteControl(worker: fake)
        await control.handle(request("heartbeat"))
        #expect(fake.calls.withLock { $0.heartbeats } == 0, "a heartbeat was sent with events off")
        await control.handle(request("enable_events"))
        await control.handle(request("heartbeat"))
        #expect(fake.calls.withLock { $0.heartbeats } == 1)
        let before = fake.calls.withLock { $0.published.count }
        await control.handle(request("shutdown"))
        #expect(fake.calls.withLock { $0.shutdowns } == 1)
        #expect(fake.calls.withLock { $0.published.count } == before, "shutdown is a cast: no reply")
    }

    @Test func aDisabledCommandIsRefusedAndAnUnknownOneIsAKeyError() async throws {
        var configuration = Worker.Configuration(hostname: "fake@host")
        configuration.security.remoteControl = .readOnly
        let fake = FakeWorker(configuration)
        let control = RemoteControl(worker: fake)
        await control.handle(request("revoke", ["task_id": "x"]))
        #expect(fake.calls.withLock { $0.revoked.isEmpty })
        #expect(try reply(of: fake)["error"]?.stringValue?.contains("disabled") == true)
        await control.handle(request("no_such_command"))
        #expect(try reply(of: fake) == ["error": "KeyError('no_such_command')"])
    }
}
