import CeleriacCore

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
