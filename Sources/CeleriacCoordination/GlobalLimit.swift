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

    /// Parses the worker's command-line forms: `--global-rate-limit NAME=RATE`, `--global-concurrency NAME=N` and
    /// `--limit-group GROUP=task1,task2`, merged per name.
    public static func parse(rates: [String], concurrency: [String], groups: [String]) throws(CeleriacError)
        -> [GlobalLimit]
    {
        func split(_ text: String, _ flag: String) throws(CeleriacError) -> (String, String) {
            let parts = text.split(separator: "=", maxSplits: 1).map { String($0).trimmingSpaces }
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw .configuration("\(flag) '\(text)' must look like NAME=VALUE")
            }
            return (parts[0], parts[1])
        }
        var members: [String: Set<String>] = [:]
        for g in groups {
            let (name, list) = try split(g, "--limit-group")
            members[name] = Set(list.split(separator: ",").map { String($0).trimmingSpaces }.filter { !$0.isEmpty })
        }
        var order: [String] = []
        var rateOf: [String: String] = [:], countOf: [String: Int] = [:]
        for r in rates {
            let (name, value) = try split(r, "--global-rate-limit")
            if rateOf[name] == nil && countOf[name] == nil { order.append(name) }
            rateOf[name] = value
        }
        for c in concurrency {
            let (name, value) = try split(c, "--global-concurrency")
            guard let n = Int(value) else {
                throw .configuration("--global-concurrency '\(c)': \(value) is not a whole number")
            }
            if rateOf[name] == nil && countOf[name] == nil { order.append(name) }
            countOf[name] = n
        }
        var limits: [GlobalLimit] = []
        for name in order {
            limits.append(
                try GlobalLimit(name: name, tasks: members[name], rate: rateOf[name], concurrency: countOf[name]))
        }
        return limits
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
