import CeleriacCore

/// A limit shared by every worker of a broker: a rate (tokens refilled by one elected worker) and/or a concurrency
/// (N permits held while a task runs), for one task name or a named group of tasks.
///
/// ```swift
/// var config = Worker.Configuration()
/// config.globalLimits = [
///     try GlobalLimit(name: "demo.add", rate: "100/s"),                       // one task
///     try GlobalLimit(name: "gpu", tasks: ["render", "encode"], concurrency: 2),  // a group
/// ]
/// ```
/// Every worker that runs these tasks must configure the same limits (the broker refuses a token queue declared
/// with another burst, and the permit count is fixed when the permit queue is first seeded).
public struct GlobalLimit: Sendable, Equatable {
    /// The limit's name: a task name, or a group name. Names the broker queues.
    public var name: String
    /// Tasks it applies to (just `name` when not a group).
    public var tasks: Set<String>
    /// At most this many starts across all workers (`100/s`, `10/m`); nil for no rate limit.
    public var rate: RateLimit?
    /// At most this many tokens wait in the token queue (the burst after a quiet spell). Default: 1/10 s of tokens.
    public var burst: Int
    /// At most this many tasks running at once across all workers; nil for no concurrency limit.
    public var concurrency: Int?

    /// A limit named `name` on `tasks` (default: the task `name` itself), with a `rate` like `100/s` and/or a
    /// `concurrency` of at least 1.
    ///
    /// - Throws: `CeleriacError.configuration(_:)` for an empty name, a malformed or zero rate, or a concurrency
    ///   below 1.
    public init(
        name: String, tasks: Set<String>? = nil, rate: String? = nil, burst: Int? = nil, concurrency: Int? = nil
    ) throws(CeleriacError) {
        guard !name.isEmpty else { throw .configuration("a global limit needs a name (a task name or a group name)") }
        self.name = name
        self.tasks = tasks ?? [name]
        if let rate { self.rate = try RateLimit(rate) } else { self.rate = nil }
        if let r = self.rate, r.perSecond <= 0 {
            throw .configuration("global rate limit '\(name)=\(r.text)' must be above zero")
        }
        self.burst = max(1, burst ?? Int(((self.rate?.perSecond ?? 10) / 10).rounded(.down)))
        if let concurrency, concurrency < 1 {
            throw .configuration("global concurrency '\(name)=\(concurrency)' must be at least 1")
        }
        self.concurrency = concurrency
    }
}
