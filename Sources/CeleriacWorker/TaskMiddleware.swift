import CeleriacCore

/// One decoded task on its way through a worker, as ``TaskMiddleware`` sees it.
public struct TaskRun: Sendable {
    /// The task message (id, name, arguments, canvas, headers).
    public let message: TaskMessage
    /// The queue it was consumed from.
    public let queue: String
    /// The broker delivered it before and it was not acked then (a worker died or requeued it).
    public let redelivered: Bool

    /// A run of `message` consumed from `queue`.
    public init(message: TaskMessage, queue: String, redelivered: Bool = false) {
        self.message = message
        self.queue = queue
        self.redelivered = redelivered
    }
}

/// Code that runs around every task a worker handles, as swift-jobs' `JobMiddleware` or Sidekiq's server
/// middleware: metrics, Celery events, tracing and workflow-graph records are middleware, and an application adds
/// its own with ``Worker/Configuration/middleware``.
///
/// Order of calls for one task: ``handle(_:next:)`` wraps all of it; inside, ``received(_:)`` once the message is
/// decoded, ``started(_:)`` just before the body runs (after ETA, rate limit and global-limit waits; not for a
/// task that is revoked, expired or unknown), and ``finished(_:outcome:seconds:)`` once the outcome is decided and
/// before anything about it is published (so a counter is up before the caller can see the result). Every method
/// has a default that does nothing. A middleware must not throw or block: it sees the task, it does not decide it.
public protocol TaskMiddleware: Sendable {
    /// Wraps everything the worker does with one decoded task, from ``received(_:)`` to its ack. Call `next`
    /// exactly once (a tracing span, a task-local value).
    func handle(_ run: TaskRun, next: () async -> Void) async
    /// The message was decoded as a task.
    func received(_ run: TaskRun) async
    /// The task's body is about to run.
    func started(_ run: TaskRun) async
    /// How the task ended; `seconds` is the body's run time (0 when it did not run).
    func finished(_ run: TaskRun, outcome: TaskOutcome, seconds: Double) async
}

extension TaskMiddleware {
    /// Calls `next` and nothing else.
    public func handle(_ run: TaskRun, next: () async -> Void) async { await next() }
    /// Does nothing.
    public func received(_ run: TaskRun) async {}
    /// Does nothing.
    public func started(_ run: TaskRun) async {}
    /// Does nothing.
    public func finished(_ run: TaskRun, outcome: TaskOutcome, seconds: Double) async {}
}

/// A worker's middleware in order: the first one's ``TaskMiddleware/handle(_:next:)`` is outermost, and hooks are
/// called first to last.
struct MiddlewareChain: Sendable {
    let middleware: [any TaskMiddleware]

    init(_ middleware: [any TaskMiddleware]) { self.middleware = middleware }

    func handle(_ run: TaskRun, _ body: () async -> Void) async { await handle(run, from: 0, body) }

    private func handle(_ run: TaskRun, from index: Int, _ body: () async -> Void) async {
        guard index < middleware.count else { return await body() }
        await middleware[index].handle(run) { await handle(run, from: index + 1, body) }
    }

    func received(_ run: TaskRun) async { for m in middleware { await m.received(run) } }
    func started(_ run: TaskRun) async { for m in middleware { await m.started(run) } }
    func finished(_ run: TaskRun, outcome: TaskOutcome, seconds: Double) async {
        for m in middleware { await m.finished(run, outcome: outcome, seconds: seconds) }
    }
}
