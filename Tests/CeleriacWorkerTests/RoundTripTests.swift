import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import CeleriacWorker
import Testing

@Suite struct RoundTripTests {
    @Test func aTaskRunsAndItsResultComesBack() async throws {
        try await withApp { app in
            let sum = try await app.client.delay(Tasks.add, .init(x: 2, y: 3)).get(timeout: .seconds(10))
            #expect(sum == 5)
        }
    }

    @Test func aFailingTaskReportsItsErrorAndTraceback() async throws {
        try await withApp { app in
            let handle = try await app.client.delay(Tasks.fail, .init(message: "on purpose"))
            await #expect {
                _ = try await handle.get(timeout: .seconds(10))
            } throws: { error in
                guard case .taskFailed(_, _, let failure)? = error as? CeleriacError else { return false }
                return failure.type == "ValueError" && failure.message == "on purpose"
            }
        }
    }
}
