import CeleriacBroker

/// Takes tokens (messages) from one queue for local waiters, through a consumer that runs only while someone waits.
///
/// A consumer left running would hold tokens no task here needs, so it is started by the first waiter and
/// cancelled once nobody waits; a token that arrives for nobody goes straight back to the queue. What a waiter
/// gets is the token's delivery tag: a rate token is acked at once (spent), a permit is held unacked while the task
/// runs and rejected with requeue afterwards, and if the connection dies the broker requeues it by itself.
actor TokenPool {
    let queue: String
    let connection: any BrokerConnection
    let prefetch: UInt16
    private var waiters: [(id: UInt64, continuation: CheckedContinuation<DeliveryTag, any Error>)] = []
    private var nextID: UInt64 = 0
    private var consumer: Consumer?
    private var starting = false
    private var closed = false

    init(queue: String, connection: any BrokerConnection, prefetch: Int) {
        self.queue = queue
        self.connection = connection
        self.prefetch = UInt16(clamping: max(1, prefetch))
    }

    /// Waits for a token. Throws `CancellationError` when the calling task is cancelled or the pool closed.
    func take() async throws -> DeliveryTag {
        let id = nextID
        nextID += 1
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<DeliveryTag, any Error>) in
                if closed || Task.isCancelled {
                    c.resume(throwing: CancellationError())
                    return
                }
                waiters.append((id, c))
                ensureConsuming()
            }
        } onCancel: {
            // The handler is synchronous; the waiter is removed on the actor.
            Task { await self.cancelWaiter(id) }
        }
    }

    var waiting: Int { waiters.count }

    func close() {
        closed = true
        for w in waiters { w.continuation.resume(throwing: CancellationError()) }
        waiters = []
        stopConsumer()
    }

    private func cancelWaiter(_ id: UInt64) {
        guard let i = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: i).continuation.resume(throwing: CancellationError())
        if waiters.isEmpty { stopConsumer() }
    }

    private func ensureConsuming() {
        guard consumer == nil, !starting, !closed else { return }
        starting = true
        // Unstructured because it outlives the waiter that started it; it ends with the consumer's stream.
        Task { await self.startConsumer() }
    }

    private func startConsumer() async {
        do throws(BrokerError) {
            let c = try await connection.consume(queue: queue, prefetch: prefetch)
            starting = false
            consumer = c
            Task {
                for await delivery in c.deliveries { await self.arrived(delivery) }
            }
            if waiters.isEmpty { stopConsumer() }
        } catch {
            starting = false
            // The broker is away (the transport reconnects) or the queue is missing: try again while someone waits.
            try? await Task.sleep(for: .milliseconds(500))
            if !waiters.isEmpty { ensureConsuming() }
        }
    }

    private func arrived(_ delivery: Delivery) async {
        if !waiters.isEmpty {
            let w = waiters.removeFirst()
            w.continuation.resume(returning: delivery.tag)
            if waiters.isEmpty { stopConsumer() }
            return
        }
        await connection.reject(delivery.tag, requeue: true)
        stopConsumer()
    }

    private func stopConsumer() {
        guard let c = consumer else { return }
        consumer = nil
        let connection = self.connection
        // basic.cancel ends the stream; tokens already delivered on it still pass through arrived(_:).
        Task { try? await connection.cancel(c) }
    }
}
