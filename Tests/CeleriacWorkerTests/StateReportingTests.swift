import CeleriacBroker
import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import CeleriacWorker
import Foundation
import Testing

/// A task's intermediate states (`context.updateState`, `trackStarted`) on the in-memory broker: what reaches the
/// caller, in which order, how often, and when nothing is sent.
@Suite struct StateReportingTests {
    struct Steps: Codable, Sendable { let n: Int }
    static let report = TaskName<Steps, Int>("t.report", parameters: "n")
    static let custom = TaskName<NoArguments, String>("t.custom")

    /// `t.report` waits for `start`, reports PROGRESS 1…n back to back, then waits for `finish` and returns n.
    static func registry(start: Gate, finish: Gate) -> TaskRegistry {
        var r = TaskRegistry()
        r.register(report) { steps, context in
            await start.wait()
            for i in 1...steps.n { context.reportProgress(current: i, total: steps.n) }
            await finish.wait()
            return steps.n
        }
        struct Upload: Encodable { let file: String; let bytes: Int }
        r.register(custom) { _, context in
            // 100 ms after STARTED (the interval between two states), a state of its own.
            try await context.sleep(for: .milliseconds(100))
            try context.updateState(TaskState("UPLOADING"), meta: Upload(file: "a.csv", bytes: 42))
            return "done"
        }
        r.register(Tasks.add) { p, _ in p.x + p.y }
        return r
    }

    @Test func statesReachTheCallerInOrderCoalescedToTheLatestAndEndWithTheResult() async throws {
        let start = Gate(), finish = Gate()
        try await withApp(Self.registry(start: start, finish: finish)) { app in
            let handle = try await app.client.delay(Self.report, .init(n: 5))
            var updates = await handle.updates().makeAsyncIterator()
            start.open()
            // The first state goes out at once; the four that follow within 100 ms become one, the latest.
            let first = try #require(await updates.next())
            #expect(first.status == .progress && first.result == ["current": 1, "total": 5])
            #expect(await handle.state() == .progress)
            #expect(await handle.result.info() == ["current": 1, "total": 5])
            await app.clock.advance(by: .milliseconds(100))
            let latest = try #require(await updates.next())
            #expect(latest.status == .progress && latest.result == ["current": 5, "total": 5])
            finish.open()
            let final = try #require(await updates.next())
            #expect(final.status == .success && final.result == 5)
            #expect(await updates.next() == nil, "the sequence ends with the final result")
        }
    }

    /// Publishes `messages` to the `celery` queue with their reply queues declared, unconsumed, so a test can read
    /// everything the worker sent there.
    static func publish(_ messages: [TaskMessage], on app: CeleriacTestApp) async throws {
        let c = app.broker.connection(.init(name: "raw", confirms: true))
        try await c.connect()
        for reply in Set(messages.compactMap(\.replyTo)) {
            _ = try await c.declare(Topology.replyQueue(reply), recreateAfterReconnect: false)
        }
        try await c.publish(messages.map { TaskCodec.encode($0, routingKey: "celery") })
        await c.close()
    }

    @Test func aStateStillWaitingWhenTheTaskEndsIsDroppedNeverSentAfterTheResult() async throws {
        let start = Gate(), finish = Gate()
        start.open()
        finish.open()
        let recorder = Recorder()
        try await withApp(Self.registry(start: start, finish: finish), observer: recorder) { app in
            let message = TaskMessage(name: "t.report", args: [3], ignoreResult: nil, replyTo: "reply.late")
            try await Self.publish([message], on: app)
            try await app.broker.waitForMessages(in: "reply.late", 2)
            // One more task through the same queue, awaited: the first one is long done and settled by then.
            #expect(try await app.client.delay(Tasks.add, .init(x: 20, y: 22)).get(timeout: .seconds(10)) == 42)
            let states = try #require(app.broker.messages(in: "reply.late")).compactMap(ResultCodec.decode)
            // PROGRESS 1 went out at once; 2 and 3 were waiting for the interval when the task returned.
            #expect(states.map(\.status.rawValue) == ["PROGRESS", "SUCCESS"])
            #expect(states.first?.result == ["current": 1, "total": 3])
        }
    }

    @Test func startedAndTheTasksOwnStatesGoToTheReplyQueueButNothingUnderIgnoreResult() async throws {
        var configuration = Worker.Configuration(hostname: "celeriac@test")
        configuration.trackStarted = true
        let recorder = Recorder()
        try await withApp(
            Self.registry(start: Gate(), finish: Gate()), configuration: configuration, observer: recorder
        ) { app in
            let kept = TaskMessage(name: "t.custom", ignoreResult: nil, replyTo: "reply.kept")
            let ignored = TaskMessage(name: "t.custom", ignoreResult: true, replyTo: "reply.ignored")
            let noReply = TaskMessage(name: "t.custom", ignoreResult: nil, replyTo: nil)
            try await Self.publish([kept, ignored, noReply], on: app)
            try await app.clock.waitForSleepers(3, dueWithin: .milliseconds(100))
            await app.clock.advance(by: .milliseconds(100))
            try await recorder.finished.wait(for: 3, "the three tasks finished") { $0.0 == "t.custom" }
            try await app.broker.waitForMessages(in: "reply.kept", 3)
            let deliveries = try #require(app.broker.messages(in: "reply.kept"))
            let states = deliveries.compactMap(ResultCodec.decode)
            #expect(states.map(\.status.rawValue) == ["STARTED", "UPLOADING", "SUCCESS"])
            #expect(states.first?.result["pid"]?.intValue == Int64(ProcessInfo.processInfo.processIdentifier))
            #expect(states.first?.result["hostname"] == "celeriac@test")
            #expect(
                states.dropFirst().first?.result == ["file": "a.csv", "bytes": 42],
                "Encodable meta, a state of the task's own")
            #expect(states.allSatisfy { $0.taskID == kept.id })
            #expect(
                deliveries.map(\.properties.deliveryMode) == [1, 1, 2], "states are transient, the result persistent")
            #expect(deliveries.allSatisfy { $0.properties.correlationID == kept.id })
            #expect(app.broker.messages(in: "reply.ignored")?.isEmpty == true, "ignore_result: no state, no result")
        }
    }
}
