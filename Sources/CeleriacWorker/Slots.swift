import CeleriacCore
import FoundationEssentials

/// A counting semaphore for the worker's concurrency limit. Waiters are resumed in order.
actor Slots {
    private var free: Int
    private var waiters: [CheckedContinuation<Bool, Never>] = []
    private var head = 0
    private var closed = false
    private(set) var busy = 0

    init(_ count: Int) { free = count }

    /// Takes a slot; returns false (without one) once ``close()`` was called.
    func acquire() async -> Bool {
        if closed { return false }
        if free > 0 {
            free -= 1
            busy += 1
            return true
        }
        let got = await withCheckedContinuation { waiters.append($0) }
        if got { busy += 1 }
        return got
    }

    func release() {
        busy -= 1
        if free < 0 {
            free += 1
        } else if head < waiters.count {
            let c = waiters[head]
            head += 1
            if head > 1024 { waiters.removeFirst(head); head = 0 }
            c.resume(returning: true)
        } else {
            free += 1
        }
    }

    /// Takes back a slot that was lent out with ``release()`` (a sub-second ETA wait): waits for a free one, also
    /// after ``close()`` (warm shutdown lets a task that already started finish).
    func reacquire() async {
        if free > 0 {
            free -= 1
            busy += 1
            return
        }
        if !(await withCheckedContinuation { waiters.append($0) }) {
            free -= 1  // closed while waiting: take it anyway (the release after the task balances it)
        }
        busy += 1
    }

    /// Takes a slot without waiting, even beyond the limit (cold shutdown, or the end of a chord member's part wait:
    /// the caller releases it right away).
    func forceTake() {
        free -= 1
        busy += 1
    }

    /// Changes the number of slots at run time (`pool_grow` / `pool_shrink`). Shrinking below the busy count
    /// lets the running tasks finish; their releases absorb the difference.
    func resize(by delta: Int) {
        free += delta
        while free > 0, head < waiters.count {
            free -= 1
            let c = waiters[head]
            head += 1
            c.resume(returning: true)
        }
    }

    /// Warm shutdown: whoever waits for a slot gets none, so prefetched messages go back at once.
    func close() {
        closed = true
        for c in waiters[head...] { c.resume(returning: false) }
        waiters = []
        head = 0
    }
}
