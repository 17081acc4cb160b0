import CeleriacCore
import Testing

@testable import CeleriacMessaging

/// The client's result cache: bounded, and never dropping (or spinning on) results someone waits for.
@Suite struct ResultRouterTests {
    static func retry(_ id: String) -> ResultMessage {
        ResultMessage.failure(
            id, TaskFailure(type: "Retry", arguments: [], module: "celery.exceptions"), status: .retry)
    }

    @Test func theOldestUnawaitedResultsAreEvictedFirst() async {
        let router = ResultRouter(capacity: 2)
        for id in ["a", "b", "c"] { await router.deliver(.success(id, .int(1))) }
        #expect(await router.cachedResults == 2)
        #expect(await router.state(of: "a") == nil)
        #expect(await router.state(of: "c")?.status == .success)
    }

    @Test func aCacheFullOfAwaitedTasksStaysOverCapacityAndStillDelivers() async throws {
        let router = ResultRouter(capacity: 2)
        // Three waiters whose tasks report RETRY: each of them is awaited, so none may be evicted. Before the fix,
        // the third delivery cycled through the awaited ids forever and the actor never answered again.
        let waits = (0..<3).map { i in
            Task { await router.waitReady("t\(i)", timeout: .seconds(60)) }
        }
        while await router.pendingWaiters < 3 { await Task.yield() }
        for i in 0..<3 { await router.deliver(Self.retry("t\(i)")) }
        #expect(await router.cachedResults == 3)
        for i in 0..<3 { await router.deliver(.success("t\(i)", .int(Int64(i)))) }
        for (i, w) in waits.enumerated() {
            let r = try #require(await w.value)
            #expect(r.status == .success && r.result == .int(Int64(i)))
        }
        // Nobody waits any more: the next delivery brings the cache back within its bound.
        await router.deliver(.success("later", .null))
        #expect(await router.cachedResults == 2)
    }
}
