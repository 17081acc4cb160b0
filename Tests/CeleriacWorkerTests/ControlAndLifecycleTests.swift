import CeleriacBroker
import CeleriacCoordination
import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import CeleriacWorker
import FoundationEssentials
import Testing

/// Remote control, revocation, events, warm shutdown, queues and priorities, on the in-memory broker.
@Suite struct ControlAndLifecycleTests {
    func control(_ app: CeleriacTestApp) async throws -> ControlClient {
        let control = ControlClient(broker: app.broker)
        try await control.start()
        return control
    }

    @Test func pingIsAnsweredByTheWorkerByName() async throws {
        try await withApp { app in
            let control = try await control(app)
            let pongs = try await control.call("ping", destination: ["celeriac@test"], timeout: .seconds(5))
            #expect(pongs["celeriac@test"] == ["ok": "pong"])
            await control.close()
        }
    }

    @Test func statsReportTotalsAndTheBroker() async throws {
        try await withApp { app in
            _ = try await app.client.delay(Tasks.add, .init(x: 1, y: 1)).get(timeout: .seconds(10))
            let control = try await control(app)
            let stats = try #require(
                try await control.call("stats", destination: ["celeriac@test"], timeout: .seconds(5))["celeriac@test"])
            #expect(stats["total"]?["t.add"] == .int(1))
            #expect(stats["broker"]?["transport"] == .string("memory"))
            await control.close()
        }
    }

    @Test func registeredListsEveryTask() async throws {
        try await withApp { app in
            let control = try await control(app)
            let registered = try await control.call("registered", destination: ["celeriac@test"], timeout: .seconds(5))[
                "celeriac@test"]
            let names = registered?.arrayValue?.compactMap(\.stringValue) ?? []
            #expect(names.contains("t.add") && names.contains("t.flaky"))
            await control.close()
        }
    }

    @Test func activeShowsARunningTask() async throws {
        let gate = Gate()
        let runs = Counter()
        try await withApp(Tasks.registry(gate: gate, runs: runs)) { app in
            let held = try await app.client.delay(Tasks.gate, .init())
            try await runs.waitForRun("t.gate")
            let control = try await control(app)
            let active = try await control.call("active", destination: ["celeriac@test"], timeout: .seconds(5))[
                "celeriac@test"]
            #expect(active?.arrayValue?.contains { $0["id"]?.stringValue == held.id } == true)
            gate.open()
            _ = try await held.get(timeout: .seconds(10))
            await control.close()
        }
    }

    @Test func aRevokedQueuedTaskIsNotRun() async throws {
        let gate = Gate()
        let runs = Counter()
        try await withApp(
            Tasks.registry(gate: gate, runs: runs), configuration: .init(concurrency: 1, hostname: "celeriac@test")
        ) { app in
            let held = try await app.client.delay(Tasks.gate, .init())
            try await runs.waitForRun("t.gate")
            let doomed = try await app.client.delay(Tasks.add, .init(x: 1, y: 1))
            let control = try await control(app)
            _ = try await control.revoke([doomed.id], timeout: .seconds(2))
            gate.open()
            _ = try await held.get(timeout: .seconds(10))
            await #expect {
                _ = try await doomed.get(timeout: .seconds(10))
            } throws: { error in
                guard case .taskRevoked? = error as? CeleriacError else { return false }
                return true
            }
            #expect(runs.count("t.add") == 0)
            await control.close()
        }
    }

    @Test func revokeWithTerminateCancelsARunningTask() async throws {
        let runs = Counter()
        try await withApp(Tasks.registry(runs: runs)) { app in
            let napping = try await app.client.delay(Tasks.nap, .init(), options: SendOptions(softTimeLimit: 3600))
            try await runs.waitForRun("t.nap")
            let control = try await control(app)
            _ = try await control.revoke([napping.id], terminate: true, timeout: .seconds(2))
            await #expect {
                _ = try await napping.get(timeout: .seconds(10))
            } throws: { error in
                guard case .taskRevoked(_, let reason)? = error as? CeleriacError else { return false }
                return reason.contains("terminated")
            }
            await control.close()
        }
    }

    @Test func revocationsReachAWorkerStartedLater() async throws {
        let clock = ManualClock()
        let broker = InMemoryBroker(clock: clock)
        let runs = Counter()
        // Revoked while no worker runs: the revocation log (a stream) keeps it for the next one.
        let control = ControlClient(broker: broker)
        try await control.start()
        let id = UUID().uuidString.lowercased()
        _ = try await control.revoke([id], timeout: .milliseconds(100))
        let app = try await CeleriacTestApp(registry: Tasks.registry(runs: runs), clock: clock, broker: broker)
        let handle = try await app.client.delay(Tasks.add, .init(x: 2, y: 2), options: SendOptions(taskID: id))
        await #expect {
            _ = try await handle.get(timeout: .seconds(10))
        } throws: { error in
            guard case .taskRevoked? = error as? CeleriacError else { return false }
            return true
        }
        #expect(runs.count("t.add") == 0)
        await control.close()
        try await app.shutdown()
    }

    @Test func aRateLimitSetByControlAppliesToTheNextRuns() async throws {
        let runs = Counter()
        try await withApp(Tasks.registry(runs: runs)) { app in
            let control = try await control(app)
            let reply = try await control.call(
                "rate_limit", arguments: ["task_name": "t.add", "rate_limit": "1/m"],
                destination: ["celeriac@test"], timeout: .seconds(5))
            #expect(reply["celeriac@test"]?["ok"] != nil)
            let first = try await app.client.delay(Tasks.add, .init(x: 1, y: 0))
            let second = try await app.client.delay(Tasks.add, .init(x: 2, y: 0))
            // One a minute: whichever takes the token runs, the other waits for the clock.
            try await runs.waitForRun("t.add")
            #expect(runs.count("t.add") == 1)
            await app.clock.advance(by: .seconds(60))
            let results = [try await first.get(timeout: .seconds(10)), try await second.get(timeout: .seconds(10))]
            #expect(results == [1, 2])
            await control.close()
        }
    }

    @Test func workerEventsReachAnEventReceiver() async throws {
        try await withApp(configuration: .init(hostname: "celeriac@test", events: true)) { app in
            let receiver = EventReceiver(broker: app.broker)
            let events = try await receiver.start(routingKey: "task.#")
            let handle = try await app.client.delay(Tasks.add, .init(x: 3, y: 4))
            #expect(try await handle.get(timeout: .seconds(10)) == 7)
            var seen: [String] = []
            for await event in events {
                if event["uuid"]?.stringValue == handle.id, let type = event["type"]?.stringValue { seen.append(type) }
                if seen.contains("task-succeeded") { break }
            }
            #expect(
                seen.contains("task-received") && seen.contains("task-started") && seen.contains("task-succeeded"),
                "saw \(seen)")
            await receiver.close()
        }
    }

    @Test func warmShutdownLetsARunningTaskFinishAndGivesPrefetchedOnesBack() async throws {
        let gate = Gate()
        let runs = Counter()
        let recorder = Recorder()
        let app = try await CeleriacTestApp(
            registry: Tasks.registry(gate: gate, runs: runs),
            configuration: .init(concurrency: 1, prefetchMultiplier: 4, hostname: "celeriac@test"), observer: recorder)
        let held = try await app.client.delay(Tasks.gate, .init())
        try await runs.waitForRun("t.gate")
        _ = try await app.client.delay(Tasks.add, .init(x: 1, y: 1))
        _ = try await app.client.delay(Tasks.add, .init(x: 2, y: 2))
        let stopping = Task { try await app.shutdown() }
        try await recorder.requeued.wait(for: 2, "the prefetched tasks handed back") { _ in true }
        gate.open()
        try await stopping.value
        // The running task finished and answered; the two that had not started wait in the queue for the next worker.
        #expect(runs.count("t.gate") == 1 && runs.count("t.add") == 0)
        #expect(app.broker.messages(in: "celery")?.count == 2)
        #expect(app.broker.messages(in: "celery")?.allSatisfy(\.redelivered) == true)
        _ = held
    }

    @Test func aQueueAddedAtRunTimeIsConsumed() async throws {
        try await withApp { app in
            let control = try await control(app)
            let reply = try await control.call(
                "add_consumer", arguments: ["queue": "extra"], destination: ["celeriac@test"], timeout: .seconds(5))
            #expect(reply["celeriac@test"] == ["ok": "add consumer extra"])
            let handle = try await app.client.delay(Tasks.mul, .init(x: 6, y: 7), options: SendOptions(queue: "extra"))
            #expect(try await handle.get(timeout: .seconds(10)) == 42)
            await control.close()
        }
    }

    @Test func aTaskForAQueueNoWorkerConsumesWaitsThere() async throws {
        let runs = Counter()
        try await withApp(Tasks.registry(runs: runs)) { app in
            _ = try await app.client.delay(Tasks.add, .init(x: 1, y: 1), options: SendOptions(queue: "elsewhere"))
            let there = try await app.client.delay(Tasks.add, .init(x: 2, y: 2))
            _ = try await there.get(timeout: .seconds(10))
            #expect(app.broker.messages(in: "elsewhere")?.count == 1)
            #expect(runs.count("t.add") == 1)
        }
    }

    @Test func higherPriorityTasksRunFirst() async throws {
        let gate = Gate()
        let runs = Counter()
        try await withApp(
            Tasks.registry(gate: gate, runs: runs),
            configuration: .init(concurrency: 1, hostname: "celeriac@test", maxPriority: 9)
        ) { app in
            let held = try await app.client.delay(Tasks.gate, .init())
            try await runs.waitForRun("t.gate")
            let low = try await app.client.delay(Tasks.add, .init(x: 1, y: 0), options: SendOptions(priority: 1))
            let high = try await app.client.delay(Tasks.mul, .init(x: 1, y: 1), options: SendOptions(priority: 9))
            gate.open()
            _ = try await held.get(timeout: .seconds(10))
            _ = try await low.get(timeout: .seconds(10))
            _ = try await high.get(timeout: .seconds(10))
            let order = runs.log.items.filter { $0 != "t.gate" }
            #expect(order == ["t.mul", "t.add"], "ran in order \(order)")
        }
    }

    @Test func aTaskWithIgnoreResultSendsNoResult() async throws {
        let runs = Counter()
        // One at a time: had the ignored task answered, its answer would reach the reply queue before the next one's.
        try await withApp(Tasks.registry(runs: runs), configuration: .init(concurrency: 1, hostname: "celeriac@test")) {
            app in
            let ignored = try await app.client.delay(
                Tasks.add, .init(x: 1, y: 1), options: SendOptions(ignoreResult: true))
            let later = try await app.client.delay(Tasks.mul, .init(x: 2, y: 3)).get(timeout: .seconds(10))
            #expect(later == 6)
            #expect(runs.count("t.add") == 1)
            #expect(await app.client.state(of: ignored.id) == nil, "a result came for a task sent with ignore_result")
        }
    }

    @Test func aDuplicateDeliveryOfAFinishedTaskIsSkipped() async throws {
        let runs = Counter()
        let recorder = Recorder()
        // One at a time, so the duplicate is handled before the task sent after it.
        try await withApp(
            Tasks.registry(runs: runs), configuration: .init(concurrency: 1, hostname: "celeriac@test"),
            observer: recorder
        ) { app in
            let id = UUID().uuidString.lowercased()
            let first = try await app.client.delay(Tasks.add, .init(x: 1, y: 1), options: SendOptions(taskID: id))
            _ = try await first.get(timeout: .seconds(10))
            _ = try await app.client.delay(
                Tasks.add, .init(x: 1, y: 1), options: SendOptions(taskID: id, ignoreResult: true))
            let after = try await app.client.delay(Tasks.mul, .init(x: 3, y: 3)).get(timeout: .seconds(10))
            #expect(after == 9)
            #expect(runs.count("t.add") == 1)
        }
    }

    @Test func aUniqueTaskIsRefusedWhileItsTwinIsQueuedOrRunning() async throws {
        let gate = Gate()
        let runs = Counter()
        try await withApp(Tasks.registry(gate: gate, runs: runs)) { app in
            let sent = try await app.client.sendUnique("t.gate", key: "report:42")
            try await runs.waitForRun("t.gate")
            await #expect {
                _ = try await app.client.sendUnique("t.gate", key: "report:42")
            } throws: { error in
                guard case .duplicate(let key, let existing)? = error as? UniqueTaskError else { return false }
                return key == "report:42" && existing == sent.id
            }
            let existing = try await app.client.sendUnique("t.gate", key: "report:42", onDuplicate: .returnExisting)
            #expect(existing.id == sent.id)
            gate.open()
            guard case .sent(let result) = sent else { Issue.record("the first send was not sent"); return }
            _ = try await result.get(timeout: .seconds(10))
            // Released when it finished: the key is free again.
            let again = try await app.client.sendUnique("t.gate", key: "report:42")
            guard case .sent = again else { Issue.record("the key was not released"); return }
        }
    }

    @Test func aLinkErrorOnASingleTaskRunsWithTheFailedTasksID() async throws {
        let callbacks = EventLog<String>()
        try await withApp(CanvasTasks.registry(callbacks: callbacks)) { app in
            let result = try await app.client.apply(CanvasTasks.fail.s("alone").linkError(CanvasTasks.onError.s()))
            _ = try? await result.get(timeout: .seconds(10))
            try await callbacks.wait("the errback") { $0 == "error \(result.id)" }
        }
    }
}
