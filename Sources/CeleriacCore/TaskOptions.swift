import FoundationEssentials

/// Per-task behaviour: retries, rate limit, time limits, results.
public struct TaskOptions: Sendable {
    /// Retries allowed through ``TaskContext/retry(countdown:maxRetries:cause:)`` or ``autoRetry``. Celery's default: 3.
    public var maxRetries: Int
    /// Countdown of a retry that names none, in seconds. Celery's default: 180.
    public var defaultRetryDelay: Double
    /// Errors retried automatically with backoff.
    public var autoRetry: AutoRetry?
    /// Per-worker rate limit, e.g. `"100/s"`.
    public var rateLimit: RateLimit?
    /// Soft time limit in seconds: the task is cancelled and sees ``SoftTimeLimitExceeded``.
    public var softTimeLimit: Double?
    /// Hard time limit in seconds (enforced by the process pool; the async pool treats it like a soft limit).
    public var hardTimeLimit: Double?
    /// Send no result.
    public var ignoreResult: Bool
    /// Process pool: when the child running the task dies, requeue the message (Celery's
    /// `reject_on_worker_lost`) instead of reporting `WorkerLostError` and acking it.
    public var rejectOnWorkerLost: Bool = false
    /// Report `STARTED` (with the pid and node name running it) to the caller just before the body runs, as
    /// Celery's `track_started`. The worker's `--track-started` turns it on for every task.
    public var trackStarted: Bool = false

    /// Options with Celery's defaults: 3 retries 180 s apart, no automatic retry, rate limit or time limits, and
    /// results kept.
    public init(
        maxRetries: Int = 3, defaultRetryDelay: Double = 180, autoRetry: AutoRetry? = nil, rateLimit: RateLimit? = nil,
        softTimeLimit: Double? = nil, hardTimeLimit: Double? = nil, ignoreResult: Bool = false,
        trackStarted: Bool = false
    ) {
        self.trackStarted = trackStarted
        self.maxRetries = maxRetries
        self.defaultRetryDelay = defaultRetryDelay
        self.autoRetry = autoRetry
        self.rateLimit = rateLimit
        self.softTimeLimit = softTimeLimit
        self.hardTimeLimit = hardTimeLimit
        self.ignoreResult = ignoreResult
    }

    /// Which errors to retry automatically, and how long to wait.
    public struct AutoRetry: Sendable {
        /// Whether an error thrown by the task is retried automatically; others fail the task.
        public var matches: @Sendable (any Error) -> Bool
        /// The wait before each automatic retry.
        public var backoff: RetryPolicy
        /// Retries errors for which `matches` returns true, waiting as `backoff` says (exponential with jitter by
        /// default).
        public init(backoff: RetryPolicy = .exponential(), matches: @escaping @Sendable (any Error) -> Bool) {
            self.matches = matches
            self.backoff = backoff
        }
    }
}

/// How long to wait before retry number `n` (0-based).
public struct RetryPolicy: Sendable {
    let delay: @Sendable (_ retries: Int) -> Double

    /// A policy that waits `delay(retries)` seconds; a negative result counts as 0.
    public init(delay: @escaping @Sendable (_ retries: Int) -> Double) { self.delay = delay }

    /// Seconds to wait before the retry that follows `retries` earlier ones.
    public func delay(forRetries retries: Int) -> Double { max(0, delay(retries)) }

    /// Celery's autoretry backoff: `min(cap, factor × 2^retries)`, then full jitter (uniform in 0...that).
    public static func exponential(factor: Double = 1, cap: Double = 600, jitter: Bool = true) -> RetryPolicy {
        RetryPolicy { retries in
            let raw = min(cap, factor * Double(sign: .plus, exponent: min(retries, 62), significand: 1))
            return jitter ? Double.random(in: 0...raw) : raw
        }
    }

    /// The same delay every time.
    public static func fixed(_ seconds: Double) -> RetryPolicy { RetryPolicy { _ in seconds } }

    /// No delay.
    public static let immediate = RetryPolicy { _ in 0 }
}

/// A rate as Celery writes it: `"100/s"`, `"10/m"`, `"5/h"`, or a bare number per second.
public struct RateLimit: Sendable, Equatable, CustomStringConvertible {
    /// Tasks per second.
    public let perSecond: Double
    /// The rate as written, e.g. `100/s`.
    public let text: String

    /// Parses `<count>/<unit>` with unit `s`, `m` or `h` (or `sec`, `min`, `hour`, ...); a bare number is per second.
    ///
    /// - Throws: ``CeleriacError/configuration(_:)`` when the count is not a non-negative number or the unit is
    ///   unknown.
    public init(_ text: String) throws(CeleriacError) {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard let count = Double(parts.first.map(String.init) ?? ""), count >= 0 else {
            throw .configuration("rate limit '\(text)' must look like 100/s, 10/m or 5/h")
        }
        let per: Double
        switch parts.count == 2 ? String(parts[1]) : "s" {
        case "s", "sec", "second": per = 1
        case "m", "min", "minute": per = 60
        case "h", "hour": per = 3600
        default: throw .configuration("rate limit '\(text)': unit must be s, m or h")
        }
        perSecond = count / per
        self.text = text
    }

    /// The rate as written.
    public var description: String { text }
}
