import CeleriacCore
import CeleriacWorker
import Foundation
import Logging
import Synchronization
import Testing

@testable import CeleriacPool

/// The process pool's pipelining, driven directly (no broker, no worker): a `ProcessPool` whose children are
/// `celeriac-demo pool-child` processes. Runs are written ahead to a busy child; these tests check what happens to
/// the ones waiting behind the running one when it crashes, is killed, or is cancelled, and when the pool shrinks
/// or stops. The order in the child is made certain by waiting for each run's "sent" event before the next.
@Suite(.tags(.integration), .serialized)
struct ProcessPoolPipelineTests {
    /// The parent's view of the demo tasks: only their options matter here (the bodies run in the children).
    static let registry: TaskRegistry = {
        var r = TaskRegistry()
        for name in ["demo.sleep", "demo.crash", "demo.pid", "demo.add", "demo.spin", "demo.ledger", "demo.noop"] {
            r.register(TaskName<NoArguments, JSONValue>(name)) { _, _ in .null }
        }
        return r
    }()

    /// The ids of the runs the pool wrote to a child, with waiters for the next ones.
    final class SentLog: Sendable {
        private let state = Mutex<(ids: [String: pid_t], waiters: [String: CheckedContinuation<Void, Never>])>(
            ([:], [:]))

        func record(_ id: String, pid: pid_t) {
            let waiter = state.withLock { s in
                s.ids[id] = pid
                return s.waiters.removeValue(forKey: id)
            }
            waiter?.resume()
        }

        /// Returns once run `id` was sent (or the waiting task is cancelled).
        func wait(for id: String) async {
            await withTaskCancellationHandler {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let done = state.withLock { s -> Bool in
                        if s.ids[id] != nil || Task.isCancelled { return true }
                        s.waiters[id] = c
                        return false
                    }
                    if done { c.resume() }
                }
            } onCancel: {
                state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
            }
        }

