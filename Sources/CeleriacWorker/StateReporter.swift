import CeleriacBroker
import CeleriacCore
import CeleriacMessaging
import Synchronization

/// Publishes one run's intermediate states to its caller's reply queue, as Celery's `update_state` does over
/// `rpc://`: transient result-shaped messages (`{task_id, status, result: meta, traceback, children, date_done}`) with
/// the task's correlation id. They go out on the publishing connection, in order, before the task's final result
/// (which is published on the same connection after ``close()``), so a state never arrives after the result.
///
/// At most one state per ``interval``: a state that comes sooner waits for the interval's end and is replaced by
/// any later one meanwhile (the latest wins), so a task that reports in a tight loop costs the broker ten messages
/// a second, not thousands.
final class StateReporter: Sendable {
    static let interval: Duration = .milliseconds(100)

    private struct State {
        var closed = false
        var lastSent: Duration?
        var pending: (TaskState, JSONValue)?
        var flusher: Task<Void, Never>?
    }

    private let message: TaskMessage
    private let replyTo: String
    private let publisher: any MessagePublishing
    private let clock: any CeleriacClock
    private let state = Mutex(State())

    /// A reporter for `message`, or nil when nobody waits for its states (no reply queue, or the result is ignored).
    init?(message: TaskMessage, ignoreResult: Bool, publisher: any MessagePublishing, clock: any CeleriacClock) {
        guard let replyTo = message.replyTo, !replyTo.isEmpty, !ignoreResult else { return nil }
        self.message = message
        self.replyTo = replyTo
        self.publisher = publisher
        self.clock = clock
    }

    /// The sink a ``TaskContext`` reports through.
    var sink: TaskStateSink { TaskStateSink { [self] state, meta in report(state, meta) } }

    func report(_ taskState: TaskState, _ meta: JSONValue) {
        state.withLock { s in
            guard !s.closed else { return }
            let now = clock.uptime
            if s.flusher == nil, s.lastSent.map({ now - $0 >= Self.interval }) ?? true {
                // Inside the lock: publishing in the background only queues the message, and the order holds.
                send(taskState, meta)
                s.lastSent = now
                return
            }
            s.pending = (taskState, meta)
            guard s.flusher == nil else { return }
            let due = (s.lastSent ?? now) + Self.interval
            s.flusher = Task { [self] in
                try? await clock.sleep(until: due)
                flush()
            }
        }
    }

    private func flush() {
        state.withLock { s in
            s.flusher = nil
            guard !s.closed, let (taskState, meta) = s.pending else { return }
            s.pending = nil
            send(taskState, meta)
            s.lastSent = clock.uptime
        }
    }

    /// The run ended: a state still waiting is dropped (the final result supersedes it) and later ones are ignored.
    func close() {
        let flusher = state.withLock { s -> Task<Void, Never>? in
            s.closed = true
            s.pending = nil
            defer { s.flusher = nil }
            return s.flusher
        }
        flusher?.cancel()
    }

    private func send(_ taskState: TaskState, _ meta: JSONValue) {
        let result = ResultMessage.state(message.id, taskState, meta: meta, for: message)
        publisher.publishInBackground(
            ResultCodec.encode(
                result, replyTo: replyTo, correlationID: message.correlationID ?? message.id, persistent: false))
    }
}
