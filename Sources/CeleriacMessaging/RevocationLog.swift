import CeleriacBroker
import CeleriacCore
import FoundationEssentials

/// Durable, cluster-wide revocations kept on the broker.
///
/// Celery keeps revoked ids in each worker's memory only, so a worker that starts after the broadcast runs the
/// revoked task anyway (celery#7529, flower#736). Celeriac also appends every revocation to a RabbitMQ
/// **stream** queue, `celeriac.revoked`: a stream is read without being consumed away, by every reader, from its
/// first entry, and it drops entries older than ``retention`` by itself. Every worker replays it at start-up
/// (before it consumes tasks) and follows it while running.
///
/// Writers: ``ControlClient/revoke(_:terminate:timeout:)`` (and `celeriac inspect`'s `control revoke`), and
/// workers that receive a plain Celery `revoke` broadcast (e.g. from `celery control revoke`) and do not see it
/// in the log yet.
///
/// Entries are JSON objects: `{"revoke": ID, "at": UNIX_SECONDS, "terminate": BOOL, "by": WHO}`; a worker's
/// start-up marker is `{"marker": TOKEN}` (it reads up to its own marker to know the replay is complete).
public enum RevocationLog {
    /// The stream queue's name.
    public static let queue = "celeriac.revoked"
    /// How long a revocation is remembered (Celery's default `REVOKE_EXPIRES`): 3 hours.
    public static let retention: Duration = .seconds(3 * 3600)

    /// The stream's declaration: durable, `x-queue-type: stream`, entries dropped after 3 hours (`x-max-age`) or beyond
    /// 64 MiB in total, 1 MiB segments. Workers and clients declare it with the same arguments.
    public static var spec: QueueSpec {
        QueueSpec(
            queue, durable: true,
            arguments: [
                "x-queue-type": .string("stream"),
                "x-max-age": .string("3h"),
                "x-max-length-bytes": .int64(64 * 1024 * 1024),
                "x-stream-max-segment-size-bytes": .int64(1024 * 1024),
            ])
    }

    /// Declares the stream (idempotent).
    ///
    /// - Throws: the `BrokerError` of the declare, e.g. when the broker has no stream support.
    public static func declare(on connection: any TopologyDeclaring) async throws(BrokerError) {
        _ = try await connection.declare(spec)
    }

    /// One entry of the stream, as ``decode(_:)`` reads it.
    public enum Record: Sendable, Equatable {
        case revoke(id: String, at: Double, terminate: Bool)
        case marker(String)
    }

    /// A revocation entry to publish: task `id`, whether to `terminate` it if it is running, who revoked it (`by`, e.g.
    /// `client` or a worker's name) and when (`at`, Unix seconds, now by default).
    public static func entry(id: String, terminate: Bool, by: String, at: Double = Date().timeIntervalSince1970)
        -> OutgoingMessage
    {
        message(["revoke": .string(id), "at": .double(at), "terminate": .bool(terminate), "by": .string(by)])
    }

    /// A worker's start-up marker carrying its own `token`: reading up to it ends that worker's replay.
    public static func marker(_ token: String) -> OutgoingMessage { message(["marker": .string(token)]) }

    /// Reads one stream entry; nil for a body that is neither a revocation nor a marker. A revocation without `at` gets
    /// the current time, one without `terminate` false.
    public static func decode(_ body: [UInt8]) -> Record? {
        guard let value = try? JSONValue.parse(body) else { return nil }
        if let token = value["marker"]?.stringValue { return .marker(token) }
        guard let id = value["revoke"]?.stringValue, !id.isEmpty else { return nil }
        return .revoke(
            id: id, at: value["at"]?.doubleValue ?? Date().timeIntervalSince1970,
            terminate: value["terminate"]?.boolValue ?? false)
    }

    /// Consumer arguments that read the stream from its first retained entry.
    public static let fromFirst: FieldTable = ["x-stream-offset": .string("first")]

    static func message(_ object: JSONObject) -> OutgoingMessage {
        OutgoingMessage(
            exchange: "", routingKey: queue, body: JSONValue.object(object).jsonBytes,
            properties: BasicProperties(contentType: "application/json", contentEncoding: "utf-8", deliveryMode: 2))
    }
}
