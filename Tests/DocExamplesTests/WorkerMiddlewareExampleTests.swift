import CeleriacCore
import CeleriacTesting
import CeleriacWorker
import Testing

/// Runs the middleware example of docs/worker.md on a real worker (in-memory broker).
@Suite struct WorkerMiddlewareExampleTests {
    struct Word: Codable, Sendable { let word: String }
    static let shout = TaskName<Word, String>("example.shout", parameters: "word")

    @Test func theTallyCountsAFailedTaskByNameAndError() async throws {
        var registry = TaskRegistry()
        registry.register(Self.shout) { args, _ in
            guard !args.word.isEmpty else { throw BuiltinError.valueError("nothing to shout") }
            return args.word.uppercased()
        }
        let tally = FailureTally()
        var configuration = MiddlewareExample.configuration(tally: tally)
        configuration.hostname = "celeriac@docs"
        let app = try await CeleriacTestApp(registry: registry, configuration: configuration)
        let loud = try await app.client.delay(Self.shout, .init(word: "hi")).get(timeout: .seconds(10))
        #expect(loud == "HI")
        await #expect(throws: (any Error).self) {
            _ = try await app.client.delay(Self.shout, .init(word: "")).get(timeout: .seconds(10))
        }
        try await app.shutdown()
        #expect(tally.failures == ["example.shout ValueError": 1])
    }
}
