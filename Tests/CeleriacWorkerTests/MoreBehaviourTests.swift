import CeleriacCanvas
import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import CeleriacWorker
import Testing

/// Time limits from every source, more canvases, and the remaining control commands.
@Suite struct MoreBehaviourTests {
    func failsWithSoftTimeLimit(_ handle: TaskHandle<String>) async {
        await #expect {
            _ = try await handle.get(timeout: .seconds(10))
        } throws: { error in
            guard case .taskFailed(_, _, let failure)? = error as? CeleriacError else { return false }
            return failure.type == "SoftTimeLimitExceeded"
        }
    }

    @Test func theWorkersSoftTimeLimitAppliesToTasksWithoutTheirOwn() async throws {
        let runs = Counter()
        var configuration = Worker.Configuration(hostname: "celeriac@test")
        configuration.softTimeLimit = 30
        try await withApp(Tasks.registry(runs: runs), configuration: configuration) { app in
            let handle = try await app.client.delay(Tasks.sleepy, .init())
            try await runs.waitForRun("t.sleepy")
            await app.clock.advance(by: .seconds(30))
            await failsWithSoftTimeLimit(handle)
        }
    }

    @Test func aHardLimitAloneActsAsASoftOneInTheAsyncPool() async throws {
        let runs = Counter()
        try await withApp(Tasks.registry(runs: runs)) { app in
            let handle = try await app.client.delay(Tasks.sleepy, .init(), options: SendOptions(hardTimeLimit: 12))
            try await runs.waitForRun("t.sleepy")
            await app.clock.advance(by: .seconds(12))
            await failsWithSoftTimeLimit(handle)
        }
    }

    @Test func theTimeLimitControlCommandAppliesToLaterRuns() async throws {
        let runs = Counter()
        try await withApp(Tasks.registry(runs: runs)) { app in
            let control = ControlClient(broker: app.broker)
            try await control.start()
            _ = try await control.call(
                "time_limit", arguments: ["task_name": "t.sleepy", "soft": 7], destination: ["celeriac@test"],
                timeout: .seconds(5))
            let handle = try await app.client.delay(Tasks.sleepy, .init())
            try await runs.waitForRun("t.sleepy")
            await app.clock.advance(by: .seconds(7))
            await failsWithSoftTimeLimit(handle)
            await control.close()
        }
    }

    @Test func aRetryWithoutACountdownWaitsTheTasksDefaultDelay() async throws {
        let recorder = Recorder()
        try await withApp(observer: recorder) { app in
            let handle = try await app.client.delay(Tasks.retryDefault, .init())
            try await recorder.finished.wait("the retry") { $0 == ("t.retry_default", .retried) }
            try await app.broker.waitForDelayedMessages()  // published after the observer heard of it
            await app.clock.advance(by: .seconds(179))
            #expect(app.broker.delayedMessageCount == 1)
            await app.clock.advance(by: .seconds(1))
            let retries = try await handle.get(timeout: .seconds(10))
            #expect(retries == 1)
        }
    }

    @Test func aGroupWithAFailingMemberFailsWhenItsResultsAreCollected() async throws {
        try await withApp(CanvasTasks.registry()) { app in
            let result = try await app.client.apply(
                group {
                    CanvasTasks.add.s(1, 1); CanvasTasks.fail.s("member"); CanvasTasks.add.s(2, 2)
                })
            await #expect {
                _ = try await result.get(timeout: .seconds(10))
            } throws: { error in
                guard case .taskFailed(_, _, let failure)? = error as? CeleriacError else { return false }
                return failure.type == "ValueError"
            }
        }
    }

    @Test func aChordWhoseBodyFailsFailsItsResult() async throws {
        try await withApp(CanvasTasks.registry()) { app in
            let result = try await app.client.apply(
                chord(
                    group {
                        CanvasTasks.add.s(1, 1); CanvasTasks.add.s(2, 2)
                    }, CanvasTasks.failSum.s()))
            await #expect {
                _ = try await result.get(timeout: .seconds(10))
            } throws: { error in
                guard case .taskFailed(_, _, let failure)? = error as? CeleriacError else { return false }
                return failure.type == "ValueError" && failure.message == "body got [2, 4]"
            }
        }
    }

    @Test func aGroupOfChainsRunsEachChainInOrder() async throws {
        try await withApp(CanvasTasks.registry()) { app in
            let g = group { for i in 1...5 { CanvasTasks.add.s(i, i) | CanvasTasks.mul.s(10) } }
            let values: [Int] = try await app.client.apply(g).get(timeout: .seconds(10))
            #expect(values == [20, 40, 60, 80, 100])
        }
    }

    @Test func chunksSplitPairsIntoTasksOfAGivenSize() async throws {
        try await withApp(CanvasTasks.registry()) { app in
            let pairs = (0..<7).map { ($0, $0) }
            let chunks: [[Int]] = try await app.client.apply(CanvasTasks.add.chunks(pairs, size: 3)).get(
                timeout: .seconds(10))
            #expect(chunks == [[0, 2, 4], [6, 8, 10], [12]])
        }
    }

    @Test func aChordOfChordsJoinsAtEveryLevel() async throws {
        try await withApp(CanvasTasks.registry()) { app in
            let inner = (1...3).map { n in
                chord(group { for i in 0..<n { CanvasTasks.add.s(i, 1) } }, CanvasTasks.xsum.s())
            }
            let outer = chord(group(inner), CanvasTasks.xsum.s())
            // 1 + (1+2) + (1+2+3) = 10
            let total = try await app.client.apply(outer).get(timeout: .seconds(10))
            #expect(total == 10)
        }
    }

    @Test func poolGrowAndShrinkChangeTheConcurrency() async throws {
        try await withApp(configuration: .init(concurrency: 2, hostname: "celeriac@test")) { app in
            let control = ControlClient(broker: app.broker)
            try await control.start()
            let grown = try await control.call(
                "pool_grow", arguments: ["n": 3], destination: ["celeriac@test"], timeout: .seconds(5))
            #expect(grown["celeriac@test"]?["ok"]?.stringValue?.contains("5") == true)
            let shrunk = try await control.call(
                "pool_shrink", arguments: ["n": 4], destination: ["celeriac@test"], timeout: .seconds(5))
            #expect(shrunk["celeriac@test"]?["ok"]?.stringValue?.contains("1") == true)
            let stats = try await control.call("stats", destination: ["celeriac@test"], timeout: .seconds(5))
            #expect(stats["celeriac@test"]?["pool"]?["max-concurrency"] == .int(1))
            await control.close()
        }
    }

    @Test func aCancelledConsumerLeavesItsQueueAlone() async throws {
        let runs = Counter()
        try await withApp(
            Tasks.registry(runs: runs), configuration: .init(queues: ["celery", "side"], hostname: "celeriac@test")
        ) { app in
            let control = ControlClient(broker: app.broker)
            try await control.start()
            let reply = try await control.call(
                "cancel_consumer", arguments: ["queue": "side"], destination: ["celeriac@test"], timeout: .seconds(5))
            #expect(reply["celeriac@test"]?["ok"] != nil)
            _ = try await app.client.delay(Tasks.add, .init(x: 1, y: 1), options: SendOptions(queue: "side"))
            let main = try await app.client.delay(Tasks.mul, .init(x: 2, y: 2)).get(timeout: .seconds(10))
            #expect(main == 4)
            #expect(app.broker.messages(in: "side")?.count == 1)
            #expect(runs.count("t.add") == 0)
            await control.close()
        }
    }

    @Test func confNamesTheBrokerWithoutSecrets() async throws {
        try await withApp { app in
            let control = ControlClient(broker: app.broker)
            try await control.start()
            let conf = try await control.call("conf", destination: ["celeriac@test"], timeout: .seconds(5))
            #expect(conf["celeriac@test"]?["broker_url"] == .string("memory://"))
            #expect(conf["celeriac@test"]?["worker_concurrency"] == .int(4))
            await control.close()
        }
    }

    @Test func theShutdownCommandStopsTheWorkerWarmly() async throws {
        let recorder = Recorder()
        let app = try await CeleriacTestApp(registry: Tasks.registry(), observer: recorder)
        let control = ControlClient(broker: app.broker)
        try await control.start()
        try await control.cast("shutdown", destination: ["celeriac@test"])
        // The command alone starts the warm shutdown: the worker says it is no longer ready before the app is
        // asked to stop.
        try await recorder.readiness.wait("the worker leaving the ready state") { $0 == false }
        #expect(app.worker.isReady == false)
        try await app.shutdown()
        await control.close()
    }

    @Test func eventsCanBeSwitchedOnAtRunTime() async throws {
        try await withApp { app in
            let control = ControlClient(broker: app.broker)
            try await control.start()
            let receiver = EventReceiver(broker: app.broker)
            let events = try await receiver.start(routingKey: "task.#")
            _ = try await control.call("enable_events", destination: ["celeriac@test"], timeout: .seconds(5))
            let handle = try await app.client.delay(Tasks.add, .init(x: 5, y: 5))
            _ = try await handle.get(timeout: .seconds(10))
            var succeeded = false
            for await event in events
            where event["uuid"]?.stringValue == handle.id && event["type"]?.stringValue == "task-succeeded" {
                succeeded = true
                break
            }
            #expect(succeeded)
            await receiver.close()
            await control.close()
        }
    }

    @Test func aTaskSentToTheWorkerBeforeItStartsRunsOnceItDoes() async throws {
        let clock = ManualClock()
        let broker = InMemoryBroker(clock: clock)
        let client = CeleriacClient(configuration: .init(), broker: broker)
        try await client.start()
        let early = try await client.delay(Tasks.add, .init(x: 4, y: 4))
        let app = try await CeleriacTestApp(registry: Tasks.registry(), clock: clock, broker: broker)
        #expect(try await early.get(timeout: .seconds(10)) == 8)
        await client.close()
        try await app.shutdown()
    }
}
