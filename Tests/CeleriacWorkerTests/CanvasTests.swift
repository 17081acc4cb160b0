import CeleriacCanvas
import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import CeleriacWorker
import Testing

/// The canvas tasks (`cv.*`), with positional argument protocols so the typed DSL applies.
enum CanvasTasks {
    struct Pair: Codable, Sendable, Arguments2 {
        let x: Int; let y: Int; init(_ x: Int, _ y: Int) { self.x = x; self.y = y }
    }
    struct Numbers: Codable, Sendable, Arguments1 { let numbers: [Int]; init(_ n: [Int]) { numbers = n } }
    struct Text: Codable, Sendable, Arguments1 { let text: String; init(_ t: String) { text = t } }
    struct Outcomes: Codable, Sendable, Arguments1 {
        let parts: [ChordPartOutcome<Int>]; init(_ p: [ChordPartOutcome<Int>]) { parts = p }
    }
    static let add = TaskName<Pair, Int>("cv.add", parameters: "x", "y")
    static let mul = TaskName<Pair, Int>("cv.mul", parameters: "x", "y")
    static let xsum = TaskName<Numbers, Int>("cv.xsum", parameters: "numbers")
    static let fail = TaskName<Text, Int>("cv.fail", parameters: "text")
    static let onError = TaskName<Text, String>("cv.on_error", parameters: "text")
    struct One: Codable, Sendable, Arguments1 { let value: Int; init(_ v: Int) { value = v } }
    static let record = TaskName<One, Int>("cv.record", parameters: "value")
    /// A chord body that fails.
    static let failSum = TaskName<Numbers, Int>("cv.fail_sum", parameters: "numbers")
    static let describe = TaskName<Outcomes, [String]>("cv.describe", parameters: "parts")

    static func registry(callbacks: EventLog<String> = EventLog()) -> TaskRegistry {
        var r = TaskRegistry()
        r.register(add) { p, _ in p.x + p.y }
        r.register(mul) { p, _ in p.x * p.y }
        r.register(xsum) { n, _ in n.numbers.reduce(0, +) }
        r.register(fail) { t, _ in throw BuiltinError.valueError(t.text) }
        r.register(onError) { t, _ in
            callbacks.append("error \(t.text)")
            return "handled"
        }
        r.register(failSum) { n, _ in throw BuiltinError.valueError("body got \(n.numbers)") }
        r.register(record) { v, _ in
            callbacks.append("got \(v.value)")
            return v.value
        }
        r.register(describe) { o, _ in
            o.parts.map { part in
                switch part {
                case .success(let v): "ok \(v)"
                case .failure(_, let type, _): type
                }
            }
        }
        return r
    }
}

@Suite struct CanvasTests {
    @Test func aChainPassesEachResultToTheNextStep() async throws {
        try await withApp(CanvasTasks.registry()) { app in
            var pipeline = CanvasTasks.add.s(0, 1)
            for _ in 1..<20 { pipeline = pipeline | CanvasTasks.add.s(1) }
            let got3 = try await app.client.apply(pipeline).get(timeout: .seconds(10))
            #expect(got3 == 20)
            let built = chain {
                CanvasTasks.add.s(2, 2)
                CanvasTasks.mul.s(4)
                CanvasTasks.add.s(-6)
            }
            let got4 = try await app.client.apply(built).get(timeout: .seconds(10))
            #expect(got4 == 10)
        }
    }

    /// A worker passes the rest of a chain on exactly as it came, as Celery's worker does, instead of decoding each
    /// remaining step and encoding it again: a field of the sender's that Celeriac's canvas model does not know
    /// reaches the next step untouched.
    @Test func theRestOfAChainTravelsOnAsItCame() async throws {
        let callbacks = EventLog<String>()
        let seen = EventLog<JSONValue>()
        var registry = CanvasTasks.registry(callbacks: callbacks)
        registry.register(TaskName<CanvasTasks.Pair, Int>("cv.add_seeing", parameters: "x", "y")) { p, context in
            seen.append(.array(context.message.embed.chain ?? []))
            return p.x + p.y
        }
        try await withApp(registry) { app in
            let last: JSONValue = [
                "task": "cv.record", "args": [], "kwargs": [:], "options": [:], "subtask_type": .null,
                "immutable": false, "chord_size": .null, "x_sender_field": "kept",
            ]
            let middle: JSONValue = [
                "task": "cv.add_seeing", "args": [10], "kwargs": [:], "options": [:], "subtask_type": .null,
                "immutable": false,
            ]
            // The first step as a Celery client sends it: the rest of the chain in its embed, the next step last.
            var first = TaskMessage(name: "cv.add", args: [1, 2])
            first.embed.chain = [last, middle]
            let sender = app.broker.connection(.init(name: "chain-sender"))
            try await sender.connect()
            try await sender.publish(TaskCodec.encode(first, routingKey: "celery"))
            try await callbacks.wait("the last step") { $0 == "got 13" }
            #expect(seen.items == [.array([last])])
            await sender.close()
        }
    }

    @Test func aGroupCollectsResultsInMemberOrder() async throws {
        try await withApp(CanvasTasks.registry()) { app in
            let g = group { for i in 0..<50 { CanvasTasks.mul.s(i, i) } }
            let squares: [Int] = try await app.client.apply(g).get(timeout: .seconds(10))
            #expect(squares == (0..<50).map { $0 * $0 })
        }
    }

