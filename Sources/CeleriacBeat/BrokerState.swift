import CeleriacBroker
import Foundation
import Logging

/// The state snapshot shared through the broker, so a beat on another host resumes where the leader stopped.
///
/// A durable queue (default `celeriac.beat.state`) with `x-max-length: 1`: every save publishes the whole state
/// as a persistent message and the broker drops the older one; a new leader reads it with basic.get and puts it
/// back (reject with requeue), so it stays for the next one.
public final class BrokerStateStore: BeatStateStore {
    /// The durable state queue (the CLI uses `NAME.state`, by default `celeriac.beat.state`).
    public let queue: String
    /// A quorum queue (beats of a RabbitMQ cluster: `--queue-type quorum`), so the state survives losing a node.
    public let quorum: Bool
    let connection: any BrokerConnection
    let logger: Logger

    /// A store on `connection`, which the caller connects before the first ``load()`` or ``save(_:)``.
    public init(connection: any BrokerConnection, queue: String, logger: Logger, quorum: Bool = false) {
        self.connection = connection
        self.queue = queue
        self.logger = logger
        self.quorum = quorum
    }

    /// The state queue's declaration: durable, `x-max-length: 1` (only the newest snapshot stays), a quorum queue when
    /// `quorum` is true. Every beat of a group must declare it the same way, or the broker refuses the declare.
    public static func spec(_ queue: String, quorum: Bool = false) -> QueueSpec {
        let spec = QueueSpec(queue, durable: true).with("x-max-length", .int(1))
        return quorum ? spec.quorum() : spec
    }

    /// Declares the state queue (idempotent).
    ///
    /// - Throws: the `BrokerError` of the declare, e.g. when the connection is down or the queue exists with other
    ///   arguments.
    public func prepare() async throws(BrokerError) {
        try await connection.declare(Self.spec(queue, quorum: quorum))
    }

    /// Declares the queue, reads the snapshot with basic.get and puts it back (reject with requeue) for the next
    /// leader. Returns an empty state, after logging an error, when the queue is empty, the broker cannot be read or
    /// the snapshot is not valid state JSON.
    public func load() async -> BeatState {
        do {
            try await prepare()
            guard let d = try await connection.get(queue: queue, noAck: false) else { return BeatState() }
            _ = await connection.reject(d.tag, requeue: true)
            do { return try BeatState.decode(d.body) } catch {
                logger.error(
                    "the beat state snapshot on the broker is not valid; ignoring it",
                    metadata: ["queue": .string(queue), "error": .string("\(error)")])
                return BeatState()
            }
        } catch {
            logger.error(
                "could not read the beat state snapshot from the broker",
                metadata: ["queue": .string(queue), "error": .string("\(error)")])
            return BeatState()
        }
    }

    /// The snapshot as a persistent message for the state queue.
    public static func message(_ state: BeatState, queue: String) -> OutgoingMessage {
        OutgoingMessage(
            routingKey: queue, body: state.encoded(),
            properties: BasicProperties(contentType: "application/json", deliveryMode: 2))
    }

    /// Publishes the whole state as the new snapshot; the queue's length limit drops the older one. A failed publish is
    /// logged, not thrown.
    public func save(_ state: BeatState) async {
        let message = Self.message(state, queue: queue)
        do { try await connection.publish(message) } catch {
            logger.error(
                "could not publish the beat state snapshot",
                metadata: ["queue": .string(queue), "error": .string("\(error)")])
        }
    }
}
