import CeleriacBroker
import CeleriacCore
import FoundationEssentials
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Celery's `task-sent` event (wire spec §8.2), sent by a client that enables
/// ``CeleriacClient/Configuration/sendSentEvents``: a single JSON object, routing key `task.sent`, transient,
/// published without waiting for a confirm (an event must not slow the send).
final class SentEvents: Sendable {
    static let exchange = "celeryev"
    private let clock = Atomic<Int>(0)

    func event(for m: TaskMessage, queue: String, routingKey: String, exchange: String) -> OutgoingMessage {
        let hostname = Origin.current
        let body: JSONObject = [
            "hostname": .string(hostname), "utcoffset": .int(0), "pid": .int(Int64(getpid())),
            "clock": .int(Int64(clock.add(1, ordering: .relaxed).newValue)),
            "timestamp": .double(Date().timeIntervalSince1970),
            "type": "task-sent",
            "uuid": .string(m.id), "root_id": .string(m.rootID ?? m.id),
            "parent_id": m.parentID.map { .string($0) } ?? .null,
            "name": .string(m.name), "args": .string(m.argsRepr ?? PythonRepr.args(m.args)),
            "kwargs": .string(m.kwargsRepr ?? PythonRepr.kwargs(m.kwargs)), "retries": .int(Int64(m.retries)),
            "eta": m.eta.map { .string(ISOTime.format($0)) } ?? .null,
            "expires": m.expires.map { .string(ISOTime.format($0)) } ?? .null,
            "queue": .string(queue), "exchange": .string(exchange), "routing_key": .string(routingKey),
        ]
        return OutgoingMessage(
            exchange: Self.exchange, routingKey: "task.sent", body: JSONValue.object(body).jsonBytes,
            properties: BasicProperties(
                contentType: "application/json", contentEncoding: "utf-8",
                headers: ["hostname": .string(hostname)], deliveryMode: 1))
    }
}
