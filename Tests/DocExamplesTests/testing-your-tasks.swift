import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import Testing

struct Amounts: Codable, Sendable { let x: Int; let y: Int }

enum Billing {
    static let add = TaskName<Amounts, Int>("billing.add", parameters: "x", "y")

    static var registry: TaskRegistry {
        var registry = TaskRegistry()
        registry.register(add, options: TaskOptions(maxRetries: 3)) { amounts, context in
            if context.retries == 0 { throw context.retry(countdown: .seconds(10)) }  // fails once, then retries
            return amounts.x + amounts.y
        }
        return registry
    }
}

@Test func addRetriesOnceThenAnswers() async throws {
    let app = try await CeleriacTestApp(registry: Billing.registry)  // in-memory broker, manual clock
    let sum = try await app.client.delay(Billing.add, Amounts(x: 2, y: 3))
    try await app.broker.waitForDelayedMessages()  // the retry waits in the broker...
    await app.clock.advance(by: .seconds(10))  // ...for ten seconds of the test's clock
    #expect(try await sum.get(timeout: .seconds(5)) == 5)
    try await app.shutdown()
}
