import Synchronization

/// Ids of tasks this worker completed, for duplicate detection: bounded (oldest dropped first) and expiring.
///
/// A lock, not an actor: it is touched twice per task, and each call is a dictionary operation; an actor would
/// add a hop (and possibly a thread wake-up) to every task for that.
final class CompletedIDs: Sendable {
    private struct State {
        var entries: [String: ContinuousClock.Instant] = [:]
        var order: [String] = []
        var head = 0
    }
    private let state = Mutex(State())
    let capacity: Int
    let ttl: Duration

    init(capacity: Int, ttl: Duration) {
        self.capacity = max(1, capacity)
        self.ttl = ttl
    }

    func insert(_ id: String) {
        let now = ContinuousClock.now
        state.withLock { s in
            if s.entries.updateValue(now, forKey: id) == nil { s.order.append(id) }
            while s.entries.count > capacity, s.head < s.order.count {
                s.entries.removeValue(forKey: s.order[s.head])
                s.head += 1
            }
            if s.head > 4096 {
                s.order.removeFirst(s.head)
                s.head = 0
            }
        }
    }

    func contains(_ id: String) -> Bool {
        guard let at = state.withLock({ $0.entries[id] }) else { return false }
        return ContinuousClock.now - at <= ttl
    }

    var count: Int { state.withLock { $0.entries.count } }
}
