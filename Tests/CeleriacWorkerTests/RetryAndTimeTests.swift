import CeleriacBroker
import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import CeleriacWorker
import FoundationEssentials
import Testing

/// Retries, countdowns, ETAs, expiry, rate and time limits, with time moved by the manual clock.
@Suite struct RetryAndTimeTests {
    @Test func aRetryWithACountdownWaitsInTheBrokerUntilTheClockPassesIt() async throws {
        let recorder = Recorder()
        let runs = Counter()
        try await withApp(Tasks.registry(runs: runs), observer: recorder) { app in
            let handle = try await app.client.delay(Tasks.flaky, .init(times: 2))
            for attempt in 1...2 {
                try await recorder.finished.wait(for: attempt, "retry \(attempt)") { $0 == ("t.flaky", .retried) }
                try await app.broker.waitForDelayedMessages()  // published after the observer heard of it
                await app.clock.advance(by: .seconds(9))
                #expect(app.broker.delayedMessageCount == 1, "a 10 s retry left the delay queues after 9 s")
                #expect(runs.count("t.flaky") == attempt)
                await app.clock.advance(by: .seconds(1))
            }
            #expect(try await handle.get(timeout: .seconds(10)) == 2)
            #expect(runs.count("t.flaky") == 3)
        }
    }

