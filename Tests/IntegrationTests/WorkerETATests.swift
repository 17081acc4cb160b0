import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import Foundation
import Testing

/// The last sub-second of an ETA is waited in the worker without holding a concurrency slot.
@Suite(.tags(.integration))
struct WorkerETATests {
    @Test func aTaskDueSoonDoesNotBlockATaskDueNow() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("eta-slot")
        // One slot; prefetch 4, so the task due now is delivered while the other waits for its ETA.
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue], concurrency: 1, prefetchMultiplier: 4)
        let client = try await startClient(url: url, queue: queue)
        var later = SendOptions()
        let eta = Date().addingTimeInterval(0.95)   // < 1 s: published straight to the queue, waited in the worker
        later.eta = eta
        let dueLater = try await client.send("it.add", args: [1, 1], options: later)
        let dueNow = try await client.send("it.mul", args: [2, 2])
        // Order, not timing: with the slot held through the wait, the task due now could only start after the
        // other one had run.
        let firstStarted = try await first(running.observer.started, within: .seconds(30), "a task to start") { _ in true }
        #expect(firstStarted == "it.mul", "the task due now started first")
        #expect(try await dueNow.get(timeout: .seconds(30)) == .int(4))
        #expect(try await dueLater.get(timeout: .seconds(30)) == .int(2))
        let laterDone = try #require(await client.state(of: dueLater.id)?.dateDone)
        #expect(laterDone >= eta, "never early: finished at \(laterDone), ETA \(eta)")
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }
}
