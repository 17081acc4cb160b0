import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import CeleriacWorker
import Foundation
import Testing

@Suite(.tags(.integration))
struct WorkerBehaviourTests {
    @Test func countdownIsHeldByTheBrokerAndNeverRunsEarly() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue])
        let client = try await startClient(url: url, queue: queue)
        let sent = Date()
        let r = try await client.send("it.add", args: [1, 2], options: SendOptions(countdown: 2))
        #expect(try await r.get(timeout: .seconds(30)) == .int(3))
        let done = try #require(await client.state(of: r.id)?.dateDone)
        // date_done travels with microsecond precision.
        #expect(done.timeIntervalSince(sent) >= 2.0 - 1e-5)
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func anETAMessageWithoutBrokerDelayIsParkedAndAcked() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue])
        let client = try await startClient(url: url, queue: queue)
        // What a plain Celery producer sends: the eta header only, straight to the queue.
        let eta = Date().addingTimeInterval(2.5)
        var message = TaskMessage(name: "it.add", args: [2, 2], eta: eta, replyTo: client.replyQueue)
        message.correlationID = message.id
        let raw = AMQPConnection(url: url, options: .init(name: "it-eta-producer"))
        try await raw.connect()
        try await raw.publish(TaskCodec.encode(message, routingKey: queue))
        await raw.close()
        let value = try await client.result(of: message.id, timeout: .seconds(30))
        #expect(value == .int(4))
        #expect(running.observer.parked.withLock { $0 } == 1)
        let done = try #require(await client.state(of: message.id)?.dateDone)
        #expect(done >= eta)
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func expiredTasksAreRevokedNotRun() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue])
        let client = try await startClient(url: url, queue: queue)
        await #expect {
            _ = try await client.send(
                "it.add", args: [1, 1], options: SendOptions(expires: Date().addingTimeInterval(-5))
            ).get(timeout: .seconds(20))
        } throws: { error in
            if case .taskRevoked(_, let reason)? = error as? CeleriacError { return reason == "expired" }
            return false
        }
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func softTimeLimitCancelsTheTask() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue])
        let client = try await startClient(url: url, queue: queue)
        await #expect {
            _ = try await client.send("it.slow").get(timeout: .seconds(20))
        } throws: { error in
            guard case .taskFailed(_, _, let f)? = error as? CeleriacError else { return false }
            return f.type == "SoftTimeLimitExceeded" && f.module == "billiard.exceptions"
        }
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func aTaskCanCatchItsSoftTimeLimitAndStillReturn() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue])
        let client = try await startClient(url: url, queue: queue)
        let value = try await client.send("it.tidy").get(timeout: .seconds(20))
        #expect(value == .string("tidied after 0.2s, cancelled: true, reason kept: true"))
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func revokedTasksAreNotRunAndRunningOnesCanBeTerminated() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let gate = Gate()
        let running = try await startWorker(TestTasks.registry(gate: gate), url: url, queues: [queue])
        let client = try await startClient(url: url, queue: queue)
        let id = TaskMessage.newID()
        await running.worker.revoke(id)
        await #expect {
            _ = try await client.send("it.add", args: [1, 1], options: SendOptions(taskID: id)).get(
                timeout: .seconds(20))
        } throws: {
            if case .taskRevoked(let rid, "revoked")? = $0 as? CeleriacError { return rid == id }; return false
        }

        // terminate cancels the task's Swift Task: a task that sleeps (or checks cancellation) stops at once.
        let blocked = try await client.send("it.nap")
        _ = try await first(running.observer.started, within: .seconds(20), "the nap task to start") { $0 == "it.nap" }
        await running.worker.revoke(blocked.id, terminate: true)
        await #expect {
            _ = try await blocked.get(timeout: .seconds(20))
        } throws: {
            if case .taskRevoked(_, "terminated")? = $0 as? CeleriacError { return true }; return false
        }
        gate.open()
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func aBusyWorkerDoesNotHoard() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let gate = Gate()
        let busy = try await startWorker(TestTasks.registry(gate: gate), url: url, queues: [queue], concurrency: 1)
        let client = try await startClient(url: url, queue: queue)
        let blocked = try await client.send("it.gate")
        _ = try await first(busy.observer.started, within: .seconds(20), "the gate task to start") { $0 == "it.gate" }
        let idle = try await startWorker(TestTasks.registry(gate: gate), url: url, queues: [queue], concurrency: 1)
        // With prefetch = concurrency the busy worker holds nothing else, so the idle one runs this at once,
        // while the gate task is still running.
        #expect(try await client.send("it.add", args: [5, 5]).get(timeout: .seconds(20)) == .int(10))
        #expect(await blocked.state() == .pending)
        gate.open()
        #expect(try await blocked.get(timeout: .seconds(20)) == .string("opened"))
        await client.close()
        try await busy.stop()
        try await idle.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func warmShutdownFinishesRunningTasksAndReturnsPrefetchedOnes() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let gate = Gate()
        let running = try await startWorker(
            TestTasks.registry(gate: gate), url: url, queues: [queue], concurrency: 1, prefetchMultiplier: 4)
        let client = try await startClient(url: url, queue: queue)
        let blocked = try await client.send("it.gate")
        _ = try await first(running.observer.started, within: .seconds(20), "the gate task to start") {
            $0 == "it.gate"
        }
        for i in 0..<3 { _ = try await client.send("it.add", args: [.int(Int64(i)), 1]) }
        let stopping = Task { try await running.stop() }
        // The prefetched adds go back to the queue at once, while the gate task still runs.
        var returned = 0
        for await _ in running.observer.requeued {
            returned += 1
            if returned == 3 { break }
        }
        let probe = AMQPConnection(url: url, options: .init(name: "it-probe"))
        try await probe.connect()
        #expect(try await probe.inspect(queue: queue).messageCount == 3)
        #expect(await blocked.state() == .pending)
        gate.open()
        try await stopping.value
        #expect(try await blocked.get(timeout: .seconds(20)) == .string("opened"))
        #expect(try await probe.inspect(queue: queue).messageCount == 3)
        await probe.close()
        await client.close()
        await deleteQueues([queue], url: url)
    }
}

@Suite(.tags(.integration))
struct WorkerPriorityTests {
    @Test func higherPriorityRunsFirstOnAPriorityQueue() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        var registry = TaskRegistry()
        let stamp = TaskName<TestTasks.Message, String>("it.stamp", parameters: "message")
        registry.register(stamp) { m, _ in m.message }
        // Enqueue before any worker runs, so the broker orders by priority.
        let client = CeleriacClient(
            configuration: .init(defaultQueue: queue, maxPriority: 10, connectionName: "it-prio"),
            broker: AMQPBroker(url: url))
        try await client.start()
        var order: [AsyncResult] = []
        for (name, priority) in [("low-1", UInt8(1)), ("low-2", 1), ("high", 9), ("low-3", 1)] {
            order.append(
                try await client.send("it.stamp", args: [.string(name)], options: SendOptions(priority: priority)))
        }
        let running = try await startWorker(registry, url: url, queues: [queue], concurrency: 1, maxPriority: 10)
        for r in order { _ = try await r.get(timeout: .seconds(20)) }
        let firstDone = try #require(await client.state(of: order[2].id)?.dateDone)
        for i in [0, 1, 3] {
            let other = try #require(await client.state(of: order[i].id)?.dateDone)
            #expect(firstDone <= other, "the priority-9 task ran after a priority-1 task")
        }
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }
}
