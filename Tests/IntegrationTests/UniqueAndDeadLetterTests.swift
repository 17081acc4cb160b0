import AMQPTransport
import CeleriacAMQP
import CeleriacCoordination
import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import Foundation
import Synchronization
import Testing

/// Unique tasks, duplicate skip by task id, and the dead-letter tooling.
@Suite(.tags(.integration), .serialized)
struct UniqueAndDeadLetterTests {
    static var demo: String { DemoApp.path }

    /// 50 concurrent sends with one key: one is sent and runs, 49 get its id; a send after it finished runs again.
    @Test func fiftyConcurrentSendsWithOneKeyRunOnce() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("uniq")
        let name = "it.unique.\(queue.suffix(8))"
        let key = "report:\(queue.suffix(8))"
        let gate = Gate()
        let runs = Ledger()
        let seenIDs = IDs()
        var registry = TaskRegistry()
        registry.register(TaskName<NoArguments, Int>(name)) { _, context in
            runs.record()
            seenIDs.add(context.id)
            await gate.wait()
            return 7
        }
        let (running, _) = try await startCoordinatedWorker(registry, url: url, queue: queue)
        let client = try await startClient(url: url, queue: queue)

        let sends = try await withThrowingTaskGroup(of: UniqueSend.self) { group in
            for _ in 0..<50 {
                group.addTask { try await client.sendUnique(name, key: key, onDuplicate: .returnExisting) }
            }
            var all: [UniqueSend] = []
            for try await s in group { all.append(s) }
            return all
        }
        var sent: [AsyncResult] = []
        var duplicateIDs: [String] = []
        for s in sends {
            switch s {
            case .sent(let r): sent.append(r)
            case .duplicate(let id): duplicateIDs.append(id)
            }
        }
        #expect(sent.count == 1)
        #expect(duplicateIDs.count == 49)
        let winner = try #require(sent.first)
        #expect(duplicateIDs.allSatisfy { $0 == winner.id }, "a duplicate named another task than the one sent")

        // The other policy refuses; `locks list` sees the holder.
        do {
            _ = try await client.sendUnique(name, key: key, onDuplicate: .refuse)
            Issue.record("a second send with a held key was accepted")
        } catch let error as UniqueTaskError {
            guard case .duplicate(let k, let id) = error else { throw error }
            #expect(k == key && id == winner.id)
        }
        let (lister, probe) = (
            AMQPConnection(url: url, options: .init(name: "it-locks", confirms: true)),
            AMQPConnection(url: url, options: .init(name: "it-locks-probe", confirms: true))
        )
        try await lister.connect()
        try await probe.connect()
        let held = try await UniqueLock.list(on: lister, probe: probe)
        #expect(held.contains { $0.key == key && $0.taskID == winner.id })

        gate.open()
        #expect(try await winner.get(timeout: .seconds(30)) == .int(7))
        #expect(runs.all.count == 1)

        // Finished: the key is free again, and a caller-chosen id is honoured end to end.
        let chosen = "chosen-\(queue.suffix(8))"
        guard case .sent(let again) = try await client.sendUnique(name, key: key, options: SendOptions(taskID: chosen))
        else {
            Issue.record("the key was still held after its task finished"); return
        }
        #expect(again.id == chosen)
        #expect(try await again.get(timeout: .seconds(30)) == .int(7))
        #expect(runs.all.count == 2)
        #expect(seenIDs.all.last == chosen)
        let after = try await UniqueLock.list(on: lister, probe: probe)
        #expect(!after.contains { $0.key == key })

