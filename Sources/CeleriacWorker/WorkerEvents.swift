import CeleriacBroker
import CeleriacCore
import CeleriacMessaging
import FoundationEssentials
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The Lamport clock of a worker's remote-control replies and events.
final class LamportClock: Sendable {
    private let value = Atomic<Int>(0)
    /// Advances the clock and returns the new value.
    func tick() -> Int { value.add(1, ordering: .relaxed).newValue }
    var now: Int { value.load(ordering: .relaxed) }
}

/// Celery events (wire spec §8) on the topic exchange `celeryev`, so `celery events`, Flower and other monitors
/// see Celeriac workers and their tasks. Sent only when enabled (`-E`, or the `enable_events` control command).
///
/// Worker events: `worker-online`, `worker-heartbeat` every 2 s, `worker-offline`. Task events: `task-received`,
/// `task-started`, `task-succeeded`, `task-failed`, `task-retried`, `task-revoked` (batched as `task.multi`,
/// like Celery's). Each is published without waiting for its confirm: events are transient (delivery mode 1)
/// and must not slow the task path.
///
/// A component of its own: it owns the on/off switch, the pending batch and the identity fields, and knows of the
/// worker only its node name, where to publish and the Lamport clock; the worker's counts come with each call.
final class WorkerEvents: Sendable {
    static let exchange = "celeryev"
    static let heartbeatInterval: Duration = .seconds(2)
    let hostname: String
    let publisher: any MessagePublishing
    let lamport: LamportClock
    private let switchedOn: Atomic<Bool>
    /// Task events waiting to be sent as one `task.multi` batch.
    private let buffer = Mutex(Batch())
    /// The hostname, utcoffset and pid fields of every event, serialized once.
    private let identity: [UInt8]

    init(hostname: String, enabled: Bool, publisher: any MessagePublishing, lamport: LamportClock) {
        self.hostname = hostname
        self.publisher = publisher
        self.lamport = lamport
        self.switchedOn = Atomic(enabled)
        self.identity = Self.identityFields(hostname: hostname)
    }

    /// What a worker event reports of the worker now.
    struct Status: Sendable {
        var active: Int
        var processed: Int
    }

    static func declare(on connection: any TopologyDeclaring) async throws {
        try await connection.declare(ExchangeSpec(exchange, kind: .topic, durable: true))
    }

    var enabled: Bool { switchedOn.load(ordering: .relaxed) }
    func setEnabled(_ on: Bool) { switchedOn.store(on, ordering: .relaxed) }

    /// Task events are buffered and sent as Celery does, as a JSON array with routing key `task.multi`, when 100
    /// are waiting or at the latest 50 ms later (one flusher wakes every 50 ms while events are on): one publish
    /// per batch instead of three per task, and no timer per batch.
    static let batchSize = 100
    static let batchDelay: Duration = .milliseconds(50)

    /// A worker event (online, heartbeat, offline): rare, so its fields come as a list.
    func send(_ type: String, _ fields: KeyValuePairs<String, JSONValue>) {
        guard enabled else { return }
        var body = JSONObjectWriter()
        for (key, value) in fields { body.add(key, value) }
        addCommonFields(&body, type: type, now: Date().timeIntervalSince1970)
        publish(routingKey: type.replacing("-", with: "."), body: body.finish())
    }

    /// A task event, written field by field straight into the batch being filled (no list of fields, no buffer of
    /// its own: this runs three times per task); sends the batch when it is full.
    func sendTaskEvent(_ type: String, _ fields: (inout JSONObjectWriter) -> Void) {
        guard enabled else { return }
        let now = Date().timeIntervalSince1970
        let full = self.buffer.withLock { buffer -> [UInt8]? in
            buffer.bytes.append(buffer.count == 0 ? UInt8(ascii: "[") : UInt8(ascii: ","))
            JSONObjectWriter.append(to: &buffer.bytes) { body in
                fields(&body)
                addCommonFields(&body, type: type, now: now)
            }
            buffer.count += 1
            return buffer.count >= Self.batchSize ? Self.take(&buffer) : nil
        }
        if let full { publish(routingKey: "task.multi", body: full) }
    }

    /// What every event ends with: hostname, utcoffset and pid (written once per worker, ``identityFields(hostname:)``),
    /// then clock, timestamp and type.
    private func addCommonFields(_ body: inout JSONObjectWriter, type: String, now: Double) {
        body.add(fragment: identity)
        body.add("clock", int: lamport.tick())
        body.add("timestamp", seconds: now)
        body.add("type", string: type)
    }

    /// `"hostname":…,"utcoffset":0,"pid":…`, the same in every event of a worker.
    static func identityFields(hostname: String) -> [UInt8] {
        JSONObjectWriter.fragment(["hostname": .string(hostname), "utcoffset": .int(0), "pid": .int(Int64(pid))])
    }

