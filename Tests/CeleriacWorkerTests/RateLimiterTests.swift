import CeleriacTesting
import Testing

@testable import CeleriacWorker

/// The per-worker token bucket on a manual clock.
@Suite struct RateLimiterTests {
    @Test func theFirstRunIsFreeAndTheNextWaitsOneInterval() async {
        let clock = ManualClock()
        let limiter = RateLimiter(clock: clock)
        await limiter.set("t", perSecond: 2)
        #expect(await limiter.reserve("t").wait == .zero)
        let (wait, until) = await limiter.reserve("t")
        #expect(wait == .milliseconds(500))
        #expect(until == .milliseconds(500))
    }

    @Test func tokensRefillWithTheClockUpToOneBurst() async {
        let clock = ManualClock()
        let limiter = RateLimiter(clock: clock)
        await limiter.set("t", perSecond: 1)
        _ = await limiter.reserve("t")
        await clock.advance(by: .seconds(10))
        // A rate of 1/s holds at most one token: after a long idle spell, one run is free, the next waits.
        #expect(await limiter.reserve("t").wait == .zero)
        #expect(await limiter.reserve("t").wait == .seconds(1))
    }

    @Test func anUnlimitedOrRemovedTaskNeverWaits() async {
        let clock = ManualClock()
        let limiter = RateLimiter(clock: clock)
        for _ in 0..<5 { #expect(await limiter.reserve("free").wait == .zero) }
        await limiter.set("t", perSecond: 1)
        _ = await limiter.reserve("t")
        await limiter.set("t", perSecond: nil)
        #expect(await limiter.reserve("t").wait == .zero)
        #expect(await limiter.limit(of: "t") == nil)
    }

    @Test func waitsAccumulateForABacklog() async {
        let clock = ManualClock()
        let limiter = RateLimiter(clock: clock)
        await limiter.set("t", perSecond: 10)
        var waits: [Duration] = []
        for _ in 0..<4 { waits.append(await limiter.reserve("t").wait) }
        #expect(waits == [.zero, .milliseconds(100), .milliseconds(200), .milliseconds(300)])
    }
}
