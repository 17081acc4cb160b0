import CeleriacBroker
import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import Logging
import Testing

@testable import CeleriacWorker

/// ``RevocationFollower`` alone on the in-memory broker: the revocation log (a stream) is replayed before start.
@Suite struct RevocationFollowerTests {
    @Test func revocationsLoggedBeforeStartAreKnownWhenReplayReturns() async throws {
        let broker = InMemoryBroker(clock: ManualClock())
        let writer = broker.connection(.init(name: "writer", confirms: true))
        try await writer.connect()
        try await RevocationLog.declare(on: writer)
        try await writer.publish([
            RevocationLog.entry(id: "gone-1", terminate: false, by: "celeriac@other"),
            RevocationLog.entry(id: "gone-2", terminate: true, by: "celeriac@other"),
        ])
        let revoked = RevokedSet()
        let follower = RevocationFollower(
            connection: broker.connection(.init(name: "revocations", confirms: true)), revoked: revoked,
            hostname: "celeriac@test", enabled: true, logger: Logger(label: "test"))
        try await follower.replay()
        #expect(await revoked.contains("gone-1"))
        #expect(await revoked.contains("gone-2"))
        #expect(!(await revoked.contains("running-1")))
        await follower.stop()
    }

    @Test func switchedOffItReadsNothing() async throws {
        let broker = InMemoryBroker(clock: ManualClock())
        let revoked = RevokedSet()
        let follower = RevocationFollower(
            connection: broker.connection(.init(name: "revocations", confirms: true)), revoked: revoked,
            hostname: "celeriac@test", enabled: false, logger: Logger(label: "test"))
        try await follower.replay()
        #expect(!broker.queueNames.contains(RevocationLog.queue), "the log is not even declared")
        await follower.stop()
    }
}
