import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import CeleriacWorker
import Foundation
import Testing

@Suite(.tags(.integration))
struct WorkerCallbackTests {
    func signature(_ task: String, _ args: [JSONValue], id: String, immutable: Bool = false) -> JSONValue {
        [
            "task": .string(task), "args": .array(args), "kwargs": [:], "options": ["task_id": .string(id)],
            "subtask_type": nil, "immutable": .bool(immutable),
        ]
    }

    @Test func linkCallbacksGetTheResultPrepended() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue])
        let client = try await startClient(url: url, queue: queue)
        let callbackID = TaskMessage.newID()
        var options = SendOptions()
        options.link = [signature("it.add", [10], id: callbackID)]
        #expect(try await client.send("it.add", args: [2, 3], options: options).get(timeout: .seconds(20)) == .int(5))
        #expect(try await client.result(of: callbackID, timeout: .seconds(20)) == .int(15))
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func errbacksGetTheFailedTaskID() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue])
        let client = try await startClient(url: url, queue: queue)
        let errbackID = TaskMessage.newID()
        var options = SendOptions()
        options.linkError = [signature("it.echo", [], id: errbackID)]
        let failed = try await client.send("it.fail", args: ["nope"], options: options)
        _ = try? await failed.get(timeout: .seconds(20))
        #expect(try await client.result(of: errbackID, timeout: .seconds(20)) == .string(failed.id))
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func chainStepsRunInOrderWithThePreviousResult() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue])
        let client = try await startClient(url: url, queue: queue)
        let second = TaskMessage.newID(), third = TaskMessage.newID()
        var options = SendOptions()
        // Celery carries the rest of a chain reversed: the next step is last.
        options.chain = [signature("it.add", [100], id: third), signature("it.add", [10], id: second)]
        _ = try await client.send("it.add", args: [1, 2], options: options)
        #expect(try await client.result(of: second, timeout: .seconds(20)) == .int(13))
        #expect(try await client.result(of: third, timeout: .seconds(20)) == .int(113))
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func rateLimitSpacesRunsPerWorker() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        var registry = TaskRegistry()
        let limited = TaskName<NoArguments, Double>("it.limited")
        registry.register(limited, options: TaskOptions(rateLimit: try RateLimit("5/s"))) { _, _ in
            Date().timeIntervalSince1970
        }
        let running = try await startWorker(registry, url: url, queues: [queue], concurrency: 8)
        let client = try await startClient(url: url, queue: queue)
        var handles: [AsyncResult] = []
        for _ in 0..<11 { handles.append(try await client.send("it.limited")) }
        var times: [Double] = []
        for h in handles { times.append(try await h.get(timeout: .seconds(30)).doubleValue ?? 0) }
        times.sort()
        // A bucket of 5/s holds at most 5 tokens (a burst of 5, as in Celery); the other 6 runs need >= 1.2 s.
        #expect(times.last! - times.first! >= 1.15)
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }
}
