import AMQPTransport
import CeleriacAMQP
import CeleriacCanvas
import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import CeleriacWorker
import Foundation
import Synchronization
import Testing

/// The canvas tasks of these tests (`cv.*`), with positional argument protocols so the typed DSL applies.
enum CanvasTasks {
    struct Pair: Codable, Sendable, Arguments2 {
        let x: Int; let y: Int; init(_ x: Int, _ y: Int) { self.x = x; self.y = y }
    }
    struct Numbers: Codable, Sendable, Arguments1 { let numbers: [Int]; init(_ n: [Int]) { numbers = n } }
    struct Millis: Codable, Sendable, Arguments1 { let ms: Int; init(_ ms: Int) { self.ms = ms } }
    struct Text: Codable, Sendable, Arguments1 { let text: String; init(_ t: String) { text = t } }
    struct Value: Codable, Sendable, Arguments1 { let value: JSONValue; init(_ v: JSONValue) { value = v } }

    static let add = TaskName<Pair, Int>("cv.add", parameters: "x", "y")
    static let mul = TaskName<Pair, Int>("cv.mul", parameters: "x", "y")
    static let xsum = TaskName<Numbers, Int>("cv.xsum", parameters: "numbers")
    static let nap = TaskName<Millis, Int>("cv.nap", parameters: "ms")
    static let fail = TaskName<Text, Int>("cv.fail", parameters: "text")
    static let onError = TaskName<Text, String>("cv.on_error", parameters: "text")
    static let echo = TaskName<Value, JSONValue>("cv.echo", parameters: "value")
    static let held = TaskName<Millis, Int>("cv.held", parameters: "ms")
    struct Ints: Codable, Sendable, Arguments1 { let values: [Int]; init(_ v: [Int]) { values = v } }
    struct Values: Codable, Sendable, Arguments1 { let values: [JSONValue]; init(_ v: [JSONValue]) { values = v } }
    struct Outcomes: Codable, Sendable, Arguments1 {
        let parts: [ChordPartOutcome<Int>]; init(_ p: [ChordPartOutcome<Int>]) { parts = p }
    }
    static let list = TaskName<Ints, [Int]>("cv.list", parameters: "values")
    static let values = TaskName<Values, [JSONValue]>("cv.values", parameters: "values")
    /// A chord body that gets results and errors side by side: "ok <value>" or the exception type per member.
    static let describe = TaskName<Outcomes, [String]>("cv.describe", parameters: "parts")

    static func registry(errbacks: AsyncStream<String>.Continuation? = nil, gate: Gate = Gate()) -> TaskRegistry {
        var r = TaskRegistry()
        r.register(add) { p, _ in p.x + p.y }
        r.register(mul) { p, _ in p.x * p.y }
        r.register(xsum) { n, _ in n.numbers.reduce(0, +) }
        r.register(nap) { m, _ in
            try await Task.sleep(for: .milliseconds(m.ms))
            return m.ms
        }
        r.register(fail) { t, _ in throw BuiltinError.valueError(t.text) }
        r.register(onError) { t, _ in
            errbacks?.yield(t.text)
            return "handled \(t.text)"
        }
        r.register(echo) { v, _ in v.value }
        r.register(list) { v, _ in v.values }
        r.register(values) { v, _ in v.values }
        r.register(describe) { o, _ in
            o.parts.map { part in
                switch part {
                case .success(let v): "ok \(v)"
                case .failure(_, let type, _): type
                }
            }
        }
        r.register(held) { m, _ in
            await gate.wait()
            return m.ms
        }
        return r
    }
}

/// Chains, groups and chords end to end on the throwaway broker, with several in-process workers.
@Suite(.tags(.integration), .serialized)
struct CanvasTests {
    struct Setup {
        let url: AMQPURL
        let queue: String
        let workers: [RunningWorker]
        let client: CeleriacClient

        func stop() async throws {
            await client.close()
            for w in workers { try await w.stop() }
            await deleteQueues([queue], url: url)
        }
    }

    func setUp(workers count: Int = 1, concurrency: Int = 8, registry: TaskRegistry = CanvasTasks.registry())
        async throws -> Setup
    {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("cv")
        var workers: [RunningWorker] = []
        for _ in 0..<count {
            workers.append(
                try await startWorker(
                    registry, url: url, queues: [queue], concurrency: concurrency, prefetchMultiplier: 4))
        }
        return Setup(url: url, queue: queue, workers: workers, client: try await startClient(url: url, queue: queue))
    }

