import CeleriacCanvas
import CeleriacCore
import Foundation

/// The demo application's tasks. The README's quick start, the tests and the benchmarks use them.
enum DemoTasks {
    struct Pair: Codable, Sendable, Arguments2 {
        let x: Int; let y: Int; init(_ x: Int, _ y: Int) { self.x = x; self.y = y }
    }
    struct Numbers: Codable, Sendable, Arguments1 {
        let numbers: [Int]; init(_ numbers: [Int]) { self.numbers = numbers }
    }
    struct Value: Codable, Sendable, Arguments1 {
        let value: JSONValue; init(_ value: JSONValue) { self.value = value }
    }
    struct Seconds: Codable, Sendable, Arguments1 {
        let seconds: Double; init(_ seconds: Double) { self.seconds = seconds }
    }
    struct Message: Codable, Sendable, Arguments1 {
        let message: String; init(_ message: String) { self.message = message }
    }
    struct FailedTask: Codable, Sendable, Arguments1 {
        let taskID: String
        init(_ id: String) { taskID = id }
        enum CodingKeys: String, CodingKey { case taskID = "task_id" }
    }
    struct Times: Codable, Sendable { let times: Int }
    struct Count: Codable, Sendable, Arguments2 {
        let n: Int; let seconds: Double; init(_ n: Int, _ seconds: Double) { self.n = n; self.seconds = seconds }
    }

    static let add = TaskName<Pair, Int>("demo.add", parameters: "x", "y")
    static let mul = TaskName<Pair, Int>("demo.mul", parameters: "x", "y")
    static let xsum = TaskName<Numbers, Int>("demo.xsum", parameters: "numbers")
    static let echo = TaskName<Value, JSONValue>("demo.echo", parameters: "value")
    static let sleep = TaskName<Seconds, Double>("demo.sleep", parameters: "seconds")
    /// Counts to `n` over `seconds`, reporting `PROGRESS` with `{"current": i, "total": n}` at each step.
    static let count = TaskName<Count, Int>("demo.count", parameters: "n", "seconds")
    static let fail = TaskName<Message, JSONValue>("demo.fail", parameters: "message")
    static let flaky = TaskName<Times, Int>("demo.flaky", parameters: "times")
    static let crash = TaskName<NoArguments, JSONValue>("demo.crash")
    static let noop = TaskName<NoArguments, JSONValue>("demo.noop")
    /// An errback: gets the failed task's id (Celery's one-argument `link_error` form).
    static let onError = TaskName<FailedTask, String>("demo.on_error", parameters: "task_id")
    // Process-pool demos: a busy loop that ignores cancellation (only a hard time limit stops it), the pid of the
    // process running the task, and a crash whose message is requeued (reject_on_worker_lost) until dead-lettered.
    static let spin = TaskName<Seconds, Double>("demo.spin", parameters: "seconds")
    static let pid = TaskName<NoArguments, Int>("demo.pid")
    /// Sleeps, but catches its soft time limit and returns how it cleaned up (a soft limit a task handles).
    static let tidySleep = TaskName<Seconds, String>("demo.tidy_sleep", parameters: "seconds")
    static let crashRequeue = TaskName<NoArguments, JSONValue>("demo.crash_requeue")
    /// Global-limit demo: appends `start`/`end` lines (task id, worker node name, Unix time) to a ledger file around a
    /// sleep; returns the pid of the process that ran it.
    static let ledger = TaskName<LedgerArgs, Int>("demo.ledger", parameters: "path", "seconds")
    struct LedgerArgs: Codable, Sendable, Arguments2 {
        let path: String; let seconds: Double; init(_ p: String, _ s: Double) { path = p; seconds = s }
    }

    static func registry() -> TaskRegistry {
        var r = TaskRegistry()
        r.register(add) { p, _ in
            let (sum, overflow) = p.x.addingReportingOverflow(p.y)
            if overflow {
                throw BuiltinError(pythonType: "OverflowError", message: "\(p.x) + \(p.y) does not fit in 64 bits")
            }
            return sum
        }
        r.register(mul) { p, _ in
            let (product, overflow) = p.x.multipliedReportingOverflow(by: p.y)
            if overflow {
                throw BuiltinError(pythonType: "OverflowError", message: "\(p.x) * \(p.y) does not fit in 64 bits")
            }
            return product
        }
        r.register(xsum) { n, _ in n.numbers.reduce(0, +) }
        r.register(echo) { v, _ in v.value }
        r.register(sleep) { s, context in
            // context.sleep: past a soft time limit it throws SoftTimeLimitExceeded rather than CancellationError.
            try await context.sleep(for: .milliseconds(Int(s.seconds * 1000)))
            return s.seconds
        }
        r.register(count) { c, context in
            let steps = max(0, c.n)
            context.reportProgress(current: 0, total: steps)
            for i in 0..<steps {
                try await context.sleep(for: .milliseconds(Int(c.seconds * 1000) / max(1, steps)))
                context.reportProgress(current: i + 1, total: steps)
            }
            return steps
        }
        r.register(fail) { m, _ in throw BuiltinError.valueError(m.message) }
        r.register(flaky, options: TaskOptions(maxRetries: 100)) { t, context in
            if context.retries < t.times { throw context.retry(countdown: .milliseconds(100)) }
            return t.times
        }
        r.register(crash) { _, _ in
            fatalError("demo.crash: crashing on purpose (used by the process-pool tests)")
        }
        r.register(noop) { _, _ in .null }
        r.register(onError) { f, context in
            context.logger.warning("demo.on_error: task \(f.taskID) failed")
            return "handled \(f.taskID)"
        }
        r.register(spin) { s, _ in
            let end = ContinuousClock.now + .milliseconds(Int(s.seconds * 1000))
            var spins = 0
            while ContinuousClock.now < end { spins &+= 1 }
            return s.seconds
        }
        r.register(pid) { _, _ in Int(ProcessInfo.processInfo.processIdentifier) }
        r.register(tidySleep) { s, context in
            do {
                try await context.sleep(for: .milliseconds(Int(s.seconds * 1000)))
                return "slept \(s.seconds)s"
            } catch let soft as SoftTimeLimitExceeded {
                return "tidied up after the soft time limit of \(soft.limit)s"
            }
        }
        var requeue = TaskOptions()
        requeue.rejectOnWorkerLost = true
        r.register(crashRequeue, options: requeue) { _, _ in
            fatalError("demo.crash_requeue: crashing on purpose (reject_on_worker_lost)")
        }
        r.register(ledger) { a, context in
            try DemoLedger.append(
                "start \(context.id) \(context.hostname) \(Date().timeIntervalSince1970)\n", to: a.path)
            try await Task.sleep(for: .milliseconds(Int(a.seconds * 1000)))
            try DemoLedger.append("end \(context.id) \(context.hostname) \(Date().timeIntervalSince1970)\n", to: a.path)
            return Int(getpid())
        }
        return r
    }
}

/// Appends one line to a file with O_APPEND (one write, so lines from several processes never interleave).
enum DemoLedger {
    static func append(_ line: String, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard fd >= 0 else { throw BuiltinError(pythonType: "OSError", message: "cannot open \(path)") }
        defer { close(fd) }
        let bytes = Array(line.utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }
}
