/// What the coordination features report; `CeleriacMetrics.WorkerMetrics` turns it into metrics. Every method has a
/// no-op default.
public protocol CoordinationObserver: Sendable {
    /// A task waited for a global rate token (`kind` rate) or a global concurrency permit (`kind` concurrency).
    func globalLimitWaited(task: String, limit: String, kind: String, seconds: Double)
    /// A delivery whose task id this worker already completed was skipped.
    func duplicateSkipped(task: String, queue: String)
    /// This worker became (or stopped being) the token refiller of a global rate limit.
    func refillerLeadership(limit: String, leader: Bool)
    /// Messages in the dead-letter queue now (probed periodically).
    func deadLetterDepth(_ count: Int)
}

extension CoordinationObserver {
    /// Default: does nothing.
    public func globalLimitWaited(task: String, limit: String, kind: String, seconds: Double) {}
    /// Default: does nothing.
    public func duplicateSkipped(task: String, queue: String) {}
    /// Default: does nothing.
    public func refillerLeadership(limit: String, leader: Bool) {}
    /// Default: does nothing.
    public func deadLetterDepth(_ count: Int) {}
}
