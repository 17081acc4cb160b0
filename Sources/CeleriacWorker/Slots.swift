import CeleriacCore
import FoundationEssentials

/// A counting semaphore for the worker's concurrency limit. Waiters are resumed in order.
actor Slots {
    private var free: Int
    private var waiters: [CheckedContinuation<Bool, Never>] = []
    private var head = 0
    private var closed = false
    private(set) var busy = 0

    init(_ count: Int) { free = count }

    /// Takes a slot; returns false (without one) once ``close()`` was called.
    func acquire() async -> Bool {
        if closed { return false }
        if free > 0 {
            free -= 1
            busy += 1
            return true
        }
        let got = await withCheckedContinuation { waiters.append($0) }
        if got { busy += 1 }
        return got
    }

    func release() {
        busy -= 1
        if free < 0 {
            free += 1
        } else if head < waiters.count {
            let c = waiters[head]
            head += 1
            if head > 1024 { waiters.removeFirst(head); head = 0 }
            c.resume(returning: true)
        } else {
            free += 1
        }
    }

    /// Takes back a slot that was lent out with ``release()`` (a sub-second ETA wait): waits for a free one, also
    /// after ``close()`` (warm shutdown lets a task that already started finish).
    func reacquire() async {
        if free > 0 {
            free -= 1
            busy += 1
            return
        }
        if !(await withCheckedContinuation { waiters.append($0) }) {
            free -= 1   // closed while waiting: take it anyway (the release after the task balances it)
        }
        busy += 1
    }

    /// Takes a slot without waiting, even beyond the limit (cold shutdown, or the end of a chord member's part wait:
    /// the caller releases it right away).
    func forceTake() {
        free -= 1
        busy += 1
    }

    /// Changes the number of slots at run time (`pool_grow` / `pool_shrink`). Shrinking below the busy count
    /// lets the running tasks finish; their releases absorb the difference.
    func resize(by delta: Int) {
        free += delta
        while free > 0, head < waiters.count {
            free -= 1
            let c = waiters[head]
            head += 1
            c.resume(returning: true)
        }
    }

    /// Warm shutdown: whoever waits for a slot gets none, so prefetched messages go back at once.
    func close() {
        closed = true
        for c in waiters[head...] { c.resume(returning: false) }
        waiters = []
        head = 0
    }
}

/// A token bucket per task name for `rate_limit` ("100/s"), changeable at run time.
actor RateLimiter {
    private struct Bucket { var rate: Double; var tokens: Double; var last: Duration }
    private var buckets: [String: Bucket] = [:]
    private let clock: any CeleriacClock

    init(clock: any CeleriacClock) {
        self.clock = clock
    }

    func set(_ name: String, perSecond: Double?) {
        if let perSecond {
            buckets[name] = Bucket(rate: perSecond, tokens: 1, last: clock.uptime)
        } else {
            buckets[name] = nil
        }
    }

    /// How long the caller must wait before running one `name` task (zero when a token is free), and until when
    /// on the clock's monotonic time. Takes the token.
    func reserve(_ name: String) -> (wait: Duration, until: Duration) {
        guard var b = buckets[name], b.rate > 0 else { return (.zero, .zero) }
        let now = clock.uptime
        let elapsed = now - b.last
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        b.tokens = min(max(1, b.rate), b.tokens + seconds * b.rate)
        b.last = now
        b.tokens -= 1
        buckets[name] = b
        if b.tokens >= 0 { return (.zero, now) }
        let wait = Duration.milliseconds(Int((-b.tokens / b.rate) * 1000))
        return (wait, now + wait)
    }

    func limit(of name: String) -> Double? { buckets[name]?.rate }
}

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
