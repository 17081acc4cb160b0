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
        let dueNow = try await client.send("it.add", args: [2, 2])
        #expect(try await dueNow.get(timeout: .seconds(30)) == .int(4))
        #expect(try await dueLater.get(timeout: .seconds(30)) == .int(2))
        let nowDone = try #require(await client.state(of: dueNow.id)?.dateDone)
        let laterDone = try #require(await client.state(of: dueLater.id)?.dateDone)
        // With the slot held through the wait, the task due now could only finish after the ETA.
        #expect(nowDone < eta, "due-now finished at \(nowDone), ETA was \(eta)")
        #expect(laterDone >= eta, "never early: finished at \(laterDone), ETA \(eta)")
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }
}
