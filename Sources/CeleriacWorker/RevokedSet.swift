import FoundationEssentials

/// Revoked task ids: bounded (oldest dropped first) and expiring, as Celery keeps them (50 000 ids, 3 h).
actor RevokedSet {
    private var entries: [String: ContinuousClock.Instant] = [:]
    private var order: [String] = []
    let capacity: Int
    let ttl: Duration

    init(capacity: Int = 50_000, ttl: Duration = .seconds(3 * 3600)) {
        self.capacity = capacity
        self.ttl = ttl
    }

    func insert(_ id: String) {
        if entries[id] == nil { order.append(id) }
        entries[id] = .now
        while entries.count > capacity, !order.isEmpty { entries.removeValue(forKey: order.removeFirst()) }
    }

    /// Inserts an id revoked at a wall-clock time (from the revocation log); false if it is already too old or known.
    @discardableResult
    func insert(_ id: String, revokedAt: Double) -> Bool {
        let age = max(0, Date().timeIntervalSince1970 - revokedAt)
        guard age < Double(ttl.components.seconds), entries[id] == nil else { return false }
        order.append(id)
        entries[id] = .now - .milliseconds(Int(age * 1000))
        while entries.count > capacity, !order.isEmpty { entries.removeValue(forKey: order.removeFirst()) }
        return true
    }

    func contains(_ id: String) -> Bool {
        guard let at = entries[id] else { return false }
        if ContinuousClock.now - at > ttl {
            entries.removeValue(forKey: id)
            return false
        }
        return true
    }

    var all: [String] { Array(entries.keys) }
}