        try await running.stop()
        await client.close()
        await lister.close()
        await probe.close()
        await deleteQueues([queue, CoordinationTopology.uniqueQueue(key)], url: url)
    }

    /// A unique task that cannot run (unknown name) gives its key back when it is dead-lettered.
    @Test func aDeadLetteredUniqueTaskReleasesItsKey() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("uniqdead")
        let key = "dead:\(queue.suffix(8))"
        var registry = TaskRegistry()
        registry.register(TaskName<NoArguments, Int>("it.known.\(queue.suffix(8))")) { _, _ in 0 }
        let (running, _) = try await startCoordinatedWorker(registry, url: url, queue: queue)
        let client = try await startClient(url: url, queue: queue)
        let missing = "it.unknown.\(queue.suffix(8))"
        guard case .sent(let firstSend) = try await client.sendUnique(missing, key: key) else {
            Issue.record("a fresh key was refused"); return
        }
        await #expect(throws: CeleriacError.self) { try await firstSend.get(timeout: .seconds(20)) }
        guard case .sent(let again) = try await client.sendUnique(missing, key: key) else {
            Issue.record("the key of a dead-lettered task was still held"); return
        }
        #expect(again.id != firstSend.id)
        await #expect(throws: CeleriacError.self) { try await again.get(timeout: .seconds(20)) }
        try await running.stop()
        await client.close()
        await deleteQueues([queue, CoordinationTopology.uniqueQueue(key)], url: url)
    }

    /// `locks list` shows a held key with its task id; `locks clear KEY` frees it for the next send.
    @Test func locksCommandListsAndClearsAKey() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("locks")  // nobody consumes it: the lock stays held
        let key = "cli:\(queue.suffix(8))"
        let env = ProcessInfo.processInfo.environment
        let broker = TestBroker.shared.urlString
        let client = try await startClient(url: url, queue: queue)
        guard case .sent(let held) = try await client.sendUnique("it.never.run", key: key) else {
            Issue.record("a fresh key was refused"); return
        }
        let (listedOK, listing) = await Shell.runOffPoolWithStatus(
            Self.demo, ["locks", "list", "--broker", broker], environment: env)
        #expect(listedOK, "\(listing)")
        #expect(
            listing.split(separator: "\n").contains { $0.hasPrefix(key) && $0.contains("id=\(held.id)") },
            "locks list: \(listing)")
        guard case .duplicate = try await client.sendUnique("it.never.run", key: key, onDuplicate: .returnExisting)
        else {
            Issue.record("a held key was taken twice"); return
        }
        let (clearedOK, clearing) = await Shell.runOffPoolWithStatus(
            Self.demo, ["locks", "clear", key, "--broker", broker], environment: env)
        #expect(clearedOK && clearing.contains("cleared \(key)"), "\(clearing)")
        guard case .sent = try await client.sendUnique("it.never.run", key: key) else {
            Issue.record("a cleared key was still held"); return
        }
        await client.close()
        await deleteQueues([queue, CoordinationTopology.uniqueQueue(key)], url: url)
    }

    /// A delivery of a task id this worker already completed is skipped and reported, not run again.
    @Test func aCompletedTaskIDIsSkippedAndReported() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("dup")
        let name = "it.dup.\(queue.suffix(8))"
        let runs = Ledger()
        var registry = TaskRegistry()
        registry.register(TaskName<NoArguments, Int>(name)) { _, _ in
            runs.record()
            return 1
        }
        let (running, recorder) = try await startCoordinatedWorker(registry, url: url, queue: queue, concurrency: 1)
        let client = try await startClient(url: url, queue: queue)
        let id = "dup-\(queue.suffix(8))"
        _ = try await client.send(name, options: SendOptions(taskID: id)).get(timeout: .seconds(30))
        _ = try await client.send(name, options: SendOptions(taskID: id))
        _ = try await first(recorder.duplicates, within: .seconds(30), "the duplicate to be reported") { $0 == name }
        #expect(runs.all.count == 1)
        try await running.stop()
        await client.close()
        await deleteQueues([queue], url: url)
    }

    /// An unknown task is dead-lettered with its reason, listed by `dlq list`, replayed by `dlq replay ID` once a
    /// worker knows the task, runs once, and leaves the dead-letter queue.
    @Test func deadLetteredTaskIsListedReplayedAndRunsOnce() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("dlq")
        let name = "it.missing.\(queue.suffix(8))"
        let id = "dead-\(queue.suffix(8))"
        let env = ProcessInfo.processInfo.environment
        let broker = TestBroker.shared.urlString

        var without = TaskRegistry()
        without.register(TaskName<NoArguments, Int>("it.other.\(queue.suffix(8))")) { _, _ in 0 }
        let before = try await startWorker(without, url: url, queues: [queue])
        let client = try await startClient(url: url, queue: queue)
        do {
            _ = try await client.send(name, options: SendOptions(taskID: id)).get(timeout: .seconds(30))
            Issue.record("an unregistered task succeeded")
        } catch CeleriacError.taskFailed(_, _, let failure) {
            #expect(failure.type == "NotRegistered")
        }
        let inspector = AMQPConnection(url: url, options: .init(name: "it-dlq", confirms: true))
        try await inspector.connect()
        let dlq = DeadLetterQueue(connection: inspector)
        try await waitForBroker("the message in the dead-letter queue") {
            (try? await dlq.list().contains { $0.taskID == id }) == true
        }
        try await before.stop()

        let (listed, listing) = await Shell.runOffPoolWithStatus(
            Self.demo, ["dlq", "list", "--broker", broker], environment: env)
        #expect(listed, "\(listing)")
        let row = listing.split(separator: "\n").first { $0.hasPrefix(id) }.map(String.init) ?? ""
        #expect(
            row.contains(name) && row.contains("not registered") && row.contains("queue=\(queue)")
                && row.contains("age="), "dlq list: \(listing)")

        // The bug is fixed: a worker that knows the task.
        let ran = Ledger()
        var fixed = TaskRegistry()
        fixed.register(TaskName<NoArguments, Int>(name)) { _, context in
            if context.id == id { ran.record() }
            return 42
        }
        let second = try await startWorker(fixed, url: url, queues: [queue])
        let (replayedOK, replayOutput) = await Shell.runOffPoolWithStatus(
            Self.demo, ["dlq", "replay", id, "--broker", broker], environment: env)
        #expect(replayedOK, "\(replayOutput)")
        #expect(replayOutput.contains("1 message(s) replayed"), "\(replayOutput)")
        _ = try await first(second.observer.finished, within: .seconds(30), "the replayed task to finish") {
            $0.0 == name && $0.1 == .succeeded
        }
        #expect(ran.all.count == 1)
        let left = try await dlq.list()
        #expect(!left.contains { $0.taskID == id }, "the replayed message is still in the dead-letter queue")
        let depth = try await inspector.inspect(queue: queue).messageCount
        #expect(depth == 0)

        // `dlq purge` empties the dead-letter queue (tests run one at a time, so only leftovers go with it).
        let doomed = "dead2-\(queue.suffix(8))"
        _ = try? await client.send("it.unknown.\(queue.suffix(8))", options: SendOptions(taskID: doomed)).get(
            timeout: .seconds(30))
        try await waitForBroker("the second message in the dead-letter queue") {
            (try? await dlq.list().contains { $0.taskID == doomed }) == true
        }
        let (purgedOK, purgeOutput) = await Shell.runOffPoolWithStatus(
            Self.demo, ["dlq", "purge", "--broker", broker], environment: env)
        #expect(purgedOK && purgeOutput.contains("purged") && !purgeOutput.contains("purged 0 "), "\(purgeOutput)")
        let afterPurge = try await dlq.list()
        #expect(afterPurge.isEmpty, "left after purge: \(afterPurge.map(\.taskID))")

        try await second.stop()
        await client.close()
        await inspector.close()
        await deleteQueues([queue], url: url)
    }
}

/// Task ids seen by a task body, in order.
final class IDs: Sendable {
    private let ids = Mutex<[String]>([])
    func add(_ id: String) { ids.withLock { $0.append(id) } }
    var all: [String] { ids.withLock { $0 } }
}
