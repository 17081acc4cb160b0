import AMQPTransport
import CeleriacCore
import CeleriacMessaging
import CeleriacWorker
import Foundation

/// `compact`: issue #23's eighth target. A worker drains `n` queued no-op tasks in Celery's form and in the compact
/// form, and the bare transport consumes and acks `n` Celery-shaped messages and `n` plain persistent messages (no
/// headers) with a body the size of the compact message's, all at the worker's prefetch, interleaved `repeats`
/// times. Prints the medians, the message sizes and the ratios (target: the compact drain ≥ 0.75 of the plain
/// consume).
struct CompactBench {
    let url: AMQPURL
    let n: Int
    let repeats: Int
    let processPool: Bool
    let concurrency: Int
    let prefetchMultiplier: Int

    func run() async throws {
        let drains = DefaultsBench(url: url, n: n, repeats: repeats)
        let configuration = Worker.Configuration.fixedPrefetch(
            concurrency: concurrency, prefetchMultiplier: prefetchMultiplier)
        let celery = TaskCodec.encode(TaskMessage(name: "demo.noop"), routingKey: "q")
        let compact = TaskCodec.encode(TaskMessage(name: "demo.noop"), routingKey: "q", form: .compact)
        // What the broker receives per message: the content header's properties and the body.
        func size(_ m: OutgoingMessage) -> Double {
            Double((ContentHeaderCodec.encode(m.properties)?.count ?? 0) + m.body.count)
        }
        emit("compact.celery_message_bytes", size(celery), "bytes")
        emit("compact.compact_message_bytes", size(compact), "bytes")
        emit("compact.prefetch", Double(configuration.prefetch), "messages")
        let plain = OutgoingMessage(
            routingKey: "q", body: [UInt8](repeating: UInt8(ascii: "a"), count: compact.body.count),
            properties: BasicProperties(deliveryMode: 2))
        var rates: [String: [Double]] = [:]
        var cpus: [String: [Double]] = [:]
        for i in 1...repeats {
            for form in MessageForm.allCases {
                let r = try await drains.drain(configuration, processPool: processPool, form: form)
                rates["drain_\(form)", default: []].append(r.rate)
                cpus[form.rawValue, default: []].append(r.cpuPerTask)
            }
            rates["raw_celery", default: []].append(try await rawConsume(celery, prefetch: configuration.prefetch))
            rates["raw_plain", default: []].append(try await rawConsume(plain, prefetch: configuration.prefetch))
            let last = { (name: String) in Int(rates[name]?.last ?? 0) }
            note(
                "compact run \(i): drain, Celery form \(last("drain_celery")) and compact \(last("drain_compact")) tasks/s;"
                    + " raw consume, Celery-shaped \(last("raw_celery")) and plain \(last("raw_plain")) msg/s")
        }
        let median = { (name: String) in percentile(rates[name] ?? [], 0.5) }
        emit("compact.drain_celery_form", median("drain_celery"), "tasks/s")
        emit("compact.drain_compact_form", median("drain_compact"), "tasks/s")
        emit("compact.cpu_per_task_celery_form", percentile(cpus["celery"] ?? [], 0.5), "us")
        emit("compact.cpu_per_task_compact_form", percentile(cpus["compact"] ?? [], 0.5), "us")
        emit("compact.raw_consume_celery_shaped", median("raw_celery"), "msg/s")
        emit("compact.raw_consume_plain_same_size", median("raw_plain"), "msg/s")
        emit("ratio.compact.drain_vs_raw_plain", median("drain_compact") / median("raw_plain"), "x")
        emit("ratio.compact.drain_vs_celery_form", median("drain_compact") / median("drain_celery"), "x")
        emit("ratio.compact.celery_form_drain_vs_raw_celery", median("drain_celery") / median("raw_celery"), "x")
    }

    /// Consume+ack rate of `n` copies of `message`, queued first, at `prefetch`, on the connection's thread.
    func rawConsume(_ message: OutgoingMessage, prefetch: Int) async throws -> Double {
        let c = AMQPConnection(url: url, options: .init(name: "bench-compact-raw", confirms: true))
        try await c.connect()
        let q = benchQueue("compact-raw")
        try await c.declare(QueueSpec(q).expires(milliseconds: 600_000))
        var m = message
        m.routingKey = q
        for batch in stride(from: 0, to: n, by: 1000) {
            try await c.publish([OutgoingMessage](repeating: m, count: min(1000, n - batch)))
        }
        let rate = try await AMQPBench(url: url, n: n, rounds: 0).consumeAll(
            c, queue: q, count: n, prefetch: UInt16(clamping: prefetch))
        try await c.deleteQueue(q)
        await c.close()
        return rate
    }
}