    @Test func chainOfAHundredStepsPassesEachResultOn() async throws {
        let s = try await setUp()
        var pipeline = CanvasTasks.add.s(0, 1)
        for _ in 1..<100 { pipeline = pipeline | CanvasTasks.add.s(1) }
        let result = try await s.client.apply(pipeline)
        let hundred: Int = try await result.get(timeout: .seconds(60))
        #expect(hundred == 100)
        // The chain's result is its last step's; the builder form gives the same.
        let built = chain {
            CanvasTasks.add.s(2, 2)
            CanvasTasks.mul.s(4)
            CanvasTasks.add.s(-6)
        }
        let ten: Int = try await s.client.apply(built).get(timeout: .seconds(30))
        #expect(ten == 10)
        try await s.stop()
    }

    @Test func groupOfAThousandReturnsResultsInMemberOrder() async throws {
        let s = try await setUp(workers: 2)
        let g = group {
            for i in 0..<1000 { CanvasTasks.add.s(i, i) }
        }
        let result = try await s.client.apply(g)
        let values = try await result.get(timeout: .seconds(120))
        let doubled: [Int] = (0..<1000).map { 2 * $0 }
        #expect(values == doubled)
        let completed = await result.completedCount()
        #expect(completed == 1000)
        #expect(result.members?.count == 1000)
        try await s.stop()
    }

    @Test func chordOfAThousandOutOfOrderAcrossThreeWorkers() async throws {
        let s = try await setUp(workers: 3)
        // Each header member is a chain whose first step sleeps a random few ms, so members finish out of order
        // and on different workers; the body still gets them in header order.
        let header = group {
            for i in 0..<1000 { CanvasTasks.nap.s(Int.random(in: 0...5)) | CanvasTasks.add.si(i, i) }
        }
        let result = try await s.client.apply(chord(header, CanvasTasks.list.s()))
        let values = try await result.get(timeout: .seconds(180))
        let doubled: [Int] = (0..<1000).map { 2 * $0 }
        #expect(values == doubled)
        let sum = try await s.client.apply(
            chord(group { for i in 0..<1000 { CanvasTasks.add.s(i, i) } }, CanvasTasks.xsum.s()))
        let total: Int = try await sum.get(timeout: .seconds(180))
        #expect(total == 999_000)
        try await s.stop()
        #expect(try await leftoverChordQueues(result.chordIDs + sum.chordIDs).isEmpty)
    }

    /// How many task bodies run at once, and the most seen.
    final class Overlap: Sendable {
        private let state = Mutex<(now: Int, most: Int)>((0, 0))
        func enter() {
            state.withLock {
                $0.now += 1; $0.most = max($0.most, $0.now)
            }
        }
        func leave() { state.withLock { $0.now -= 1 } }
        var most: Int { state.withLock { $0.most } }
    }
    static let counted = TaskName<CanvasTasks.Pair, Int>("cv.counted", parameters: "x", "y")

    @Test func chordMembersWaitingForTheirPartsLeaveTheConcurrencyLimitIntact() async throws {
        // A member waiting for its part's confirm and count lends its slot to the next member. Each lent slot comes
        // back exactly once: bodies never run more than `concurrency` at once, and the worker never runs out of slots
        // (both chords complete).
        let overlap = Overlap()
        var registry = CanvasTasks.registry()
        registry.register(Self.counted) { p, _ in
            overlap.enter()
            defer { overlap.leave() }
            await Task.yield()
            return p.x + p.y
        }
        let s = try await setUp(concurrency: 2, registry: registry)
        for _ in 0..<2 {
            let result = try await s.client.apply(
                chord(group { for i in 0..<300 { Self.counted.s(i, i) } }, CanvasTasks.xsum.s()))
            let total: Int = try await result.get(timeout: .seconds(120))
            #expect(total == 89_700)
        }
        #expect(overlap.most <= 2)
        try await s.stop()
    }

