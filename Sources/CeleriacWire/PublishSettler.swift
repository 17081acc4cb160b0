import Synchronization

/// Ends a publish wait by whichever comes first: the broker's confirm, or ``settle()`` from someone who has proof
/// that the broker took the message (for a task: its reply already arrived, so the broker delivered it). Used once
/// per publish attempt.
public final class PublishSettler: Sendable {
    private struct State {
        var outcome: Result<Void, BrokerError>?
        var waiter: (@Sendable (Result<Void, BrokerError>) -> Void)?
    }
    private let state = Mutex(State())

    /// A settler with nothing settled yet; create one per publish attempt.
    public init() {}

    /// The message is known to have reached the broker: the publish succeeds without waiting for its confirm.
    public func settle() { settle(.success(())) }

    package func settle(_ outcome: Result<Void, BrokerError>) {
        let waiter = state.withLock { s -> (@Sendable (Result<Void, BrokerError>) -> Void)? in
            guard s.outcome == nil else { return nil }
            s.outcome = outcome
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?(outcome)
    }

    package func wait(_ waiter: @escaping @Sendable (Result<Void, BrokerError>) -> Void) {
        let known = state.withLock { s -> Result<Void, BrokerError>? in
            if let outcome = s.outcome { return outcome }
            s.waiter = waiter
            return nil
        }
        if let known { waiter(known) }
    }
}
