import Synchronization
import Testing

@testable import CeleriacWire

/// A publish wait ends exactly once: by the confirm, or earlier by proof that the broker took the message.
@Suite struct PublishSettlerTests {
    final class Outcomes: Sendable {
        let seen = Mutex<[Result<Void, BrokerError>]>([])
        func record(_ r: Result<Void, BrokerError>) { seen.withLock { $0.append(r) } }
        var count: Int { seen.withLock { $0.count } }
        var succeeded: Bool { seen.withLock { $0.count == 1 && (try? $0[0].get()) != nil } }
    }

    @Test func aReplyEndsTheWaitAndTheLaterConfirmIsIgnored() {
        let settler = PublishSettler(), outcomes = Outcomes()
        settler.wait(outcomes.record)
        #expect(outcomes.count == 0)
        settler.settle()
        settler.settle(.failure(BrokerError(.connectionLost, operation: "basic.publish")))  // the confirm, too late
        #expect(outcomes.succeeded)
    }

    @Test func aReplyBeforeTheWaitStartsIsKept() {
        let settler = PublishSettler(), outcomes = Outcomes()
        settler.settle()
        settler.wait(outcomes.record)
        #expect(outcomes.succeeded)
    }

    @Test func withoutAReplyTheConfirmsOutcomeIsReturned() {
        let settler = PublishSettler(), outcomes = Outcomes()
        settler.wait(outcomes.record)
        settler.settle(.failure(BrokerError(.publishNacked, operation: "basic.publish")))
        settler.settle()
        #expect(outcomes.count == 1)
        #expect(outcomes.seen.withLock { if case .failure(let e) = $0[0] { e.code == .publishNacked } else { false } })
    }
}