        /// The child run `id` was sent to (the last time), if it was.
        func child(of id: String) -> pid_t? { state.withLock { $0.ids[id] } }
    }

    /// A started pool whose "run sent to a child" events are recorded.
    struct Pool {
        let pool: ProcessPool
        let sent = SentLog()

        init(processes: Int, depth: Int, maxTasksPerChild: Int? = nil) async throws {
            guard DemoApp.isBuilt() else { throw CancellationError() }
            pool = ProcessPool(
                configuration: .init(
                    executable: DemoApp.path, arguments: ["pool-child", "--loglevel", "error"], processes: processes,
                    maxTasksPerChild: maxTasksPerChild, stopTimeout: .seconds(30), pipelineDepth: depth))
            let log = sent
            pool.sentProbe.withLock { $0 = { id, pid in log.record(id, pid: pid) } }
            var logger = Logger(label: "it-pool-pipeline")
            logger.logLevel = .critical
            try await pool.start(logger: logger)
        }

        /// Starts running `name(args)` with `limits`; returns its id and the running task.
        func start(_ name: String, _ args: [JSONValue] = [], limits: TaskMessage.TimeLimit = .init()) -> (
            id: String, run: Task<JSONValue, any Error>
        ) {
            let message = TaskMessage(name: name, args: args)
            let task = ProcessPoolPipelineTests.registry[name]!
            let context = TaskContext(
                message: message, logger: Logger(label: "it-pool-pipeline"), hostname: "test", options: task.options)
            let pool = self.pool
            return (message.id, Task { try await pool.run(message, task: task, context: context, limits: limits) })
        }

        /// Starts a run and waits until it has been written to a child.
        func send(_ name: String, _ args: [JSONValue] = [], limits: TaskMessage.TimeLimit = .init()) async throws
            -> Task<JSONValue, any Error>
        {
            try await sendReturningChild(name, args, limits: limits).run
        }

        /// Starts a run, waits until it has been written to a child and returns that child too.
        func sendReturningChild(_ name: String, _ args: [JSONValue] = [], limits: TaskMessage.TimeLimit = .init())
            async throws
            -> (run: Task<JSONValue, any Error>, child: pid_t?)
        {
            let (id, run) = start(name, args, limits: limits)
            let log = sent
            try await within(.seconds(30), "\(name) sent to a child") { await log.wait(for: id) }
            #expect(log.child(of: id) != nil, "\(name) was not sent")
            return (run, log.child(of: id))
        }
    }

    /// What a run threw, as a short label.
    static func outcome(_ run: Task<JSONValue, any Error>) async -> String {
        do {
            return "ok \(try await run.value)"
        } catch let lost as WorkerLost {
            return lost.failure.type
        } catch let failure as ExecutionFailure {
            return failure.failure.type
        } catch is CancellationError {
            return "cancelled"
        } catch {
            return "\(error)"
        }
    }

    @Test func aCrashPipelinedAheadOfOtherTasksFailsAloneAndTheOthersRunOnTheReplacement() async throws {
        let p = try await Pool(processes: 1, depth: 4)
        let first = try #require(p.pool.childPIDs.first)
        // The child holds: a sleep (cancelled below), the crash, then two demo.pid; two more wait in the backlog.
        let blocker = try await p.send("demo.sleep", [60])
        let crash = try await p.send("demo.crash")
        var pids = [try await p.send("demo.pid"), try await p.send("demo.pid")]
        pids += [p.start("demo.pid").run, p.start("demo.pid").run]
        blocker.cancel()
        #expect(await Self.outcome(blocker) == "cancelled")
        #expect(await Self.outcome(crash) == "WorkerLostError")
        for run in pids {
            let pid = try await run.value
            // They ran, in the replacement: none started in the child that crashed.
            #expect(pid.intValue != nil && pid.intValue != Int64(first), "\(pid) (crashed child \(first))")
        }
        #expect(p.pool.statistics["worker-lost"] == 1)
        await p.pool.stop()
    }

    @Test func anIdleChildIsPreferredToQueueingBehindABusyOne() async throws {
        let p = try await Pool(processes: 2, depth: 2)
        let (blocker, busy) = try await p.sendReturningChild("demo.sleep", [60])
        let (lone, idle) = try await p.sendReturningChild("demo.pid")
        #expect(busy != nil && idle != nil && busy != idle, "the lone task was queued behind the sleeping one")
        #expect(try await lone.value == .int(Int64(idle ?? -1)))
        // Both busy now: the next ones queue, one behind each.
        let (second, secondChild) = try await p.sendReturningChild("demo.sleep", [60])
        let (third, thirdChild) = try await p.sendReturningChild("demo.pid")
        #expect(
            secondChild == idle && thirdChild == busy,
            "\(String(describing: secondChild)) \(String(describing: thirdChild))")
        // The queued one first: cancelled after the blocker, it could start before its cancel arrives.
        for run in [third, blocker, second] { run.cancel() }
        for run in [third, blocker, second] { #expect(await Self.outcome(run) == "cancelled") }
        await p.pool.stop()
    }

    @Test func aCancelledQueuedTaskNeverRunsAndItsChildCarriesOn() async throws {
        let p = try await Pool(processes: 1, depth: 3)
        let child = try #require(p.pool.childPIDs.first)
        let ledger = "\(TestBroker.repoRoot)/.run/pipeline-ledger-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: ledger) }
        let blocker = try await p.send("demo.sleep", [60])
        // demo.ledger writes a line when it starts: the file tells whether it ran.
        let victim = try await p.send("demo.ledger", [.string(ledger), 0])
        let after = try await p.send("demo.pid")
        // The cancel frame goes out before the blocker's: the child drops the victim before it could start.
        victim.cancel()
        blocker.cancel()
        #expect(await Self.outcome(victim) == "cancelled")
        #expect(await Self.outcome(blocker) == "cancelled")
        #expect(try await after.value == .int(Int64(child)), "the same child runs the next task")
        #expect(!FileManager.default.fileExists(atPath: ledger), "the cancelled task ran")
        await p.pool.stop()
    }

    @Test func timeLimitsCountFromWhenTheTaskStartsNotFromWhenItWasQueued() async throws {
        let p = try await Pool(processes: 1, depth: 2)
        // Queued for 1.5 s behind the sleep: limits of 0.5 s counted from the send would cancel or kill it.
        let sleep = try await p.send("demo.sleep", [1.5])
        let queued = try await p.send("demo.add", [1, 2], limits: .init(hard: 0.5, soft: 0.5))
        let (slept, added) = (await Self.outcome(sleep), await Self.outcome(queued))
        #expect(slept.hasPrefix("ok "), "\(slept)")
        #expect(added == "ok \(JSONValue.int(3))", "\(added)")
        await p.pool.stop()
    }

    @Test func aHardTimeLimitKillsTheRunningTaskOnlyAndTheQueuedOnesRunElsewhere() async throws {
        let p = try await Pool(processes: 1, depth: 3)
        let first = try #require(p.pool.childPIDs.first)
        // demo.spin ignores cancellation: only the kill ends it.
        let spin = try await p.send("demo.spin", [60], limits: .init(hard: 1, soft: nil))
        let queued = [try await p.send("demo.pid"), try await p.send("demo.pid")]
        #expect(await Self.outcome(spin) == "TimeLimitExceeded")
        for run in queued {
            let pid = try await run.value
            #expect(pid.intValue != nil && pid.intValue != Int64(first), "\(pid) ran in the killed child \(first)")
        }
        #expect(p.pool.statistics["time-limit-kills"] == 1 && p.pool.statistics["worker-lost"] == 0)
        await p.pool.stop()
    }

    @Test func maxTasksPerChildIsNeverExceededWhilePipelining() async throws {
        let p = try await Pool(processes: 2, depth: 3, maxTasksPerChild: 3)
        let runs = (0..<30).map { _ in p.start("demo.pid").run }
        var perPID: [Int64: Int] = [:]
        for run in runs { perPID[try #require(try await run.value.intValue), default: 0] += 1 }
        #expect(perPID.values.reduce(0, +) == 30)
        #expect(perPID.values.allSatisfy { $0 <= 3 }, "\(perPID)")
        #expect(perPID.count >= 10, "\(perPID)")
        await p.pool.stop()
    }

    @Test func shrinkingRetiresABusyChildAfterItsQueuedTasksAndGrowingAddsOne() async throws {
        let p = try await Pool(processes: 2, depth: 2)
        // Both children busy, each with one task queued behind.
        let busy = [
            try await p.send("demo.sleep", [0.5]), try await p.send("demo.sleep", [0.5]),
            try await p.send("demo.pid"), try await p.send("demo.pid"),
        ]
        #expect(p.pool.resize(by: -1, to: 1) == 1)
        // From now on only the survivor takes tasks.
        let later = (0..<6).map { _ in p.start("demo.pid").run }
        for run in busy { _ = try await run.value }
        let survivors = Set(try await later.asyncMap { try await $0.value })
        #expect(survivors.count == 1, "\(survivors)")
        // The retired child exits once it answered its queue, and is not replaced (bounded polling of /proc).
        try await ProcessPoolTests.poll("one child left") { p.pool.childPIDs.count == 1 }
        #expect(p.pool.resize(by: 1, to: 2) == 2)
        try await ProcessPoolTests.poll("two children again") { p.pool.childPIDs.count == 2 }
        #expect(try await p.start("demo.add", [2, 2]).run.value == .int(4))
        await p.pool.stop()
    }

    @Test func aWarmStopLetsEachChildFinishTheTasksItHolds() async throws {
        let p = try await Pool(processes: 1, depth: 3)
        let held = [try await p.send("demo.sleep", [0.5]), try await p.send("demo.pid"), try await p.send("demo.pid")]
        let waiting = p.start("demo.pid").run
        let pool = p.pool
        let stopped = Task { await pool.stop() }
        for run in held { _ = try await run.value }
        // What was still in the pool's backlog is refused (or ran, if a place freed before the stop began).
        let late = await Self.outcome(waiting)
        #expect(late == "cancelled" || late.hasPrefix("ok "), "\(late)")
        await stopped.value
        #expect(pool.childPIDs.isEmpty)
        #expect(await Self.outcome(p.start("demo.pid").run) == "cancelled", "a stopped pool takes nothing")
    }
}

extension Array {
    fileprivate func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for element in self { out.append(try await transform(element)) }
        return out
    }
}
