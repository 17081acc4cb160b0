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
    struct Transient: Error {}

    /// `gate` waits for the test to open it; `runs` counts every run of every task by name.
    static func registry(gate: Gate = Gate(), runs: Counter = Counter()) -> TaskRegistry {
        var r = TaskRegistry()
        r.register(add) { p, ctx in runs.add(ctx.name); return p.x + p.y }
        r.register(mul) { p, ctx in runs.add(ctx.name); return p.x * p.y }
        r.register(xsum) { xs, ctx in runs.add(ctx.name); return xs.reduce(0, +) }
        r.register(fail) { m, ctx in runs.add(ctx.name); throw BuiltinError.valueError(m.message) }
        r.register(flaky, options: TaskOptions(maxRetries: 3)) { t, ctx in
            runs.add(ctx.name)
            if ctx.retries < t.times { throw ctx.retry(countdown: .seconds(10)) }
            return ctx.retries
        }
        r.register(autoretry, options: TaskOptions(maxRetries: 5, autoRetry: .init(backoff: .exponential(factor: 2, cap: 8)) { $0 is Transient })) { t, ctx in
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
        return r
    }
}

/// Counts runs by task name.
final class Counter: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    func add(_ name: String) { counts.withLock { $0[name, default: 0] += 1 } }
    func count(_ name: String) -> Int { counts.withLock { $0[name] ?? 0 } }
}

/// A gate a task waits on until the test opens it: holds a task "running" without sleeping.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
    func wait() async {
        await withCheckedContinuation { c in
            let resume = state.withLock { s -> Bool in
                if s.open { return true }
                s.waiters.append(c)
                return false
            }
            if resume { c.resume() }
        }
    }
    func open() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        waiters.forEach { $0.resume() }
    }
}

/// What the worker reported, as streams and lists a test waits on.
final class Recorder: WorkerObserver {
    let finished: AsyncStream<(String, String)>
    private let finishedSink: AsyncStream<(String, String)>.Continuation
    let started: AsyncStream<String>
    private let startedSink: AsyncStream<String>.Continuation
    let deadLettered = Mutex<[String]>([])
    let parked = Mutex<Int>(0)

    init() {
        (finished, finishedSink) = AsyncStream.makeStream()
        (started, startedSink) = AsyncStream.makeStream()
    }
    func taskFinished(name: String, queue: String, outcome: String, seconds: Double) { finishedSink.yield((name, outcome)) }
    func taskStarted(name: String, queue: String) { startedSink.yield(name) }
    func messageDeadLettered(queue: String, reason: String) { deadLettered.withLock { $0.append(reason) } }
    func taskParked(name: String, queue: String) { parked.withLock { $0 += 1 } }
}

/// Waits for the first element of `stream` that `match` accepts, at most `limit` of real time.
func first<S: AsyncSequence & Sendable>(_ stream: S, within limit: Duration = .seconds(10), _ what: String,
                                        where match: @escaping @Sendable (S.Element) -> Bool) async throws -> S.Element
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
func withApp<T>(_ registry: TaskRegistry = Tasks.registry(), configuration: Worker.Configuration = .init(hostname: "celeriac@test"),
                observer: any WorkerObserver = NoObserver(), _ body: (CeleriacTestApp) async throws -> T) async throws -> T {
    let app = try await CeleriacTestApp(registry: registry, configuration: configuration, observer: observer)
    do {
        let value = try await body(app)
        try await app.shutdown()
        return value
    } catch {
        try? await app.shutdown()
        throw error
    }
}
