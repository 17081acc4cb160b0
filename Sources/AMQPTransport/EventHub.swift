import Synchronization

/// Fans connection events out to any number of listeners and remembers the current state (connected, blocked),
/// so async callers can wait for a state with a deadline.
final class EventHub: Sendable {
    private struct State {
        var listeners: [Int: AsyncStream<ConnectionEvent>.Continuation] = [:]
        var nextID = 0
        var connected = false
        var blocked = false
        var closed = false
        var generation: UInt64 = 0
        var stateWaiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }
    private let state = Mutex(State())

    func stream() -> AsyncStream<ConnectionEvent> {
        let (stream, continuation) = AsyncStream<ConnectionEvent>.makeStream(bufferingPolicy: .bufferingNewest(64))
        let finishedAlready = state.withLock { s -> Bool in
            if s.closed { return true }
            let id = s.nextID
            s.nextID += 1
            s.listeners[id] = continuation
            continuation.onTermination = { [weak self] _ in
                _ = self?.state.withLock { $0.listeners.removeValue(forKey: id) }
            }
            return false
        }
        if finishedAlready {
            continuation.yield(.closed)
            continuation.finish()
        }
        return stream
    }

    func emit(_ event: ConnectionEvent) {
        let (listeners, waiters) = state.withLock {
            s -> ([AsyncStream<ConnectionEvent>.Continuation], [CheckedContinuation<Void, Never>]) in
            switch event {
            case .connected(let g): s.connected = true; s.generation = g
            case .disconnected: s.connected = false
            case .blocked: s.blocked = true
            case .unblocked: s.blocked = false
            case .closed: s.connected = false; s.closed = true; s.blocked = false
            case .consumerCancelled: break
            }
            let waiters = Array(s.stateWaiters.values)
            s.stateWaiters = [:]
            return (Array(s.listeners.values), waiters)
        }
        for l in listeners {
            l.yield(event)
            if event == .closed { l.finish() }
        }
        for w in waiters { w.resume() }
    }

    var isConnected: Bool { state.withLock { $0.connected } }
    var isBlocked: Bool { state.withLock { $0.blocked } }
    var isClosed: Bool { state.withLock { $0.closed } }

    /// Waits until `predicate` holds for the state, or the deadline passes. Returns whether it holds.
    func wait(
        until deadline: ContinuousClock.Instant,
        _ predicate: @escaping @Sendable (_ connected: Bool, _ blocked: Bool, _ closed: Bool) -> Bool
    ) async -> Bool {
        while true {
            let (ok, closed) = state.withLock { s in (predicate(s.connected, s.blocked, s.closed), s.closed) }
            if ok { return true }
            if closed || ContinuousClock.now >= deadline || Task.isCancelled { return false }
            // Wait for the next state change or the deadline, whichever comes first.
            await withTaskGroup(of: Void.self) { group in
                let id = state.withLock { s -> Int in
                    let id = s.nextID
                    s.nextID += 1
                    return id
                }
                group.addTask {
                    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                        let resumeNow = self.state.withLock { s -> Bool in
                            if predicate(s.connected, s.blocked, s.closed) || s.closed { return true }
                            s.stateWaiters[id] = c
                            return false
                        }
                        if resumeNow { c.resume() }
                    }
                }
                group.addTask {
                    try? await Task.sleep(until: deadline, clock: .continuous)
                    let c = self.state.withLock { $0.stateWaiters.removeValue(forKey: id) }
                    c?.resume()
                }
                await group.next()
                group.cancelAll()
                let c = self.state.withLock { $0.stateWaiters.removeValue(forKey: id) }
                c?.resume()
            }
        }
    }
}
