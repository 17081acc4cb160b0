import Synchronization

/// An unbounded, single-consumer queue between synchronous producers and one async consumer: what a consumer's
/// deliveries travel through, from the connection thread to the code that handles them.
///
/// It does what `AsyncStream(bufferingPolicy: .unbounded)` does for this use, at a lower cost per element. The
/// stdlib's stream is not specialised across modules: every `yield` and `next` looks up generic metadata and runs
/// an unspecialised deque, which came to about 13 % of a busy worker's CPU (two streams per delivery). This type
/// is `@inlinable`, so each module that uses it gets code specialised for its element type.
///
/// Semantics, as `AsyncStream`'s:
/// - ``yield(_:)`` after ``finish()`` drops the element;
/// - after ``finish()``, elements already queued are still handed out, then `next()` returns nil;
/// - cancelling the task that waits in `next()` finishes the channel (that `next()` returns nil).
///
/// One consumer at a time: a second concurrent `next()` is a programming error (it traps).
public final class UnboundedChannel<Element: Sendable>: Sendable {
    @usableFromInline
    struct State: ~Copyable {
        @usableFromInline var buffer: [Element] = []
        @usableFromInline var head = 0
        @usableFromInline var waiter: UnsafeContinuation<Element?, Never>?
        @usableFromInline var finished = false

        @inlinable init() {}

        /// The oldest queued element, if any.
        @inlinable
        mutating func pop() -> Element? {
            guard head < buffer.count else { return nil }
            let element = buffer[head]
            head += 1
            if head == buffer.count {
                buffer.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 1024, head * 2 >= buffer.count {
                buffer.removeFirst(head)  // amortised: the consumed prefix is at least half the array
                head = 0
            }
            return element
        }
    }

    @usableFromInline let state = Mutex(State())

    /// What a look at the queue found.
    @usableFromInline
    enum Poll {
        case element(Element)
        case end
        case wait
    }

    /// An empty, open channel.
    @inlinable public init() {}

    /// Queues an element, or hands it straight to a waiting consumer. Never blocks. Returns false when the channel
    /// was finished (the element is dropped).
    @inlinable @discardableResult
    public func yield(_ element: Element) -> Bool {
        let (accepted, waiter) = state.withLock { s -> (Bool, UnsafeContinuation<Element?, Never>?) in
            if s.finished { return (false, nil) }
            if let w = s.waiter {
                s.waiter = nil
                return (true, w)
            }
            s.buffer.append(element)
            return (true, nil)
        }
        waiter?.resume(returning: element)
        return accepted
    }

    /// No more elements: a waiting consumer gets nil; queued elements are still handed out first.
    @inlinable
    public func finish() {
        let waiter = state.withLock { s -> UnsafeContinuation<Element?, Never>? in
            s.finished = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// The next element; nil once the channel is finished and drained, or when the waiting task is cancelled.
    @inlinable
    public func next(isolation actor: isolated (any Actor)? = #isolation) async -> Element? {
        // The usual case when busy: an element is queued. Taken without setting up a cancellation handler.
        let now = state.withLock { s -> Poll in
            if let e = s.pop() { return .element(e) }
            return s.finished ? .end : .wait
        }
        switch now {
        case .element(let e): return e
        case .end: return nil
        case .wait: break
        }
        return await withTaskCancellationHandler {
            await withUnsafeContinuation(isolation: actor) { (c: UnsafeContinuation<Element?, Never>) in
                let ready = state.withLock { s -> Poll in
                    if let e = s.pop() { return .element(e) }
                    if s.finished { return .end }
                    precondition(
                        s.waiter == nil, "UnboundedChannel: two tasks wait in next() at once; it has one consumer")
                    s.waiter = c
                    return .wait
                }
                switch ready {
                case .element(let e): c.resume(returning: e)
                case .end: c.resume(returning: nil)
                case .wait: break
                }
            }
        } onCancel: {
            finish()
        }
    }

    /// True while a consumer is suspended in `next()` (tests wait for this state instead of sleeping).
    var hasWaiter: Bool { state.withLock { $0.waiter != nil } }

    /// The consumer's side, for `for await`.
    @inlinable public var stream: Stream { Stream(channel: self) }

    /// The channel's elements as an `AsyncSequence`, for `for await`; like the channel, it has one consumer.
    public struct Stream: AsyncSequence, Sendable {
        /// Iteration never throws.
        public typealias Failure = Never
        @usableFromInline let channel: UnboundedChannel

        @inlinable init(channel: UnboundedChannel) { self.channel = channel }

        /// An iterator over the channel; each ``Iterator/next()`` takes the next element.
        @inlinable public func makeAsyncIterator() -> Iterator { Iterator(channel: channel) }

        /// Takes the channel's elements one at a time; see ``UnboundedChannel/next(isolation:)``.
        public struct Iterator: AsyncIteratorProtocol {
            /// Iteration never throws.
            public typealias Failure = Never
            @usableFromInline let channel: UnboundedChannel

            @inlinable init(channel: UnboundedChannel) { self.channel = channel }

            /// The next element, or nil once the channel is finished and drained.
            @inlinable
            public mutating func next() async -> Element? { await channel.next(isolation: nil) }

            /// The next element, or nil once the channel is finished and drained; waits on `actor`'s executor.
            @inlinable
            public mutating func next(isolation actor: isolated (any Actor)?) async -> Element? {
                await channel.next(isolation: actor)
            }
        }
    }
}
