#if canImport(Glibc)
    import Glibc
#endif

/// An `AMQPConnection` is also a `TaskExecutor`: code that mostly talks to one connection can run on that
/// connection's own thread and pay no thread hop per call.
///
/// Every call into a connection is a job on its thread. Called from the cooperative pool, a publish and the
/// wait for its reply each cross threads twice (caller to connection thread and back); on a 2-core machine each
/// crossing is a wake-up of a sleeping thread, tens of microseconds. With the connection as the task's executor
/// preference, the caller's code, the librabbitmq call and the resumption all happen on one thread, as in a
/// plain C client:
///
/// ```swift
/// try await withTaskExecutorPreference(connection) {
///     try await connection.publish(request)
///     let reply = await replies.next()      // resumed on the connection thread, no wake-up
/// }
/// ```
///
/// Only short, non-blocking code belongs there: while a job runs, the connection reads no frames and answers no
/// heartbeats. Jobs enqueued after the connection was closed run on the global concurrent executor instead, so a
/// task is never stranded.
extension AMQPConnection: TaskExecutor {
    /// True when called on this connection's own thread (like swift-nio's `EventLoop.inEventLoop`).
    public var isOnConnectionThread: Bool {
        inbox.owner.load(ordering: .acquiring) == UInt(bitPattern: Int(bitPattern: pthread_self()))
    }

    /// Runs `job` on the connection's thread after the jobs already queued there; once the connection is closed, on the
    /// global concurrent executor instead.
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        let accepted = inbox.submit(
            ConnectionJob(
                run: { _ in job.runSynchronously(on: executor) },
                fail: { _ in globalConcurrentExecutor.enqueue(ExecutorJob(job)) }))
        if !accepted { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
    }
}