    @Test func retriesStopAtMaxRetriesWithTheLastError() async throws {
        let recorder = Recorder()
        try await withApp(observer: recorder) { app in
            let handle = try await app.client.delay(Tasks.flaky, .init(times: 10))  // maxRetries is 3
            for attempt in 1...3 {
                try await recorder.finished.wait(for: attempt, "retry \(attempt)") { $0 == ("t.flaky", .retried) }
                try await app.broker.waitForDelayedMessages()  // published after the observer heard of it
                await app.clock.advance(by: .seconds(10))
            }
            await #expect {
                _ = try await handle.get(timeout: .seconds(10))
            } throws: { error in
                guard case .taskFailed(_, _, let failure)? = error as? CeleriacError else { return false }
                return failure.type == "MaxRetriesExceededError"
            }
        }
    }

    @Test func autoretryRetriesMatchingErrorsWithBackoff() async throws {
        let recorder = Recorder()
        let runs = Counter()
        try await withApp(Tasks.registry(runs: runs), observer: recorder) { app in
            let handle = try await app.client.delay(Tasks.autoretry, .init(times: 3))
            // Exponential backoff without jitter: 2, 4, 8 s (the cap), each never early.
            for (attempt, delay) in [2, 4, 8].enumerated() {
                try await recorder.finished.wait(for: attempt + 1, "autoretry \(attempt + 1)") {
                    $0 == ("t.autoretry", .retried)
                }
                try await app.broker.waitForDelayedMessages()
                await app.clock.advance(by: .seconds(delay) - .milliseconds(1))
                #expect(app.broker.delayedMessageCount == 1, "retry \(attempt + 1) left before its \(delay) s backoff")
                await app.clock.advance(by: .milliseconds(1))
            }
            let retries = try await handle.get(timeout: .seconds(10))
            #expect(retries == 3)
            #expect(runs.count("t.autoretry") == 4)
        }
    }

    @Test func aRetryReachesTheCallerAsRetryStateBeforeTheResult() async throws {
        try await withApp { app in
            // The caller's replies go to a queue the test reads without consuming, in the order they were sent.
            let replies = "test.replies"
            let raw = app.broker.connection(.init(name: "replies"))
            try await raw.connect()
            try await raw.declare(QueueSpec(replies))
            var options = SendOptions()
            options.replyTo = replies
            _ = try await app.client.delay(Tasks.flaky, .init(times: 1), options: options)
            try await app.broker.waitForMessages(in: replies, 1)
            try await app.broker.waitForDelayedMessages()
            await app.clock.advance(by: .seconds(10))
            try await app.broker.waitForMessages(in: replies, 2)
            let states = try #require(app.broker.messages(in: replies)).map {
                try JSONValue.parse($0.body)["status"]?.stringValue
            }
            #expect(states == ["RETRY", "SUCCESS"])
            await raw.close()
        }
    }

    @Test func aCountdownIsNeverEarly() async throws {
        let runs = Counter()
        try await withApp(Tasks.registry(runs: runs)) { app in
            let handle = try await app.client.delay(Tasks.add, .init(x: 1, y: 2), options: SendOptions(countdown: 30))
            #expect(app.broker.delayedMessageCount == 1)
            await app.clock.advance(by: .seconds(29))
            #expect(app.broker.delayedMessageCount == 1, "a 30 s countdown left the delay queues after 29 s")
            #expect(runs.count("t.add") == 0)
            await app.clock.advance(by: .seconds(1))
            #expect(try await handle.get(timeout: .seconds(10)) == 3)
        }
    }

    @Test func anETAInTheFutureRunsAtItsTime() async throws {
        try await withApp { app in
            let eta = app.clock.now.addingTimeInterval(3600)
            let handle = try await app.client.delay(Tasks.mul, .init(x: 6, y: 7), options: SendOptions(eta: eta))
            await app.clock.advance(by: .seconds(3599))
            #expect(app.broker.delayedMessageCount == 1, "a task due in an hour left the delay queues a second early")
            await app.clock.advance(by: .seconds(1))
            #expect(try await handle.get(timeout: .seconds(10)) == 42)
        }
    }

    @Test func anEarlyMessageFromAProducerWithoutDelayQueuesIsParkedUntilItsETA() async throws {
        let recorder = Recorder()
        let runs = Counter()
        try await withApp(Tasks.registry(runs: runs), observer: recorder) { app in
            // As a producer that does not use Celery's delay topology sends it: straight to the work queue.
            var message = TaskMessage(id: UUID().uuidString.lowercased(), name: "t.add", args: [4, 5])
            message.eta = app.clock.now.addingTimeInterval(60)
            message.replyTo = app.client.replyQueue
            let raw = app.broker.connection(.init(name: "early-producer"))
            try await raw.connect()
            try await raw.publish(TaskCodec.encode(message, routingKey: "celery", now: app.clock.now))
            try await recorder.parked.wait("the early task parked in the broker") { $0 == "t.add" }
            try await app.broker.waitForDelayedMessages()
            await app.clock.advance(by: .seconds(59))
            #expect(app.broker.delayedMessageCount == 1)
            #expect(runs.count("t.add") == 0)
            await app.clock.advance(by: .seconds(1))
            #expect(try await app.client.result(of: message.id, timeout: .seconds(10)) == .int(9))
            await raw.close()
        }
    }

    @Test func severalCountdownsRunInTheirOrder() async throws {
        try await withApp { app in
            let late = try await app.client.delay(Tasks.add, .init(x: 100, y: 0), options: SendOptions(countdown: 20))
            let early = try await app.client.delay(Tasks.add, .init(x: 1, y: 0), options: SendOptions(countdown: 5))
            await app.clock.advance(by: .seconds(5))
            #expect(try await early.get(timeout: .seconds(10)) == 1)
            #expect(app.broker.delayedMessageCount == 1)
            await app.clock.advance(by: .seconds(15))
            #expect(try await late.get(timeout: .seconds(10)) == 100)
        }
    }

    @Test func aPrefetchedTaskPastItsExpiryIsRevokedNotRun() async throws {
        let gate = Gate()
        let runs = Counter()
        let recorder = Recorder()
        try await withApp(
            Tasks.registry(gate: gate, runs: runs),
            configuration: .init(concurrency: 1, prefetchMultiplier: 4, hostname: "celeriac@test"),
            observer: recorder
        ) { app in
            let held = try await app.client.delay(Tasks.gate, .init())
            try await runs.waitForRun("t.gate")
            let expiring = try await app.client.delay(Tasks.add, .init(x: 1, y: 1), options: SendOptions(expiresIn: 60))
            await app.clock.advance(by: .seconds(30))
            #expect(runs.count("t.add") == 0)
            await app.clock.advance(by: .seconds(31))
            gate.open()
            #expect(try await held.get(timeout: .seconds(10)) == "opened")
            await #expect {
                _ = try await expiring.get(timeout: .seconds(10))
            } throws: { error in
                guard case .taskRevoked? = error as? CeleriacError else { return false }
                return true
            }
            #expect(runs.count("t.add") == 0)
        }
    }

    @Test func aQueuedTaskPastItsExpiryIsDroppedByTheBroker() async throws {
        let gate = Gate()
        let runs = Counter()
        let recorder = Recorder()
        try await withApp(
            Tasks.registry(gate: gate, runs: runs),
            configuration: .init(concurrency: 1, prefetchMultiplier: 1, hostname: "celeriac@test"),
            observer: recorder
        ) { app in
            let held = try await app.client.delay(Tasks.gate, .init())
            try await runs.waitForRun("t.gate")
            _ = try await app.client.delay(Tasks.add, .init(x: 1, y: 1), options: SendOptions(expiresIn: 60))
            #expect(app.broker.messages(in: "celery")?.count == 1)
            await app.clock.advance(by: .seconds(61))
            #expect(app.broker.messages(in: "celery")?.isEmpty == true, "the broker kept a message past its expiration")
            gate.open()
            #expect(try await held.get(timeout: .seconds(10)) == "opened")
            // Runs in order after where the expired one was: had it been delivered, it would have run first.
            let got7 = try await app.client.delay(Tasks.mul, .init(x: 2, y: 2)).get(timeout: .seconds(10))
            #expect(got7 == 4)
            #expect(runs.count("t.add") == 0)
        }
    }

    @Test func aRateLimitSpacesRunsByTheClock() async throws {
        let runs = Counter()
        try await withApp(Tasks.registry(runs: runs)) { app in
            let a = try await app.client.delay(Tasks.limited, .init())
            let b = try await app.client.delay(Tasks.limited, .init())
            // One per second: whichever took the token runs, the other waits for the clock.
            try await runs.waitForRun("t.limited")
            #expect(runs.count("t.limited") == 1)
            await app.clock.advance(by: .seconds(1))
            let results = [try await a.get(timeout: .seconds(10)), try await b.get(timeout: .seconds(10))]
            #expect(Set(results) == [1, 2])
        }
    }

    @Test func aSoftTimeLimitStopsATaskWhenTheClockPassesIt() async throws {
        let recorder = Recorder()
        let runs = Counter()
        try await withApp(Tasks.registry(runs: runs), observer: recorder) { app in
            let handle = try await app.client.delay(Tasks.nap, .init())
            try await runs.waitForRun("t.nap")
            await app.clock.advance(by: .seconds(5))
            await #expect {
                _ = try await handle.get(timeout: .seconds(10))
            } throws: { error in
                guard case .taskFailed(_, _, let failure)? = error as? CeleriacError else { return false }
                return failure.type == "SoftTimeLimitExceeded"
            }
        }
    }

    @Test func aTaskThatCatchesItsSoftTimeLimitReturnsItsResult() async throws {
        let recorder = Recorder()
        let runs = Counter()
        try await withApp(Tasks.registry(runs: runs), observer: recorder) { app in
            let handle = try await app.client.delay(Tasks.tidy, .init())
            try await runs.waitForRun("t.tidy")
            await app.clock.advance(by: .seconds(5))
            #expect(try await handle.get(timeout: .seconds(10)) == "tidied after 5.0s")
        }
    }

    @Test func aPerMessageTimeLimitOverridesTheTasksOwn() async throws {
        let recorder = Recorder()
        let runs = Counter()
        try await withApp(Tasks.registry(runs: runs), observer: recorder) { app in
            let handle = try await app.client.delay(Tasks.nap, .init(), options: SendOptions(softTimeLimit: 2))
            try await runs.waitForRun("t.nap")
            await app.clock.advance(by: .seconds(2))
            await #expect {
                _ = try await handle.get(timeout: .seconds(10))
            } throws: { error in
                guard case .taskFailed(_, _, let failure)? = error as? CeleriacError else { return false }
                return failure.type == "SoftTimeLimitExceeded"
            }
        }
    }
}
