import Foundation
import Synchronization
import Testing

struct TimedOut: Error, CustomStringConvertible {
    let what: String
    let after: Duration
    var description: String { "waited \(after) for \(what)" }
}

/// Runs `body` and fails with ``TimedOut`` if it has not finished after `timeout`. This is a deadline on an event,
/// not a sleep used for synchronisation: the body returns as soon as what it waits for happens.
func within<T: Sendable>(_ timeout: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T)
    async throws -> T
{
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw TimedOut(what: what, after: timeout) }
        return value
    }
}

/// The first element of `stream` that satisfies `predicate`, within `timeout`.
func first<S: AsyncSequence & Sendable>(
    _ stream: S, within timeout: Duration, _ what: String, where predicate: @escaping @Sendable (S.Element) -> Bool
) async throws -> S.Element where S.Element: Sendable {
    try await within(timeout, what) {
        for try await element in stream where predicate(element) { return element }
        throw TimedOut(what: "\(what) (the stream ended first)", after: timeout)
    }
}

/// How `task` ended, or nil if it had not ended after `timeout`. Unlike ``within(_:_:_:)`` this does not wait for
/// the task itself, so an operation that ignores cancellation (a regression that hangs) makes the test fail at the
/// deadline instead of hanging it.
func outcome<T: Sendable>(of task: Task<T, any Error>, within timeout: Duration) async -> Result<T, any Error>? {
    let waiter = Mutex<CheckedContinuation<Result<T, any Error>?, Never>?>(nil)
    let finish: @Sendable (Result<T, any Error>?) -> Void = { value in
        waiter.withLock { c in
            c?.resume(returning: value)
            c = nil
        }
    }
    return await withCheckedContinuation { c in
        waiter.withLock { $0 = c }
        Task { finish(await task.result) }
        Task {
            try? await Task.sleep(for: timeout)
            finish(nil)
        }
    }
}
