import Testing

@testable import AMQPTransport

/// Reconnecting: the brokers in order, a base delay between them, and a capped, jittered backoff per full pass.
@Suite struct FailoverCursorTests {
    /// Always the same bits: 0 gives the smallest jitter (½), `.max` the largest (1).
    struct FixedRandom: RandomNumberGenerator {
        let value: UInt64
        mutating func next() -> UInt64 { value }
    }

    /// SplitMix64: a seeded source of varied bits.
    struct SeededRandom: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let t0 = ContinuousClock.now
    static let base = Duration.milliseconds(100)
    static let cap = Duration.seconds(1)

    static func cursor<R: RandomNumberGenerator>(_ list: String, random: R) throws -> FailoverCursor<R> {
        FailoverCursor(urls: try AMQPURL(list).failoverOrder, base: base, cap: cap, now: t0, random: random)
    }

    static let three = "amqp://h1;amqp://h2;amqp://h3"

    @Test func failedAttemptsWalkTheBrokersInOrderAndWrapAround() throws {
        var c = try Self.cursor(Self.three, random: FixedRandom(value: .max))
        var seen = [c.current.host]
        for _ in 0..<4 {
            c.failed(now: Self.t0)
            seen.append(c.current.host)
        }
        #expect(seen == ["h1", "h2", "h3", "h1", "h2"])
    }

    @Test func theBackoffGrowsOnlyAfterAFullPassFailed() throws {
        var c = try Self.cursor(Self.three, random: FixedRandom(value: .max))
        var waits: [Duration] = []
        var attempts: [Int] = []
        for _ in 0..<6 {
            c.failed(now: Self.t0)
            waits.append(c.wait(now: Self.t0))
            attempts.append(c.attempt)
        }
        // Within a pass: one base delay to the next broker. At the end of each pass: the next backoff step.
        #expect(
            waits == [
                .milliseconds(100), .milliseconds(100), .milliseconds(100),
                .milliseconds(100), .milliseconds(100), .milliseconds(200),
            ])
        #expect(attempts == [0, 0, 1, 1, 1, 2])
        #expect(c.failuresThisPass == 0)
    }

    @Test func withOneBrokerEveryFailureIsABackoffStepUpToTheCap() throws {
        var c = try Self.cursor("amqp://h1", random: FixedRandom(value: .max))
        var waits: [Duration] = []
        for _ in 0..<7 {
            c.failed(now: Self.t0)
            waits.append(c.wait(now: Self.t0))
        }
        #expect(waits == [100, 200, 400, 800, 1000, 1000, 1000].map { Duration.milliseconds($0) })
        #expect(c.current.host == "h1")
    }

    @Test func theCapHoldsLongAfterTheExponentWouldOverflow() throws {
        var c = try Self.cursor("amqp://h1", random: FixedRandom(value: .max))
        for _ in 0..<200 { c.failed(now: Self.t0) }
        #expect(c.attempt == 200)
        #expect(c.wait(now: Self.t0) == Self.cap)
    }

    @Test func theSmallestJitterHalvesTheDelay() throws {
        var c = try Self.cursor("amqp://h1", random: FixedRandom(value: 0))
        var waits: [Duration] = []
        for _ in 0..<6 {
            c.failed(now: Self.t0)
            waits.append(c.wait(now: Self.t0))
        }
        #expect(waits == [50, 100, 200, 400, 500, 500].map { Duration.milliseconds($0) })
    }

    @Test func jitteredDelaysStayBetweenHalfAndAllOfTheCappedStep() throws {
        var c = try Self.cursor("amqp://h1", random: SeededRandom(state: 42))
        var waits: [Duration] = []
        for step in 1...12 {
            c.failed(now: Self.t0)
            let full = min(Self.cap, Self.base * (1 << (step - 1)))
            let wait = c.wait(now: Self.t0)
            #expect(wait >= full / 2 && wait <= full, "step \(step): \(wait) not in \(full / 2)...\(full)")
            waits.append(wait)
        }
        // The jitter varies: at the cap, the steps are not all the same.
        #expect(Set(waits.suffix(8)).count > 1)
    }

    @Test func theSameSeedGivesTheSameDelays() throws {
        func delays() throws -> [Duration] {
            var c = try Self.cursor("amqp://h1", random: SeededRandom(state: 7))
            return (0..<5).map { _ in
                c.failed(now: Self.t0); return c.wait(now: Self.t0)
            }
        }
        #expect(try delays() == delays())
    }

    @Test func aLostConnectionRetriesTheSameBrokerWithinTheFirstStep() throws {
        var c = try Self.cursor(Self.three, random: FixedRandom(value: .max))
        for _ in 0..<7 { c.failed(now: Self.t0) }
        #expect(c.current.host == "h2" && c.attempt == 2)
        c.connected()
        let later = Self.t0 + .seconds(60)
        c.lost(now: later)
        #expect(c.current.host == "h2")
        #expect(c.attempt == 1)
        #expect(c.nextAttemptAt == later + Self.base)
    }

    @Test func connectingStartsANewPass() throws {
        var c = try Self.cursor(Self.three, random: FixedRandom(value: .max))
        c.failed(now: Self.t0)
        c.failed(now: Self.t0)
        #expect(c.failuresThisPass == 2)
        c.connected()
        #expect(c.failuresThisPass == 0 && c.attempt == 0)
        // Two more failures are not a full pass yet: no backoff step.
        c.failed(now: Self.t0)
        c.failed(now: Self.t0)
        #expect(c.attempt == 0 && c.wait(now: Self.t0) == Self.base)
    }

    @Test func theNextAttemptIsDueOnceItsInstantIsReached() throws {
        var c = try Self.cursor("amqp://h1", random: FixedRandom(value: .max))
        c.failed(now: Self.t0)
        #expect(c.wait(now: Self.t0 + .milliseconds(99)) > .zero)
        #expect(c.wait(now: Self.t0 + .milliseconds(100)) <= .zero)
    }

    @Test func selectPointsAtABrokerOfTheList() throws {
        var c = try Self.cursor(Self.three, random: FixedRandom(value: .max))
        c.select(2)
        #expect(c.current.host == "h3")
        c.failed(now: Self.t0)
        #expect(c.current.host == "h1")
    }
}
