import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import CeleriacWorker
import Foundation
import Testing

enum TestTasks {
    struct Pair: Codable, Sendable { let x: Int; let y: Int }
    struct Message: Codable, Sendable { let message: String }
    struct Times: Codable, Sendable { let times: Int }
    static let add = TaskName<Pair, Int>("it.add", parameters: "x", "y")
    static let mul = TaskName<Pair, Int>("it.mul", parameters: "x", "y")
    static let fail = TaskName<Message, Int>("it.fail", parameters: "message")
    static let flaky = TaskName<Times, Int>("it.flaky", parameters: "times")
    static let gate = TaskName<NoArguments, String>("it.gate")
    static let slow = TaskName<NoArguments, String>("it.slow")
    static let nap = TaskName<NoArguments, String>("it.nap")
    static let tidy = TaskName<NoArguments, String>("it.tidy")
    static let autoretry = TaskName<Times, Int>("it.autoretry", parameters: "times")
    struct Transient: Error {}
    struct Value: Codable, Sendable { let value: JSONValue }
    static let echo = TaskName<Value, JSONValue>("it.echo", parameters: "value")

    static func registry(gate opener: Gate = Gate()) -> TaskRegistry {
        var r = TaskRegistry()
        r.register(add) { p, _ in p.x + p.y }
        r.register(mul) { p, _ in p.x * p.y }
        r.register(fail) { m, _ in throw BuiltinError.valueError(m.message) }
        r.register(flaky, options: TaskOptions(maxRetries: 10)) { t, ctx in
            if ctx.retries < t.times { throw ctx.retry(countdown: .milliseconds(50)) }
            return ctx.retries
        }
        r.register(TestTasks.gate) { _, _ in
            await opener.wait()
            return "opened"
        }
        r.register(echo) { v, _ in v.value }
        // Fails with a Transient error until its retries reach `times`; retried automatically with backoff.
        r.register(
            autoretry,
            options: TaskOptions(
                maxRetries: 5, autoRetry: .init(backoff: .exponential(factor: 0.05, cap: 0.2)) { $0 is Transient })
        ) { t, ctx in
            if ctx.retries < t.times { throw Transient() }
            return ctx.retries
        }
        r.register(nap) { _, _ in
            try await Task.sleep(for: .seconds(120))
            return "woke up"
        }
        r.register(slow, options: TaskOptions(softTimeLimit: 0.2)) { _, _ in
            try await Task.sleep(for: .seconds(60))
            return "not reached"
        }
        // Catches its soft time limit and cleans up: it ends with a result, not a failure.
        r.register(tidy, options: TaskOptions(softTimeLimit: 0.2)) { _, ctx in
            do {
                try await ctx.sleep(for: .seconds(60))
                return "not reached"
            } catch let soft as SoftTimeLimitExceeded {
                return
                    "tidied after \(soft.limit)s, cancelled: \(Task.isCancelled), reason kept: \(ctx.softTimeLimitExceeded != nil)"
            }
        }
        return r
    }
}

