import Synchronization

/// Ids of tasks this worker completed, for duplicate detection: bounded (oldest dropped first) and expiring.
///
/// A lock, not an actor: it is touched twice per task, and each call is a dictionary operation; an actor would
/// add a hop (and possibly a thread wake-up) to every task for that.
final class CompletedIDs: Sendable {
    private struct State {
        var entries: [IDKey: ContinuousClock.Instant] = [:]
        var order: [IDKey] = []
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
        let id = IDKey(id)
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
        let id = IDKey(id)
        guard let at = state.withLock({ $0.entries[id] }) else { return false }
        return ContinuousClock.now - at <= ttl
    }

    var count: Int { state.withLock { $0.entries.count } }
}

/// A task id as a dictionary key. Celery and Celeriac ids are lowercase UUIDs: those are packed into 16 bytes
/// (hashed and compared as two integers, no heap string per entry); any other id is kept as its text. The packing
/// is exact: only the canonical lowercase form is packed, so two different strings never share a key.
enum IDKey: Hashable {
    case uuid(UInt64, UInt64)
    case text(String)

    init(_ id: String) {
        self = Self.packed(id) ?? .text(id)
    }

    private static func packed(_ id: String) -> IDKey? {
        guard id.utf8.count == 36 else { return nil }
        // withUTF8 makes the bytes contiguous if they are not (a bridged string), so a given id always packs the
        // same way.
        var id = id
        return id.withUTF8 { b -> IDKey? in
            var high: UInt64 = 0, low: UInt64 = 0, nibbles = 0
            for i in 0..<36 {
                let c = b[i]
                if i == 8 || i == 13 || i == 18 || i == 23 {
                    guard c == UInt8(ascii: "-") else { return nil }
                    continue
                }
                let v: UInt8
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c - UInt8(ascii: "a") + 10
                default: return nil
                }
                if nibbles < 16 { high = high << 4 | UInt64(v) } else { low = low << 4 | UInt64(v) }
                nibbles += 1
            }
            return .uuid(high, low)
        }
    }
}
