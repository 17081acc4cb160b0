import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import CeleriacWorker
import Synchronization
import Testing

/// The tasks the worker tests run on the in-memory broker.
enum Tasks {
    struct Pair: Codable, Sendable { let x: Int; let y: Int }
    struct Times: Codable, Sendable { let times: Int }
    struct Message: Codable, Sendable { let message: String }
    static let add = TaskName<Pair, Int>("t.add", parameters: "x", "y")
    static let mul = TaskName<Pair, Int>("t.mul", parameters: "x", "y")
    static let xsum = TaskName<[Int], Int>("t.xsum")
    static let fail = TaskName<Message, Int>("t.fail", parameters: "message")
    static let flaky = TaskName<Times, Int>("t.flaky", parameters: "times")
    static let autoretry = TaskName<Times, Int>("t.autoretry", parameters: "times")
    static let gate = TaskName<NoArguments, String>("t.gate")
    static let nap = TaskName<NoArguments, String>("t.nap")
    static let tidy = TaskName<NoArguments, String>("t.tidy")
    static let limited = TaskName<NoArguments, Int>("t.limited")
    static let sleepy = TaskName<NoArguments, String>("t.sleepy")
    static let retryDefault = TaskName<NoArguments, Int>("t.retry_default")
    struct Transient: Error {}

    /// `gate` waits for the test to open it; `runs` counts every run of every task by name.
    static func registry(gate: Gate = Gate(), runs: Counter = Counter()) -> TaskRegistry {
        var r = TaskRegistry()
        r.register(add) { p, ctx in
            runs.add(ctx.name); return p.x + p.y
        }
        r.register(mul) { p, ctx in
            runs.add(ctx.name); return p.x * p.y
        }
        r.register(xsum) { xs, ctx in
            runs.add(ctx.name); return xs.reduce(0, +)
        }
        r.register(fail) { m, ctx in
            runs.add(ctx.name); throw BuiltinError.valueError(m.message)
        }
        r.register(flaky, options: TaskOptions(maxRetries: 3)) { t, ctx in
            runs.add(ctx.name)
            if ctx.retries < t.times { throw ctx.retry(countdown: .seconds(10)) }
            return ctx.retries
        }
        r.register(
            autoretry,
            options: TaskOptions(
                maxRetries: 5,
                autoRetry: .init(backoff: .exponential(factor: 2, cap: 8, jitter: false)) { $0 is Transient })
        ) { t, ctx in
            runs.add(ctx.name)
            if ctx.retries < t.times { throw Transient() }
            return ctx.retries
        }
        r.register(Tasks.gate) { _, ctx in
            runs.add(ctx.name)
            await gate.wait()
            return "opened"
        }
        r.register(nap, options: TaskOptions(softTimeLimit: 5)) { _, ctx in
            runs.add(ctx.name)
            try await ctx.sleep(for: .seconds(60))
            return "not reached"
        }
        r.register(tidy, options: TaskOptions(softTimeLimit: 5)) { _, ctx in
            runs.add(ctx.name)
            do {
                try await ctx.sleep(for: .seconds(60))
                return "not reached"
            } catch let soft as SoftTimeLimitExceeded {
                return "tidied after \(soft.limit)s"
            }
        }
        r.register(limited, options: TaskOptions(rateLimit: try! RateLimit("1/s"))) { _, ctx in
            runs.add(ctx.name)
            return runs.count(ctx.name)
        }
        // No time limit of its own: the worker's, a message's or a control command's applies.
        r.register(sleepy) { _, ctx in
            runs.add(ctx.name)
            try await ctx.sleep(for: .seconds(3600))
            return "not reached"
        }
        // Retries once with no countdown: the task's default delay (Celery's 180 s) applies.
        r.register(retryDefault) { _, ctx in
            runs.add(ctx.name)
            if ctx.retries == 0 { throw ctx.retry() }
            return ctx.retries
        }
        return r
    }
}

/// Counts runs by task name (a run counts when its body starts), and lets a test wait for the n-th.
final class Counter: Sendable {
    let log = EventLog<String>()
    func add(_ name: String) { log.append(name) }
    func count(_ name: String) -> Int { log.items.filter { $0 == name }.count }
    /// Waits until `name`'s body has started `count` times.
    func waitForRun(_ name: String, count: Int = 1) async throws {
        try await log.wait(for: count, "run \(count) of \(name)") { $0 == name }
    }
}

