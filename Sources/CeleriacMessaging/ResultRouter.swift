import CeleriacCore

/// Routes results arriving on a client's one reply queue to any number of waiters, by task id, in any order.
///
/// Celery's own rpc backend loses or mixes up results when several are awaited at once (celery#3141, #3111,
/// #2529, #6912); here every result is kept (bounded, oldest ready results evicted first) until asked for, every
/// waiter has a deadline, and intermediate states (STARTED, RETRY) are remembered for ``AsyncResult/state()``.
actor ResultRouter {
    private var latest: [String: ResultMessage] = [:]
    private var order: [String] = []
    private var orderHead = 0
    private var waiters: [String: [Int: CheckedContinuation<ResultMessage?, Never>]] = [:]
    /// Callers following a task's states (``AsyncResult/updates()``).
    private var subscribers: [String: [Int: AsyncStream<ResultMessage>.Continuation]] = [:]
    private var nextToken = 0
    /// Final results that arrived for a task whose final result had already arrived: the task ran again
    /// (at-least-once: its worker died or lost the broker before acking). Counted while the first is cached.
    private(set) var repeatedResults = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func deliver(_ result: ResultMessage) {
        if latest[result.taskID] == nil { order.append(result.taskID) }
        // A late intermediate state never replaces a final one.
        if let known = latest[result.taskID], known.status.isReady {
            if result.status.isReady { repeatedResults += 1 }
            return
        }
        latest[result.taskID] = result
        if result.status.isReady, let waiting = waiters.removeValue(forKey: result.taskID) {
            for c in waiting.values { c.resume(returning: result) }
        }
        if let watching = subscribers[result.taskID] {
            for c in watching.values { c.yield(result) }
            if result.status.isReady {
                subscribers[result.taskID] = nil
                for c in watching.values { c.finish() }
            }
        }
        evict()
    }

    /// Every state of task `id` from now on, starting with the latest one known (if any); ends after a final one.
    func updates(of id: String) -> AsyncStream<ResultMessage> {
        let (stream, continuation) = AsyncStream<ResultMessage>.makeStream(bufferingPolicy: .unbounded)
        if let known = latest[id] {
            continuation.yield(known)
            if known.status.isReady {
                continuation.finish()
                return stream
            }
        }
        let token = nextToken
        nextToken += 1
        subscribers[id, default: [:]][token] = continuation
        continuation.onTermination = { [weak self] _ in
            Task { await self?.unsubscribe(id, token) }
        }
        return stream
    }

    private func unsubscribe(_ id: String, _ token: Int) {
        subscribers[id]?.removeValue(forKey: token)
        if subscribers[id]?.isEmpty == true { subscribers.removeValue(forKey: id) }
    }

    /// Drops the oldest cached results beyond `capacity`. A result someone waits for (a RETRY state, say) stays
    /// and goes to the back; one pass at most, so when every cached task is awaited the cache stays over capacity
    /// (bounded by the waiters, each of which has a deadline) instead of cycling forever.
    private func evict() {
        var pass = order.count - orderHead
        while latest.count > capacity, pass > 0 {
            pass -= 1
            let id = order[orderHead]
            orderHead += 1
            if waiters[id] == nil && subscribers[id] == nil { latest.removeValue(forKey: id) } else { order.append(id) }
        }
        if orderHead > 4096 && orderHead * 2 > order.count {
            order.removeFirst(orderHead)
            orderHead = 0
        }
    }

    func state(of id: String) -> ResultMessage? { latest[id] }

    /// Waits for a ready (SUCCESS/FAILURE/REVOKED) result. Returns nil at the deadline.
    func waitReady(_ id: String, timeout: Duration) async -> ResultMessage? {
        if let r = latest[id], r.status.isReady { return r }
        let token = nextToken
        nextToken += 1
        // The timer is a separate task on purpose: it must fire even though this actor call is suspended.
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            await self?.expire(id, token)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { c in
            waiters[id, default: [:]][token] = c
        }
    }

    private func expire(_ id: String, _ token: Int) {
        guard let c = waiters[id]?.removeValue(forKey: token) else { return }
        if waiters[id]?.isEmpty == true { waiters.removeValue(forKey: id) }
        c.resume(returning: nil)
    }

    var pendingWaiters: Int { waiters.values.reduce(0) { $0 + $1.count } }
    var cachedResults: Int { latest.count }
}
