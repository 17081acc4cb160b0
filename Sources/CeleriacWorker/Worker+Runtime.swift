import CeleriacBroker
import CeleriacMessaging
import CeleriacCore
import FoundationEssentials
import Logging

/// Changes a running worker: concurrency (`pool_grow` / `pool_shrink`) and the queues it consumes
/// (`add_consumer` / `cancel_consumer`), as Celery's remote control and Flower ask for them.
extension Worker {
    /// Prefetch per consumer now: concurrency now × prefetch multiplier.
    var prefetchNow: Int { concurrencyNowCounter.load(ordering: .relaxed) * configuration.prefetchMultiplier }

    /// Declares a work queue, its exchange and binding (Celery's flags).
    func declareWorkQueue(_ queue: String) async throws(BrokerError) {
        let (exchange, spec, binding) = Topology.workQueue(queue, maxPriority: configuration.maxPriority, type: configuration.queueType)
        try await publisherConnection.declare(exchange)
        try await publisherConnection.declare(spec)
        try await publisherConnection.bind(binding)
    }

    /// Grows or shrinks concurrency by `delta` (never below 1) and returns the new value. The executor follows
    /// (a process pool starts or retires children; running tasks are never interrupted) and the consumers are
    /// re-subscribed with the new prefetch.
    public func resizePool(by delta: Int) async -> Int {
        let before = concurrencyNowCounter.load(ordering: .relaxed)
        let after = max(1, before + delta)
        let change = after - before
        guard change != 0 else { return before }
        concurrencyNowCounter.store(after, ordering: .relaxed)
        await slots.resize(by: change)
        _ = executor.resize(by: change, to: after)
        // Prefetch is fixed per consumer: re-subscribe (forward(queue:) does it) so the broker sends the new amount.
        for consumer in consumers.withLock({ Array($0.values) }) { try? await consumerConnection.cancel(consumer) }
        logger.info("concurrency changed", metadata: ["from": .stringConvertible(before), "to": .stringConvertible(after)])
        return after
    }

    /// Starts consuming `queue` (declaring it as Celery would). Returns false if it was consumed already.
    public func addConsumer(_ queue: String) async throws(CeleriacError) -> Bool {
        guard let (sink, forwarders) = intake.withLock({ $0 }), !stopping.load(ordering: .relaxed) else {
            throw .configuration("the worker is not consuming (starting or stopping); try again")
        }
        if consumers.withLock({ $0[queue] != nil }) { return false }
        do {
            try await declareWorkQueue(queue)
            try await DelayTopology.declare(on: publisherConnection, queues: [queue], type: configuration.queueType)
            let consumer = try await consumerConnection.consume(queue: queue, prefetch: UInt16(clamping: prefetchNow),
                                                                tag: "\(configuration.hostname)-\(queue)")
            consumers.withLock { $0[queue] = consumer }
        } catch let error as BrokerError {
            throw .broker(operation: "add consumer for '\(queue)'", underlying: error.description)
        } catch {
            throw .broker(operation: "add consumer for '\(queue)'", underlying: String(describing: error))
        }
        queuesNow.withLock { if !$0.contains(queue) { $0.append(queue) } }
        await forwarders.add()
        Task {
            await self.forward(queue: queue, into: sink)
            await forwarders.done()
        }
        logger.info("consuming another queue", metadata: ["queue": .string(queue)])
        return true
    }

    /// Stops consuming `queue`; unacknowledged deliveries of it still finish. The last queue cannot be
    /// cancelled (use `shutdown`).
    public func cancelConsumer(_ queue: String) async throws(CeleriacError) -> Bool {
        let consumer = consumers.withLock { c -> Consumer? in
            guard c.count > 1 else { return nil }
            return c.removeValue(forKey: queue)
        }
        guard let consumer else {
            if consumers.withLock({ $0[queue] == nil }) { return false }
            throw .configuration("'\(queue)' is the worker's last queue; stop the worker with `control shutdown` instead")
        }
        queuesNow.withLock { $0.removeAll { $0 == queue } }
        try? await consumerConnection.cancel(consumer)
        logger.info("stopped consuming a queue", metadata: ["queue": .string(queue)])
        return true
    }
}
