/// Which broker to try next, and when: the URL and its alternates in order, with a capped exponential backoff.
///
/// After a failed attempt the next broker of the list is tried one base delay later; the backoff grows only after
/// a full pass over the list has failed. The delay of step n is `min(cap, base · 2ⁿ⁻¹)` times a jitter between ½
/// and 1, so a fleet of workers does not reconnect in step.
///
/// Pure: it never reads the clock (every method takes `now`) and draws the jitter from the injected `Random`, so
/// tests are deterministic. ``ConnectionCore`` uses ``SystemRandomNumberGenerator``.
struct FailoverCursor<Random: RandomNumberGenerator> {
    /// The brokers to try, in order (a URL's ``AMQPURL/failoverOrder``). Never empty.
    let urls: [AMQPURL]
    let base: Duration
    let cap: Duration
    private var random: Random

    /// The broker in use or being tried.
    private(set) var index = 0
    /// Failed attempts since the last full pass over ``urls``.
    private(set) var failuresThisPass = 0
    /// Backoff steps taken since the last successful connect.
    private(set) var attempt = 0
    /// The earliest instant for the next attempt.
    private(set) var nextAttemptAt: ContinuousClock.Instant

    init(urls: [AMQPURL], base: Duration, cap: Duration, now: ContinuousClock.Instant, random: Random) {
        precondition(!urls.isEmpty, "a connection needs at least one broker URL")
        self.urls = urls
        self.base = base
        self.cap = cap
        self.random = random
        self.nextAttemptAt = now
    }

    var current: AMQPURL { urls[index] }

    /// Points at `urls[index]` (the first connect tries each broker once, in order).
    mutating func select(_ index: Int) {
        precondition(urls.indices.contains(index))
        self.index = index
    }

    /// Connected: the next loss starts the backoff from its first step again.
    mutating func connected() {
        attempt = 0
        failuresThisPass = 0
    }

    /// The connection was lost: retry the same broker within the first backoff step.
    mutating func lost(now: ContinuousClock.Instant) {
        attempt = 0
        backOff(now: now)
    }

    /// An attempt failed: move to the next broker of the list soon, and back off only after a full pass.
    mutating func failed(now: ContinuousClock.Instant) {
        guard urls.count > 1 else { return backOff(now: now) }
        index = (index + 1) % urls.count
        failuresThisPass += 1
        if failuresThisPass < urls.count {
            nextAttemptAt = now + base
        } else {
            failuresThisPass = 0
            backOff(now: now)
        }
    }

    /// How long until the next attempt is due; zero or less when it is due now.
    func wait(now: ContinuousClock.Instant) -> Duration { nextAttemptAt - now }

    private mutating func backOff(now: ContinuousClock.Instant) {
        attempt += 1
        let uncapped = base.seconds * pow2(min(attempt - 1, 20))
        let capped = min(cap.seconds, uncapped)
        let delay = capped * jitter()
        nextAttemptAt = now + .milliseconds(Int(delay * 1000))
    }

    /// A factor in 0.5...1.0 (both ends included), from 53 random bits.
    private mutating func jitter() -> Double {
        let unit = Double(random.next() >> 11) / Double(((1 as UInt64) << 53) - 1)
        return 0.5 + 0.5 * unit
    }

    private func pow2(_ n: Int) -> Double { Double((1 as UInt64) << UInt64(n)) }
}

extension Duration {
    fileprivate var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
