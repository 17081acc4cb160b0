/// Publisher-confirm bookkeeping for one channel: which publishes wait for their `basic.ack` / `basic.nack`, and
/// whether the broker has blocked the connection while they wait.
///
/// With confirms on, the broker numbers the publishes of a channel 1, 2, 3… and settles them by that number,
/// singly or with `multiple` (every number up to a tag), in any order. A `basic.return` (an unroutable mandatory
/// message) comes before the ack of that same publish, so it is held until the next ack and fails the acked tag.
///
/// Pure: no C types and no clock reads; ``ConnectionCore`` feeds it the frames and the current instant. The waits
/// are stored as the callbacks given to ``track(_:)`` and called from here: they must not call back into the
/// connection (they resume continuations or settle a ``PublishSettler``).
struct ConfirmTracker {
    typealias Callback = (Result<Void, AMQPError>) -> Void

    /// The number the broker gives to the next publish on this channel.
    private(set) var nextSequence: UInt64 = 1
    /// Every publish below this number is settled.
    private(set) var oldestUnconfirmed: UInt64 = 1
    private var pending: [UInt64: Callback] = [:]
    /// A `basic.return` waiting for the ack of the same publish.
    private var pendingReturn: AMQPError?
    /// Since when the broker blocks this connection (connection.blocked), if it does.
    private(set) var blockedSince: ContinuousClock.Instant?

    /// Publishes waiting for their confirm.
    var waitingCount: Int { pending.count }

    /// The publish just sent gets the next sequence number; `callback` runs once when it is confirmed or failed.
    mutating func track(_ callback: @escaping Callback) {
        pending[nextSequence] = callback
        nextSequence += 1
    }

    /// A new channel (or connection) numbers its publishes from 1 again. The old waits must have been failed.
    mutating func restartNumbering() {
        nextSequence = 1
        oldestUnconfirmed = 1
    }

    /// The broker returned a mandatory publish as unroutable; the ack that follows fails it with `error`.
    mutating func returned(_ error: AMQPError) {
        pendingReturn = error
    }

    /// Settles the publish `tag` (or, with `multiple`, every waiting publish up to `tag`): a nack fails them with
    /// `nackError`, an ack succeeds them, except the acked tag itself fails if it was returned just before.
    mutating func resolve(upTo tag: UInt64, multiple: Bool, nackError: AMQPError?) {
        let returned = pendingReturn
        pendingReturn = nil
        if multiple {
            var seq = oldestUnconfirmed
            while seq <= tag {
                finish(seq, tag: tag, nackError: nackError, returned: returned)
                seq += 1
            }
        } else {
            finish(tag, tag: tag, nackError: nackError, returned: returned)
        }
        while oldestUnconfirmed < nextSequence, pending[oldestUnconfirmed] == nil { oldestUnconfirmed += 1 }
    }

    private mutating func finish(_ seq: UInt64, tag: UInt64, nackError: AMQPError?, returned: AMQPError?) {
        guard let callback = pending.removeValue(forKey: seq) else { return }
        if let nackError {
            callback(.failure(nackError))
        } else if seq == tag, let returned {
            callback(.failure(returned))
        } else {
            callback(.success(()))
        }
    }

    /// Removes every wait (and a held return), oldest first, for the caller to fail: the callbacks run after this
    /// returns, outside any access to the tracker.
    mutating func removeAll() -> [Callback] {
        let waits = pending
        pending = [:]
        pendingReturn = nil
        return waits.keys.sorted().map { waits[$0]! }
    }

    mutating func blocked(at instant: ContinuousClock.Instant) {
        blockedSince = instant
    }

    mutating func unblocked() {
        blockedSince = nil
    }

    /// True when publishes wait for confirms and the broker has blocked the connection for `timeout` or longer.
    /// `now` is evaluated only then, so the run loop does not read the clock on every turn.
    func blockedTooLong(now: @autoclosure () -> ContinuousClock.Instant, timeout: Duration) -> Bool {
        guard let since = blockedSince, !pending.isEmpty else { return false }
        return now() - since >= timeout
    }
}
