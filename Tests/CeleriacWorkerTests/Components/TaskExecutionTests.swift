import CeleriacCore
import CeleriacTesting
import Logging
import Testing

@testable import CeleriacWorker

/// ``TaskExecution`` alone: time limits, terminate, the mapping from what a body throws to an outcome, slots.
@Suite struct TaskExecutionTests {
    let clock = ManualClock()
    let log = Logger(label: "test")

    func execution(concurrency: Int = 1, timeLimit: Double? = nil, softTimeLimit: Double? = nil) -> TaskExecution {
        TaskExecution(
            settings: .init(
                hostname: "celeriac@test", timeLimit: timeLimit, softTimeLimit: softTimeLimit, acksEarly: false,
                clock: clock),
            executor: InProcessExecutor(), concurrency: concurrency)
    }

    func task(_ options: TaskOptions = TaskOptions(), body: @escaping @Sendable (TaskContext) async throws -> JSONValue)
        -> RegisteredTask
    {
        RegisteredTask(name: "t.body", parameters: [], options: options) { _, context in try await body(context) }
    }

    @Test func aSoftTimeLimitStopsTheTaskWithSoftTimeLimitExceeded() async throws {
        let execution = execution()
        let started = EventLog<String>()
        let sleepy = task(TaskOptions(softTimeLimit: 5)) { context in
            started.append("started")
            try await context.sleep(for: .seconds(60))
            return "not reached"
        }
        let message = TaskMessage(name: "t.body")
        async let outcome = execution.execute(message, task: sleepy, queue: "q", log: log)
        try await started.wait("the body to start") { _ in true }
        try await clock.waitForSleepers(2)  // the body's sleep and the soft-limit timer
        await clock.advance(by: .seconds(5))
        guard case .failure(let failure) = await outcome else { Issue.record("expected a failure"); return }
        #expect(failure.type == "SoftTimeLimitExceeded")
        #expect(execution.runningCount == 0)
    }

    @Test func terminateCancelsARunningTaskAndReportsItRevoked() async throws {
        let execution = execution()
        let started = EventLog<String>()
        let sleepy = task { context in
            started.append("started")
            try await context.sleep(for: .seconds(3600))
            return "not reached"
        }
        let message = TaskMessage(name: "t.body")
        async let outcome = execution.execute(message, task: sleepy, queue: "q", log: log)
        try await started.wait("the body to start") { _ in true }
        #expect(execution.runningIDs == [message.id])
        #expect(execution.active().first?.queue == "q")
        await execution.revoke(message.id, terminate: true)
        guard case .revoked(let reason) = await outcome else { Issue.record("expected revoked"); return }
        #expect(reason == "terminated")
    }

    @Test func aTerminateThatArrivesBeforeTheTaskRegistersIsNotLost() async throws {
        let execution = execution()
        let message = TaskMessage(name: "t.body")
        await execution.revoke(message.id, terminate: true)
        let sleepy = task { context in
            try await context.sleep(for: .seconds(3600))
            return "not reached"
        }
        guard case .revoked(let reason) = await execution.execute(message, task: sleepy, queue: "q", log: log) else {
            Issue.record("expected revoked"); return
        }
        #expect(reason == "terminated")
    }

    @Test func whatTheBodyThrowsBecomesTheOutcome() async throws {
        let execution = execution()
        struct Transient: Error {}
        let auto = TaskOptions(
            maxRetries: 2,
            autoRetry: .init(backoff: .exponential(factor: 2, cap: 60, jitter: false)) { $0 is Transient })
        let flaky = task(auto) { _ in throw Transient() }
        guard
            case .retry(let after, let cause) = await execution.execute(
                TaskMessage(name: "t.body", retries: 1), task: flaky, queue: "q", log: log)
        else {
            Issue.record("expected a retry"); return
        }
        #expect(after == 4)
        #expect(cause?.type == "Transient")
        guard
            case .failure(let last) = await execution.execute(
                TaskMessage(name: "t.body", retries: 2), task: flaky, queue: "q", log: log)
        else {
            Issue.record("expected the last failure"); return
        }
        #expect(last.type == "Transient")

        let asks = task { context in throw context.retry(countdown: .seconds(7)) }
        guard
            case .retry(let seven, _) = await execution.execute(
                TaskMessage(name: "t.body"), task: asks, queue: "q", log: log)
        else {
            Issue.record("expected a retry"); return
        }
        #expect(seven == 7)
        guard
            case .failure(let exhausted) = await execution.execute(
                TaskMessage(name: "t.body", retries: 3), task: asks, queue: "q", log: log)
        else {
            Issue.record("expected MaxRetriesExceededError"); return
        }
        #expect(exhausted.type == "MaxRetriesExceededError")

        let fails = task { _ in throw BuiltinError.valueError("bad") }
        guard
            case .failure(let plain) = await execution.execute(
                TaskMessage(name: "t.body"), task: fails, queue: "q", log: log)
        else {
            Issue.record("expected a failure"); return
        }
        #expect(plain.type == "ValueError")

        let lost = task { _ in
            throw WorkerLost(
                failure: TaskFailure(type: "WorkerLostError", arguments: [], module: "billiard.exceptions"),
                disposition: .ack)
        }
        guard case .workerLost = await execution.execute(TaskMessage(name: "t.body"), task: lost, queue: "q", log: log)
        else {
            Issue.record("expected workerLost"); return
        }
        #expect(execution.processedCount == 0, "counting is the pipeline's call, after the outcome")
    }

    @Test func timeLimitsComeFromTheMessageThenTheControlCommandThenTheTaskThenTheWorker() {
        let execution = execution(timeLimit: 100, softTimeLimit: 90)
        let plain = task { _ in .null }
        let withOptions = task(TaskOptions(softTimeLimit: 30, hardTimeLimit: 40)) { _ in .null }
        #expect(execution.limits(for: TaskMessage(name: "t.body"), task: plain) == .init(hard: 100, soft: 90))
        #expect(execution.limits(for: TaskMessage(name: "t.body"), task: withOptions) == .init(hard: 40, soft: 30))
        execution.setTimeLimit("t.body", .init(hard: 20, soft: 10))
        #expect(execution.limits(for: TaskMessage(name: "t.body"), task: withOptions) == .init(hard: 20, soft: 10))
        let message = TaskMessage(name: "t.body", timeLimit: .init(hard: 5, soft: nil))
        #expect(execution.limits(for: message, task: withOptions) == .init(hard: 5, soft: 10))
    }

    @Test func aLentSlotRunsAnotherTaskAndIsTakenBack() async throws {
        let execution = execution(concurrency: 1)
        #expect(await execution.slots.acquire())
        #expect(!(await execution.hasFreeSlots()))
        let other = await execution.lendingSlot { () -> Bool in
            let got = await execution.slots.acquire()
            await execution.slots.release()
            return got
        }
        #expect(other, "the lent slot served another acquire")
        #expect(await execution.slots.busy == 1, "taken back after the wait")
        await execution.slots.release()
        #expect(await execution.hasFreeSlots())
    }

    @Test func resizingChangesConcurrencyAndSlotsButNeverBelowOne() async {
        let execution = execution(concurrency: 2)
        #expect(await execution.resize(by: 3) == (2, 5))
        #expect(execution.concurrency == 5)
        #expect(await execution.resize(by: -10) == (5, 1))
        #expect(await execution.resize(by: 0) == (1, 1))
    }
}
