/// Which delivery tags of one channel are settled, so that acks queued together leave as one `basic.ack` with
/// `multiple` set instead of one frame each (fewer frames for the broker and fewer system calls here).
///
/// A `multiple` ack at tag T acknowledges every outstanding tag ≤ T, so it is sent only for tags below which
/// every tag is settled: acked, nacked, rejected, or delivered to a no-ack consumer. An ack above a tag still
/// outstanding (a long task) goes out on its own.
struct AckTracker {
    /// Every tag ≤ floor is settled.
    private(set) var floor: UInt64 = 0
    /// Settled tags above the floor.
    private var settledAbove: Set<UInt64> = []
    /// Acks asked for and not sent yet.
    private var pending: [UInt64] = []

    var hasPending: Bool { !pending.isEmpty }

    /// A new channel or connection: tags start again at 1.
    mutating func reset() {
        floor = 0
        settledAbove = []
        pending = []
    }

    /// A tag settled without this tracker sending anything (no-ack delivery, nack, reject, single ack sent now).
    mutating func settled(_ tag: UInt64) {
        guard tag > floor else { return }
        settledAbove.insert(tag)
        advance()
    }

    /// Every tag ≤ `tag` settled (a `multiple` ack or nack sent by the caller).
    mutating func settled(upTo tag: UInt64) {
        guard tag > floor else { return }
        floor = tag
        settledAbove = settledAbove.filter { $0 > tag }
        advance()
    }

    mutating func queueAck(_ tag: UInt64) { pending.append(tag) }

    /// The acks to send now: one `multiple` ack covering the queued acks that sit in the settled run from the
    /// floor down, and single acks for the others. Afterwards every queued ack counts as settled.
    mutating func flush() -> (multipleUpTo: UInt64?, singles: [UInt64]) {
        guard !pending.isEmpty else { return (nil, []) }
        for tag in pending where tag > floor { settledAbove.insert(tag) }
        advance()
        var covered: UInt64?
        var singles: [UInt64] = []
        for tag in pending {
            if tag <= floor { covered = max(covered ?? 0, tag) } else { singles.append(tag) }
        }
        pending.removeAll(keepingCapacity: true)
        return (covered, singles)
    }

    private mutating func advance() {
        while settledAbove.remove(floor + 1) != nil { floor += 1 }
    }
}
