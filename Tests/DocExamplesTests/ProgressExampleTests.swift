import CeleriacCore
import CeleriacTesting
import Testing

/// Runs the progress example of the README on a real worker (in-memory broker, manual clock).
@Suite struct ProgressExampleTests {
    @Test func theReportRendersAndTheCallerFollowsItsPages() async throws {
        var registry = TaskRegistry()
        Reports.register(in: &registry)
        let app = try await CeleriacTestApp(registry: registry)
        async let pages = Reports.renderAndFollow(3, client: app.client)
        for _ in 1...3 {
            try await app.clock.waitForSleepers(dueWithin: .milliseconds(200))  // the task, not the watchdog
            await app.clock.advance(by: .milliseconds(200))
        }
        #expect(try await pages == 3)
        try await app.shutdown()
    }
}
