import CeleriacCore
import CeleriacTesting
import Synchronization
import Testing

@testable import CeleriacWorker

/// ``TaskMiddleware`` and the chain: the order of calls, and what a user's middleware sees of a real worker.
@Suite struct MiddlewareTests {
    /// Writes every call it gets into a shared log, prefixed with its name.
    struct Tracer: TaskMiddleware {
        let name: String
        let log: EventLog<String>
        func handle(_ run: TaskRun, next: () async -> Void) async {
            log.append("\(name).enter")
            await next()
            log.append("\(name).exit")
        }
        func received(_ run: TaskRun) async { log.append("\(name).received \(run.message.name)") }
        func started(_ run: TaskRun) async { log.append("\(name).started") }
        func finished(_ run: TaskRun, outcome: TaskOutcome, seconds: Double) async {
            log.append("\(name).finished \(outcome.finished.rawValue)")
        }
    }

    @Test func theFirstMiddlewareIsOutermostAndHooksRunInOrder() async {
        let log = EventLog<String>()
        let chain = MiddlewareChain([Tracer(name: "a", log: log), Tracer(name: "b", log: log)])
        let run = TaskRun(message: TaskMessage(name: "t.add"), queue: "q")
        await chain.handle(run) {
            await chain.received(run)
            log.append("body")
            await chain.finished(run, outcome: .success(1), seconds: 0)
        }
        #expect(
            log.items == [
                "a.enter", "b.enter", "a.received t.add", "b.received t.add", "body",
                "a.finished succeeded", "b.finished succeeded", "b.exit", "a.exit",
            ])
    }

    @Test func anEmptyChainRunsTheBody() async {
        let ran = Mutex(false)
        await MiddlewareChain([]).handle(TaskRun(message: TaskMessage(name: "t"), queue: "q")) {
            ran.withLock { $0 = true }
        }
        #expect(ran.withLock { $0 })
    }

    @Test func aUsersMiddlewareSeesEachTaskOnceWithItsTypedOutcome() async throws {
        let log = EventLog<String>()
        var configuration = Worker.Configuration(hostname: "celeriac@test")
        configuration.middleware = [Tracer(name: "m", log: log)]
        try await withApp(configuration: configuration) { app in
            let sum = try await app.client.delay(Tasks.add, .init(x: 2, y: 3)).get(timeout: .seconds(10))
            #expect(sum == 5)
            await #expect(throws: (any Error).self) {
                _ = try await app.client.delay(Tasks.fail, .init(message: "no")).get(timeout: .seconds(10))
            }
            try await log.wait(for: 2, "two tasks finished") { $0.hasPrefix("m.finished") }
        }
        #expect(log.items.filter { $0.hasPrefix("m.finished") } == ["m.finished succeeded", "m.finished failed"])
        #expect(log.items.filter { $0 == "m.enter" }.count == 2)
        #expect(log.items.filter { $0 == "m.exit" }.count == 2)
        #expect(log.items.first == "m.enter")
        // Within one task: received, then started, then finished.
        let first = Array(log.items.prefix(5))
        #expect(first == ["m.enter", "m.received t.add", "m.started", "m.finished succeeded", "m.exit"])
    }

    @Test func aTaskThatDoesNotRunIsFinishedWithoutStarting() async throws {
        let log = EventLog<String>()
        var configuration = Worker.Configuration(hostname: "celeriac@test")
        configuration.middleware = [Tracer(name: "m", log: log)]
        try await withApp(configuration: configuration) { app in
            await #expect(throws: (any Error).self) {
                _ = try await app.client.send("t.unknown").get(timeout: .seconds(10))
            }
            try await log.wait("the unknown task finished") { $0.hasPrefix("m.finished") }
        }
        #expect(log.items == ["m.enter", "m.received t.unknown", "m.finished failed", "m.exit"])
    }
}
