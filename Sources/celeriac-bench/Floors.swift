import AMQPTransport
import CeleriacCore
import CeleriacMessaging

/// The broker's floor for a task's round trip (issue #23, targets 3 and 6), measured in the run that needs it: a raw
/// requester publishes a persistent Celery-shaped `demo.add(2, 2)` into a durable queue, and a raw responder answers
/// each with a ready-made persistent Celery result into a durable reply queue, both on their connection's thread: no
/// decoding, no task. `rounds` round trips after 20 for warm-up; milliseconds each.
///
/// The responder answers on its consuming connection without a confirm, or, with `confirmedResults`, as a worker that
/// must not lose a result answers: on a second connection in confirm mode, each task acked only once its result is
/// confirmed, without holding up the next task. The difference between the two is what the confirm costs.
func celeryShapedFloor(url: AMQPURL, rounds: Int, confirmedResults: Bool = false) async throws -> [Double] {
    let requester = AMQPConnection(url: url, options: .init(name: "bench-floor-requester", confirms: false))
    let responder = AMQPConnection(url: url, options: .init(name: "bench-floor-responder", confirms: false))
    let results =
        confirmedResults ? AMQPConnection(url: url, options: .init(name: "bench-floor-results", confirms: true)) : nil
    let connections = [requester, responder] + (results.map { [$0] } ?? [])
    for connection in connections { try await connection.connect() }
    let taskQueue = benchQueue("floor-req"), resultQueue = benchQueue("floor-rep")
    try await requester.declare(QueueSpec(taskQueue).expires(milliseconds: 600_000))
    try await requester.declare(Topology.replyQueue(resultQueue))
    let taskConsumer = try await responder.consume(queue: taskQueue, prefetch: 8)
    let id = "00000000-0000-0000-0000-000000000000"
    let result = ResultCodec.encode(.success(id, .int(4)), replyTo: resultQueue, correlationID: id)
    let answering = Task(executorPreference: responder) {
        for await d in taskConsumer.deliveries {
            guard let results else {
                try? await responder.publish(result)
                responder.ackInBackground(d.tag)
                continue
            }
            Task {
                try? await results.publish(result)
                responder.ackInBackground(d.tag)
            }
        }
    }
    let resultConsumer = try await requester.consume(queue: resultQueue, prefetch: 8)
    let rtts = try await celeryShapedRoundTrips(requester, to: taskQueue, replies: resultConsumer, rounds: rounds)
    answering.cancel()
    try await requester.deleteQueue(taskQueue)
    try await requester.deleteQueue(resultQueue)
    for connection in connections { await connection.close() }
    return rtts
}

/// Publishes a persistent Celery-shaped `demo.add(2, 2)` to `queue` and waits for the reply on `replies`, `rounds`
/// times after 20 for warm-up, all on the connection's own thread (no thread hop); milliseconds each.
func celeryShapedRoundTrips(_ con: AMQPConnection, to queue: String, replies: AMQPConsumer, rounds: Int) async throws
    -> [Double]
{
    try await withTaskExecutorPreference(con) { () async throws -> [Double] in
        var results = replies.deliveries.makeAsyncIterator()
        var rtts: [Double] = []
        for i in 0..<(rounds + 20) {
            let t0 = ContinuousClock.now
            try await con.publish(
                TaskCodec.encode(
                    TaskMessage(name: "demo.add", args: [2, 2], replyTo: replies.queue), routingKey: queue))
            guard let d = await results.next() else { break }
            con.ackInBackground(d.tag)
            if i >= 20 { rtts.append(seconds(ContinuousClock.now - t0) * 1000) }
        }
        return rtts
    }
}