    /// Sends the buffered task events every ``batchDelay`` until cancelled (runs beside ``heartbeats()``).
    func flusher() async {
        while !Task.isCancelled {
            // Events off (the `enable_events` command can turn them on): look again in a second, no 20 Hz wake-ups.
            do { try await Task.sleep(for: enabled ? Self.batchDelay : .seconds(1)) } catch { return }
            flush()
        }
    }

    /// Task events waiting to be sent: a JSON array being written (`[` and the events so far, without `]`).
    struct Batch: Sendable {
        var bytes: [UInt8] = []
        var count = 0
    }

    /// Closes the batch's array, returns it and starts a new one.
    static func take(_ batch: inout Batch) -> [UInt8] {
        var bytes: [UInt8] = []
        swap(&bytes, &batch.bytes)  // taken, not copied: the batch's array is then referenced once
        bytes.append(UInt8(ascii: "]"))
        batch = Batch()
        batch.bytes.reserveCapacity(bytes.count)
        return bytes
    }

    static let pid = getpid()

    /// Sends whatever task events are buffered now.
    func flush() {
        let pending = self.buffer.withLock { buffer -> [UInt8]? in
            buffer.count == 0 ? nil : Self.take(&buffer)
        }
        guard let pending else { return }
        publish(routingKey: "task.multi", body: pending)
    }

    private func publish(routingKey: String, body: [UInt8]) {
        let message = OutgoingMessage(
            exchange: Self.exchange, routingKey: routingKey, body: body,
            properties: BasicProperties(
                contentType: "application/json", contentEncoding: "utf-8",
                headers: ["hostname": .string(hostname)], deliveryMode: 1))
        publisher.publishInBackground(message)
    }

    func workerFields(_ status: Status) -> KeyValuePairs<String, JSONValue> {
        var load = [Double](repeating: 0, count: 3)
        _ = getloadavg(&load, 3)
        return [
            "freq": .double(2.0), "active": .int(Int64(status.active)),
            "processed": .int(Int64(status.processed)),
            "loadavg": .array(load.map { .double(($0 * 100).rounded() / 100) }),
            "sw_ident": "celeriac", "sw_ver": .string(WorkerEvents.version), "sw_sys": "Linux",
        ]
    }

    static let version = "0.1.0"

    /// Sends worker-online, then a heartbeat every 2 s until cancelled.
    func heartbeats(status: @Sendable () -> Status) async {
        var announced = false
        while !Task.isCancelled {
            if enabled {
                send(announced ? "worker-heartbeat" : "worker-online", workerFields(status()))
                announced = true
            }
            do { try await Task.sleep(for: Self.heartbeatInterval) } catch { return }
        }
    }

    func offline(_ status: Status) {
        flush()
        if enabled { send("worker-offline", workerFields(status)) }
    }

    func received(_ m: TaskMessage) {
        sendTaskEvent("task-received") { e in
            e.add("uuid", string: m.id)
            e.add("name", string: m.name)
            e.add("args", string: m.argsRepr ?? PythonRepr.args(m.args))
            e.add("kwargs", string: m.kwargsRepr ?? PythonRepr.kwargs(m.kwargs))
            e.add("root_id", string: m.rootID)
            e.add("parent_id", string: m.parentID)
            e.add("retries", int: m.retries)
            e.add("eta", string: m.eta.map(ISOTime.format))
            e.add("expires", string: m.expires.map(ISOTime.format))
        }
    }

    func started(_ m: TaskMessage) { sendTaskEvent("task-started") { $0.add("uuid", string: m.id) } }

    func succeeded(_ m: TaskMessage, result: JSONValue, runtime: Double) {
        sendTaskEvent("task-succeeded") { e in
            e.add("uuid", string: m.id)
            e.add("result", string: PythonRepr.repr(result))
            e.add("runtime", seconds: runtime)
        }
    }

    func failed(_ m: TaskMessage, _ f: TaskFailure) {
        let args = f.arguments.map(PythonRepr.repr).joined(separator: ", ")
        sendTaskEvent("task-failed") { e in
            e.add("uuid", string: m.id)
            e.add("exception", string: "\(f.type)(\(args))")
            e.add("traceback", string: f.traceback ?? "")
        }
    }

    func retried(_ m: TaskMessage, after: Double) {
        sendTaskEvent("task-retried") { e in
            e.add("uuid", string: m.id)
            e.add("exception", string: "Retry(in \(after)s)")
            e.add("traceback", string: "")
        }
    }

    func revoked(_ m: TaskMessage, reason: String) {
        sendTaskEvent("task-revoked") { e in
            e.add("uuid", string: m.id)
            e.add("terminated", bool: reason == "terminated")
            e.addNull("signum")
            e.add("expired", bool: reason == "expired")
        }
    }
}