    @Test func nestedCanvasesComposeToAnyDepth() async throws {
        let s = try await setUp(workers: 2)
        // A chord of chords.
        let inner1 = chord(
            group {
                CanvasTasks.add.s(1, 1); CanvasTasks.add.s(2, 2)
            }, CanvasTasks.xsum.s())
        let inner2 = chord(group { CanvasTasks.add.s(3, 3) }, CanvasTasks.xsum.s())
        let outer = chord(
            group {
                inner1; inner2
            }, CanvasTasks.xsum.s())
        let outerResult = try await s.client.apply(outer)
        let twelve: Int = try await outerResult.get(timeout: .seconds(60))
        #expect(twelve == 12)
        #expect(outerResult.chordIDs.count == 3)

        // A chain containing a group containing chains: add(1,1)=2 → [(2+10)*2, 2*3] = [24, 6].
        let fanOut = group(steps: {
            CanvasTasks.add.s(10) | CanvasTasks.mul.s(2)
            CanvasTasks.mul.s(3)
        })
        let fanned: [Int] = try await s.client.apply(CanvasTasks.add.s(1, 1) | fanOut).get(timeout: .seconds(60))
        #expect(fanned == [24, 6] as [Int])
        // The same followed by a step: upgraded to a chord whose body gets the group's results.
        let fannedSum: Int = try await s.client.apply(CanvasTasks.add.s(1, 1) | fanOut | CanvasTasks.xsum.s()).get(
            timeout: .seconds(60))
        #expect(fannedSum == 30)
        // A chord inside a chain, and a group of chords.
        let inChain =
            CanvasTasks.add.s(1, 2)
            | chord(
                group(steps: {
                    CanvasTasks.add.s(1); CanvasTasks.mul.s(2)
                }), CanvasTasks.xsum.s())
        let inChainSum: Int = try await s.client.apply(inChain).get(timeout: .seconds(60))
        #expect(inChainSum == 10)
        let groupOfChords = group {
            inner1; inner2
        }
        let chordSums: [Int] = try await s.client.apply(groupOfChords).get(timeout: .seconds(60))
        #expect(chordSums == [6, 6] as [Int])
        // A group nested in a chord header is delivered to the body as one list.
        let nestedGroup = chord(
            group {
                group {
                    CanvasTasks.add.s(1, 1); CanvasTasks.add.s(2, 2)
                }.erased; CanvasTasks.add.s(5, 5).erased
            },
            CanvasTasks.values.s())
        let nested: [JSONValue] = try await s.client.apply(nestedGroup).get(timeout: .seconds(60))
        let expectedNested: [JSONValue] = [.array([.int(2), .int(4)]), .int(10)]
        #expect(nested == expectedNested)
        // map, starmap, chunks.
        let mapped: [Int] = try await s.client.apply(CanvasTasks.xsum.map([[1, 2], [3]])).get(timeout: .seconds(30))
        #expect(mapped == [3, 3] as [Int])
        let starmapped: [Int] = try await s.client.apply(CanvasTasks.add.starmap([(1, 2), (3, 4)])).get(
            timeout: .seconds(30))
        #expect(starmapped == [3, 7] as [Int])
        let chunked: [[Int]] = try await s.client.apply(CanvasTasks.add.chunks((0..<10).map { ($0, $0) }, size: 4)).get(
            timeout: .seconds(30))
        let expectedChunks: [[Int]] = [[0, 2, 4, 6], [8, 10, 12, 14], [16, 18]]
        #expect(chunked == expectedChunks)
        try await s.stop()
        #expect(try await leftoverChordQueues(outerResult.chordIDs).isEmpty)
    }

    @Test func failingStepStopsTheChainFailsItsResultAndRunsLinkError() async throws {
        let (errbacks, sink) = AsyncStream<String>.makeStream()
        let s = try await setUp(registry: CanvasTasks.registry(errbacks: sink))
        let failing = CanvasTasks.fail.s("boom").linkError(CanvasTasks.onError.s())
        // `signature | signature` runs the right side without the left's result (it is made immutable).
        let result = try await s.client.apply(CanvasTasks.add.s(1, 1) | failing | CanvasTasks.add.s(1))
        do {
            _ = try await result.get(timeout: .seconds(30))
            Issue.record("the chain's last step ran after a failed step")
        } catch let error as CeleriacError {
            guard case .taskFailed(_, _, let failure) = error else { throw error }
            #expect(failure.type == "ValueError")
            #expect(failure.message.contains("boom"))
        }
        // The errback got the failed task's id (one-argument form).
        let failedID = try await first(errbacks, within: .seconds(30), "the link_error callback") { _ in true }
        #expect(!failedID.isEmpty)
        try await s.stop()
    }

