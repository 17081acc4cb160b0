import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import CeleriacWorker
import Foundation
import Synchronization
import Testing

/// Adaptive prefetch on RabbitMQ: the re-subscription it makes, end to end through the AMQP transport.
@Suite(.tags(.integration))
struct AdaptivePrefetchTests {
    /// Records every prefetch the worker reports and every redelivered task.
    final class PrefetchRecorder: WorkerObserver {
        let prefetches = Mutex<[Int]>([])
        let redelivered = Mutex(0)
        func prefetchChanged(_ prefetch: Int) { prefetches.withLock { $0.append(prefetch) } }
        func taskRedelivered(name: String, queue: String) { redelivered.withLock { $0 += 1 } }
    }

    /// A worker with adaptive prefetch deepens its prefetch while it runs quick tasks: it cancels its consumer and
    /// subscribes again through the AMQP transport, every task runs once, and none comes back redelivered. (Whether
    /// the broker delivers into the cancel's round trip is up to timing; the broker contract's cancel case pins
    /// that the transport keeps such deliveries.) The worker's clock is a manual one that never moves, so every
    /// completion comes at the same instant: the fastest pace, whatever the machine's load.
    @Test func aQuickWorkerDeepensItsPrefetchAndNoDeliveryComesBackRedelivered() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let recorder = PrefetchRecorder()
        // The tasks wait in the queue first (the client declares it): the re-subscription happens mid-drain.
        let client = try await startClient(url: url, queue: queue)
        let count = 300
        for i in 0..<count {
            _ = try await client.send("it.add", args: [.int(Int64(i)), 1], options: SendOptions(ignoreResult: true))
        }
        let running = try await startWorker(
            TestTasks.registry(), url: url, queues: [queue], concurrency: 2, observers: [recorder],
            adaptivePrefetch: .init(maxMultiplier: 16), clock: ManualClock())
        var finished = 0
        for await (name, outcome) in running.observer.finished where name == "it.add" {
            #expect(outcome == .succeeded)
            finished += 1
            if finished == count { break }
        }
        // 2 slots at the start; 32 (2 × 16) after the 32 completions that fill the governor's window.
        let prefetches = recorder.prefetches.withLock { $0 }
        #expect(prefetches.first == 2)
        #expect(prefetches.contains(32), "prefetches reported: \(prefetches)")
        #expect(running.worker.processedCount == count)
        #expect(recorder.redelivered.withLock { $0 } == 0)
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }
}