@Suite(.tags(.integration))
struct WorkerRoundTripTests {
    @Test func asyncResultReportsStatesAndTheTraceback() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let client = try await startClient(url: url, queue: queue)
        // No worker yet: both tasks wait in their queue, and nothing is known of them.
        let ok = try await client.send("it.add", args: [1, 2])
        let bad = try await client.send("it.fail", args: ["boom"])
        #expect(await ok.state() == .pending)
        let pending = (ready: await ok.ready(), successful: await ok.successful(), failed: await ok.failed())
        #expect(!pending.ready && !pending.successful && !pending.failed)
        #expect(await ok.traceback() == nil)
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue])
        #expect(try await ok.get(timeout: .seconds(30)) == .int(3))
        #expect(await ok.state() == .success)
        let done = (ready: await ok.ready(), successful: await ok.successful(), failed: await ok.failed())
        #expect(done.ready && done.successful && !done.failed)
        #expect(await ok.traceback() == nil)
        await #expect(throws: CeleriacError.self) { _ = try await bad.get(timeout: .seconds(30)) }
        #expect(await bad.state() == .failure)
        let failed = (ready: await bad.ready(), successful: await bad.successful(), failed: await bad.failed())
        #expect(failed.ready && !failed.successful && failed.failed)
        let traceback = try #require(await bad.traceback())
        #expect(
            traceback.hasPrefix("Traceback (most recent call last):") && traceback.hasSuffix("ValueError: boom"),
            "\(traceback)")
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func clientToWorkerRoundTripWithTypedArguments() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue])
        let client = try await startClient(url: url, queue: queue)
        #expect(try await client.delay(TestTasks.add, .init(x: 2, y: 3)).get(timeout: .seconds(20)) == 5)
        // Positional and keyword forms, as a Python caller sends them.
        #expect(try await client.send("it.add", args: [2, 3]).get(timeout: .seconds(20)) == .int(5))
        #expect(try await client.send("it.add", kwargs: ["x": 2, "y": 3]).get(timeout: .seconds(20)) == .int(5))
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func failuresCarryTypeMessageAndArgumentName() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue])
        let client = try await startClient(url: url, queue: queue)
        await #expect {
            _ = try await client.send("it.fail", args: ["boom"]).get(timeout: .seconds(20))
        } throws: { error in
            guard case .taskFailed(_, _, let f)? = error as? CeleriacError else { return false }
            return f.type == "ValueError" && f.module == "builtins" && f.message == "boom" && f.traceback != nil
        }
        await #expect {
            _ = try await client.send("it.add", args: ["two", 3]).get(timeout: .seconds(20))
        } throws: { error in
            guard case .taskFailed(_, _, let f)? = error as? CeleriacError else { return false }
            return f.type == "TypeError" && f.message.contains("argument 'x' must be an integer")
        }
        await #expect {
            _ = try await client.send("it.add", args: [1]).get(timeout: .seconds(20))
        } throws: { error in
            guard case .taskFailed(_, _, let f)? = error as? CeleriacError else { return false }
            return f.message.contains("missing required argument 'y'")
        }
        // The worker still serves after bad input.
        #expect(try await client.send("it.add", args: [1, 1]).get(timeout: .seconds(20)) == .int(2))
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func retriesAreNewMessagesWithTheRetriesHeaderIncremented() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue])
        let client = try await startClient(url: url, queue: queue)
        // The task returns the retries header it saw on its final run.
        #expect(try await client.delay(TestTasks.flaky, .init(times: 3)).get(timeout: .seconds(30)) == 3)
        // Exhausted retries give a FAILURE naming MaxRetriesExceededError.
        await #expect {
            _ = try await client.delay(TestTasks.flaky, .init(times: 50)).get(timeout: .seconds(30))
        } throws: { error in
            guard case .taskFailed(_, _, let f)? = error as? CeleriacError else { return false }
            return f.type == "MaxRetriesExceededError"
        }
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func declaredErrorsAreRetriedAutomaticallyWithBackoff() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue])
        let client = try await startClient(url: url, queue: queue)
        #expect(try await client.delay(TestTasks.autoretry, .init(times: 3)).get(timeout: .seconds(30)) == 3)
        // Beyond maxRetries the last error is the failure.
        await #expect {
            _ = try await client.delay(TestTasks.autoretry, .init(times: 9)).get(timeout: .seconds(30))
        } throws: { error in
            guard case .taskFailed(_, _, let f)? = error as? CeleriacError else { return false }
            return f.type == "Transient"
        }
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func resultsAwaitedInRandomOrderAllArrive() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue], concurrency: 8)
        let client = try await startClient(url: url, queue: queue)
        var handles: [(Int, TaskHandle<Int>)] = []
        for i in 0..<1000 { handles.append((i, try await client.delay(TestTasks.add, .init(x: i, y: 1)))) }
        handles.shuffle()
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for (i, h) in handles { group.addTask { try await h.get(timeout: .seconds(60)) == i + 1 } }
            var ok = 0
            for try await good in group where good { ok += 1 }
            #expect(ok == 1000)
        }
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func resultTimeoutIsTypedAndNamesTheTask() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()  // nobody consumes it
        let client = try await startClient(url: url, queue: queue)
        let result = try await client.send("it.add", args: [1, 2])
        await #expect {
            _ = try await result.get(timeout: .milliseconds(300))
        } throws: { error in
            guard case .resultTimeout(let id, _)? = error as? CeleriacError else { return false }
            return id == result.id && error.localizedDescription.isEmpty == false
        }
        #expect(await result.state() == .pending)
        await client.close()
        await deleteQueues([queue], url: url)
    }
}