    @Test func aChordRunsItsBodyOnceWithEveryHeaderResult() async throws {
        try await withApp(CanvasTasks.registry()) { app in
            let sum = try await app.client.apply(
                chord(group { for i in 0..<100 { CanvasTasks.add.s(i, i) } }, CanvasTasks.xsum.s()))
            #expect(try await sum.get(timeout: .seconds(10)) == 9900)
            // The join's queues go once the body is published (its result may come back first).
            try await app.broker.waitForQueues(prefixed: "celeriac.chord", count: 0)
        }
    }

    @Test func nestedCanvasesComposeAsCelerysDo() async throws {
        try await withApp(CanvasTasks.registry()) { app in
            let inner1 = chord(
                group {
                    CanvasTasks.add.s(1, 1); CanvasTasks.add.s(2, 2)
                }, CanvasTasks.xsum.s())
            let inner2 = chord(group { CanvasTasks.add.s(3, 3) }, CanvasTasks.xsum.s())
            let got5 = try await app.client.apply(
                chord(
                    group {
                        inner1; inner2
                    }, CanvasTasks.xsum.s())
            ).get(timeout: .seconds(10))
            #expect(got5 == 12)
            let fanOut = group(steps: {
                CanvasTasks.add.s(10) | CanvasTasks.mul.s(2)
                CanvasTasks.mul.s(3)
            })
            let fanned: [Int] = try await app.client.apply(CanvasTasks.add.s(1, 1) | fanOut).get(timeout: .seconds(10))
            #expect(fanned == [24, 6])
            let inChain =
                CanvasTasks.add.s(1, 2)
                | chord(
                    group(steps: {
                        CanvasTasks.add.s(1); CanvasTasks.mul.s(2)
                    }), CanvasTasks.xsum.s())
            let got6 = try await app.client.apply(inChain).get(timeout: .seconds(10))
            #expect(got6 == 10)
        }
    }

    @Test func aFailingStepStopsTheChainAndRunsItsLinkError() async throws {
        let callbacks = EventLog<String>()
        try await withApp(CanvasTasks.registry(callbacks: callbacks)) { app in
            let failing = CanvasTasks.fail.s("boom").linkError(CanvasTasks.onError.s())
            let result = try await app.client.apply(CanvasTasks.add.s(1, 1) | failing | CanvasTasks.add.s(1))
            await #expect {
                _ = try await result.get(timeout: .seconds(10))
            } throws: { error in
                guard case .taskFailed(_, _, let failure)? = error as? CeleriacError else { return false }
                return failure.type == "ValueError" && failure.message == "boom"
            }
            try await callbacks.wait("the link_error callback") { $0.hasPrefix("error ") }
        }
    }

    @Test func aChordWithAFailingMemberFailsWithChordErrorAndRunsTheBodysErrback() async throws {
        let callbacks = EventLog<String>()
        try await withApp(CanvasTasks.registry(callbacks: callbacks)) { app in
            let header = group {
                CanvasTasks.add.s(1, 1)
                CanvasTasks.fail.s("member 1 broke")
                CanvasTasks.add.s(2, 2)
            }
            let result = try await app.client.apply(
                chord(header, CanvasTasks.xsum.s()).linkError(CanvasTasks.onError.s()))
            await #expect {
                _ = try await result.get(timeout: .seconds(10))
            } throws: { error in
                guard case .taskFailed(_, _, let failure)? = error as? CeleriacError else { return false }
                return failure.type == "ChordError" && failure.message.contains("ValueError")
                    && failure.message.contains("member 1")
            }
            try await callbacks.wait("the body's link_error") { $0 == "error \(result.id)" }
            let collected = try await app.client.apply(chord(collectingErrors: header, CanvasTasks.describe.s()))
            #expect(try await collected.get(timeout: .seconds(10)) == ["ok 2", "ValueError", "ok 4"])
        }
    }

    @Test func aLinkCallbackGetsTheResult() async throws {
        let callbacks = EventLog<String>()
        try await withApp(CanvasTasks.registry(callbacks: callbacks)) { app in
            let result = try await app.client.apply(CanvasTasks.add.s(20, 22).link(CanvasTasks.record.s()))
            #expect(try await result.get(timeout: .seconds(10)) == 42)
            // The callback is a task of its own with the result as its argument.
            try await callbacks.wait("the link callback") { $0 == "got 42" }
        }
    }

    @Test func mapAndStarmapRunAsOneTask() async throws {
        try await withApp(CanvasTasks.registry()) { app in
            let pairs = [(1, 2), (3, 4), (5, 6)]
            let sums: [Int] = try await app.client.apply(CanvasTasks.add.starmap(pairs)).get(timeout: .seconds(10))
            #expect(sums == [3, 7, 11])
        }
    }

    @Test func aCanvasWithACountdownWaitsForTheClock() async throws {
        try await withApp(CanvasTasks.registry()) { app in
            let result = try await app.client.apply(CanvasTasks.add.s(1, 1).countdown(60) | CanvasTasks.mul.s(10))
            await app.clock.advance(by: .seconds(59))
            #expect(app.broker.delayedMessageCount == 1)
            await app.clock.advance(by: .seconds(1))
            #expect(try await result.get(timeout: .seconds(10)) == 20)
        }
    }
}