/// Everything that happened, in order, and waits for the n-th event that matches (many waits on one log).
final class EventLog<Event: Sendable>: Sendable {
    private struct Waiter {
        let count: Int
        let match: @Sendable (Event) -> Bool
        let continuation: CheckedContinuation<Void, Never>
    }
    private let state = Mutex<(items: [Event], waiters: [UInt64: Waiter], next: UInt64)>(([], [:], 0))

    var items: [Event] { state.withLock { $0.items } }

    func append(_ event: Event) {
        let due = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.items.append(event)
            let items = s.items
            let ready = s.waiters.filter { items.filter($0.value.match).count >= $0.value.count }
            for key in ready.keys { s.waiters[key] = nil }
            return ready.values.map(\.continuation)
        }
        due.forEach { $0.resume() }
    }

    /// Waits until `count` events match, at most `limit` of real time.
    func wait(
        for count: Int = 1, within limit: Duration = .seconds(10), _ what: String,
        where match: @escaping @Sendable (Event) -> Bool
    ) async throws {
        let id = state.withLock { s -> UInt64 in
            s.next += 1
            return s.next
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let now = self.state.withLock { s -> Bool in
                        if s.items.filter(match).count >= count { return true }
                        s.waiters[id] = Waiter(count: count, match: match, continuation: c)
                        return false
                    }
                    if now { c.resume() }
                }
            }
            group.addTask { try? await Task.sleep(for: limit) }
            _ = await group.next()
            group.cancelAll()
            let left = self.state.withLock { $0.waiters.removeValue(forKey: id) }
            left?.continuation.resume()
        }
        let seen = items.filter(match).count
        guard seen >= count else {
            throw WaitTimeout(description: "waited \(limit) for \(what): saw \(seen) of \(count)")
        }
    }
}

/// What the worker reported, as logs a test waits on.
final class Recorder: WorkerObserver {
    /// (task name, outcome) for every finished task.
    let finished = EventLog<(String, TaskFinishedOutcome)>()
    let started = EventLog<String>()
    let deadLetters = EventLog<String>()
    let chords = EventLog<String>()
    let requeued = EventLog<String>()
    let parked = EventLog<String>()
    /// Ready (true) and not ready (false), as the worker announced them.
    let readiness = EventLog<Bool>()
    func stateChanged(ready: Bool) { readiness.append(ready) }

    func taskFinished(name: String, queue: String, outcome: TaskFinishedOutcome, seconds: Double) {
        finished.append((name, outcome))
    }
    func taskStarted(name: String, queue: String) { started.append(name) }
    func messageDeadLettered(queue: String, reason: String) { deadLetters.append(reason) }
    func taskParked(name: String, queue: String) { parked.append(name) }
    func chordEvent(_ event: String) { chords.append(event) }
    func messageRequeued(queue: String) { requeued.append(queue) }
}

/// Waits for the first element of `stream` that `match` accepts, at most `limit` of real time.
func first<S: AsyncSequence & Sendable>(
    _ stream: S, within limit: Duration = .seconds(10), _ what: String,
    where match: @escaping @Sendable (S.Element) -> Bool
) async throws -> S.Element
where S.Element: Sendable {
    try await withThrowingTaskGroup(of: S.Element?.self) { group in
        group.addTask {
            for try await element in stream where match(element) { return element }
            return nil
        }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let found = try await group.next() ?? nil else {
            throw WaitTimeout(description: "waited \(limit) for \(what)")
        }
        return found
    }
}

struct WaitTimeout: Error, CustomStringConvertible { let description: String }

/// Runs `body` with a started test app and shuts it down afterwards, also when `body` throws.
func withApp(
    _ registry: TaskRegistry = Tasks.registry(), configuration: Worker.Configuration = .init(hostname: "celeriac@test"),
    observer: any WorkerObserver = NoObserver(), _ body: (CeleriacTestApp) async throws -> Void
) async throws {
    let app = try await CeleriacTestApp(registry: registry, configuration: configuration, observer: observer)
    do {
        try await body(app)
        try await app.shutdown()
    } catch {
        try? await app.shutdown()
        throw error
    }
}
