/// Ids of tasks this worker completed, for duplicate detection: bounded (oldest dropped first) and expiring.
actor CompletedIDs {
    private var entries: [String: ContinuousClock.Instant] = [:]
    private var order: [String] = []
    private var head = 0
    let capacity: Int
    let ttl: Duration

    init(capacity: Int, ttl: Duration) {
        self.capacity = max(1, capacity)
        self.ttl = ttl
    }

    func insert(_ id: String) {
        if entries[id] == nil { order.append(id) }
        entries[id] = .now
        while entries.count > capacity, head < order.count {
            entries.removeValue(forKey: order[head])
            head += 1
        }
        if head > 4096 {
            order.removeFirst(head)
            head = 0
        }
    }

    func contains(_ id: String) -> Bool {
        guard let at = entries[id] else { return false }
        return ContinuousClock.now - at <= ttl
    }

    var count: Int { entries.count }
}