    @Test func chordWithAFailingMemberFailsWithChordErrorNamingIt() async throws {
        let (errbacks, sink) = AsyncStream<String>.makeStream()
        let s = try await setUp(workers: 2, registry: CanvasTasks.registry(errbacks: sink))
        let header = group {
            CanvasTasks.add.s(1, 1)
            CanvasTasks.fail.s("member 1 broke")
            CanvasTasks.add.s(2, 2)
        }
        // The body's link_error runs with the body's id when the chord fails.
        let result = try await s.client.apply(chord(header, CanvasTasks.xsum.s()).linkError(CanvasTasks.onError.s()))
        do {
            _ = try await result.get(timeout: .seconds(30))
            Issue.record("the chord body ran although a member failed")
        } catch let error as CeleriacError {
            guard case .taskFailed(_, _, let failure) = error else { throw error }
            #expect(failure.type == "ChordError")
            #expect(failure.message.contains("ValueError"))
            #expect(failure.message.contains("member 1"))
        }
        let errbackGot = try await first(errbacks, within: .seconds(30), "the chord body's link_error") { _ in true }
        #expect(errbackGot == result.id)
        // Opted in: the body gets results and errors side by side.
        let collected = try await s.client.apply(chord(collectingErrors: header, CanvasTasks.describe.s()))
        let described: [String] = try await collected.get(timeout: .seconds(30))
        #expect(described == ["ok 2", "ValueError", "ok 4"] as [String])
        try await s.stop()
        #expect(try await leftoverChordQueues(result.chordIDs + collected.chordIDs).isEmpty)
    }

    @Test func chordPastItsDeadlineFailsInsteadOfWaiting() async throws {
        let gate = Gate()
        let s = try await setUp(registry: CanvasTasks.registry(gate: gate))
        let header = group {
            CanvasTasks.add.s(1, 1)
            CanvasTasks.held.s(7)  // held until the gate opens: the header cannot complete in time
        }
        let result = try await s.client.apply(chord(header, CanvasTasks.xsum.s(), deadline: .seconds(1)))
        do {
            _ = try await result.get(timeout: .seconds(30))
            Issue.record("a chord with a held member completed")
        } catch let error as CeleriacError {
            guard case .taskFailed(_, _, let failure) = error else { throw error }
            #expect(failure.type == "ChordError")
            #expect(failure.message.contains("deadline"))
            #expect(failure.message.contains("missing members [1]"))
        }
        // Once the join has finished failing the chord (its queue is gone), the held member may finish: its part
        // finds no join queue and is dropped.
        let events = s.workers[0].observer.chords
        let seen = try await within(.seconds(30), "the deadline join, then the late part") {
            var seen: [String] = []
            for await event in events {
                seen.append(event)
                if event == "deadline" { gate.open() }
                if event == "late_part" { break }
            }
            return seen
        }
        #expect(seen == ["deadline", "late_part"])
        try await s.stop()
        #expect(try await leftoverChordQueues(result.chordIDs).isEmpty)
    }

    /// The join queues of these chords that still exist: once a chord is joined (or failed) there must be none.
    func leftoverChordQueues(_ ids: [String]) async throws -> [String] {
        #expect(!ids.isEmpty, "no chord in the canvases checked")
        let c = AMQPConnection(
            url: try TestBroker.shared.url(), options: .init(name: "it-chord-check", confirms: false))
        try await c.connect()
        var left: [String] = []
        for id in ids {
            let status = await Self.queueStatus(c, "celeriac.chord.\(id)")
            if status != 404 { left.append("\(id) (\(status))") }
        }
        await c.close()
        return left
    }

    /// 200 when the queue exists, else the broker's reply code (404 when it does not).
    static func queueStatus(_ c: AMQPConnection, _ name: String) async -> Int {
        do {
            _ = try await c.inspect(queue: name)
            return 200
        } catch {
            return Int(error.replyCode ?? 0)
        }
    }
}
