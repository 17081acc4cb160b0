import CeleriacBroker
import FoundationEssentials

/// The broker behaviours Celeriac relies on, written once against the ports and run on every broker: RabbitMQ in
/// the integration tests, ``InMemoryBroker`` in the unit tests. A behaviour pinned here may be used by a worker
/// test on the in-memory broker; anything else stays an integration test.
///
/// A broker of your own can run it too:
///
/// ```swift
/// @Test(arguments: BrokerContract.cases)
/// func myBrokerKeepsTheContract(_ contract: BrokerContract.Case) async throws {
///     let clock = ManualClock()
///     try await contract.run(in: .init(broker: MyBroker(clock: clock), pass: { await clock.advance(by: $0) }))
/// }
/// ```
public enum BrokerContract {
    /// What a case needs besides the broker.
    public struct Environment: Sendable {
        /// The broker under test.
        public var broker: any Broker
        /// Lets time pass for the broker: a manual clock's advance, or a real wait for RabbitMQ.
        public var pass: @Sendable (Duration) async -> Void
        /// How late the broker may apply housekeeping that no event announces (a queue's `x-expires`).
        public var slack: Duration
        /// Raises and clears a resource alarm, on a broker of its own (RabbitMQ's alarm is node-wide).
        public var alarm: Alarm?

        /// An environment for `broker`. `slack` is zero by default (right for a manual clock); with no `alarm`, the
        /// blocked-publisher case fails saying one is needed.
        public init(
            broker: any Broker, pass: @escaping @Sendable (Duration) async -> Void, slack: Duration = .zero,
            alarm: Alarm? = nil
        ) {
            self.broker = broker
            self.pass = pass
            self.slack = slack
            self.alarm = alarm
        }
    }

    /// A broker that can be made to block publishers.
    public struct Alarm: Sendable {
        /// The broker whose connections the alarm blocks.
        public var broker: any Broker
        /// Raises the alarm: from then on the broker blocks publishers (connection.blocked).
        public var raise: @Sendable () async throws -> Void
        /// Clears the alarm: publishes flow again.
        public var clear: @Sendable () async throws -> Void

        /// An alarm on `broker`, raised and cleared by the given closures.
        public init(
            broker: any Broker, raise: @escaping @Sendable () async throws -> Void,
            clear: @escaping @Sendable () async throws -> Void
        ) {
            self.broker = broker
            self.raise = raise
            self.clear = clear
        }
    }

    /// One behaviour.
    public struct Case: Sendable, CustomStringConvertible {
        /// The behaviour in one sentence, e.g. `a nack with requeue redelivers with the redelivered flag`.
        public let name: String
        let body: @Sendable (Environment, Names) async throws -> Void

        /// Runs the case; throws ``ContractViolation`` saying what did not hold.
        public func run(in environment: Environment) async throws {
            try await body(environment, Names())
        }

        /// The case's ``name``, as test reports show it.
        public var description: String { name }
    }

    /// Fresh names for one run, so that runs never meet on a shared broker.
    struct Names: Sendable {
        let prefix = "contract-\(UUID().uuidString.prefix(8).lowercased())"
        func queue(_ role: String) -> String { "\(prefix).\(role)" }
    }

    /// Every case, in the order the issue lists the behaviours.
    public static let cases: [Case] = [
        Case(
            name: "an unacked delivery comes back, redelivered, when its connection goes",
            body: lateAckRedeliversAfterTheConnectionGoes),
        Case(name: "a nack with requeue redelivers with the redelivered flag", body: nackWithRequeueRedelivers),
        Case(
            name: "a consumer holds at most its prefetch of unacked deliveries", body: prefetchBoundsUnackedDeliveries),
        Case(name: "a consumer is cancelled when its queue is deleted", body: consumerIsCancelledWhenItsQueueGoes),
        Case(
            name: "every delivery made before a cancel reaches the consumer",
            body: deliveriesMadeBeforeACancelReachTheConsumer),
        Case(
            name: "a rejected message is dead-lettered with x-death, as dlq list reads it",
            body: rejectedMessagesAreDeadLettered),
        Case(
            name: "a message past its TTL is dead-lettered as expired, never before",
            body: expiredMessagesAreDeadLettered),
        Case(
            name: "Celery's delayed delivery releases a message after its delay, never early",
            body: delayedDeliveryIsNeverEarly),
        Case(
            name: "results reach the reply queue with their correlation ids, in order",
            body: resultsAreRoutedByCorrelationID),
        Case(name: "an unused reply queue expires after x-expires", body: anUnusedQueueExpires),
        Case(name: "higher priorities are delivered first", body: higherPrioritiesComeFirst),
        Case(
            name:
                "a confirmed publish returns; a full reject-publish queue nacks; a mandatory message with no route fails",
            body: publishConfirmsAndRefusals),
        Case(
            name: "publishes during an alarm fail as blocked within their bound and succeed after it",
            body: aBlockedConnectionFailsPublishesWithinItsBound),
        Case(
            name: "an exclusive queue is a lock: 405 for others until its owner's connection closes",
            body: anExclusiveQueueIsALock),
        Case(
            name: "a stream is replayed from the first entry by every new consumer",
            body: aStreamReplaysFromTheFirstEntry),
        Case(
            name: "basic.get takes one message with the count left; an auto-delete queue goes with its last consumer",
            body: getCountsAndAutoDelete),
        Case(
            name: "a topic binding routes by pattern; a redeclare with other arguments is a 406",
            body: topicRoutingAndEquivalence),
    ]
}
