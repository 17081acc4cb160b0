import CeleriacBroker
import CeleriacCoordination
import CeleriacMessaging
import FoundationEssentials

extension BrokerContract {
    typealias Env = Environment

    static func open(_ env: Env, _ name: String, confirms: Bool = true, blockedTimeout: Duration = .seconds(30))
        async throws -> any BrokerConnection
    {
        let c = env.broker.connection(.init(name: name, confirms: confirms, blockedTimeout: blockedTimeout))
        try await c.connect()
        return c
    }

    /// Waits until `queue` is gone (a passive declare answers 404), for broker housekeeping no event announces.
    static func expectGone(_ queue: String, on c: any BrokerConnection, within limit: Duration, _ what: String)
        async throws
    {
        try await eventually(within: limit, what) {
            do {
                _ = try await c.inspect(queue: queue)
                return false
            } catch let error as BrokerError where error.replyCode == 404 {
                return true
            }
        }
    }

    /// A transient queue that also expires on its own, so that a failed run leaves nothing behind on RabbitMQ.
    static func scratch(_ name: String, _ arguments: FieldTable = [:]) -> QueueSpec {
        var spec = QueueSpec(name, durable: false, arguments: arguments)
        if spec.arguments["x-expires"] == nil { spec = spec.expires(milliseconds: 120_000) }
        return spec
    }

    static func lateAckRedeliversAfterTheConnectionGoes(_ env: Env, _ names: Names) async throws {
        let q = names.queue("late-ack")
        let admin = try await open(env, "contract-admin")
        try await admin.declare(scratch(q))
        try await admin.publish(message("job", to: q))
        let first = try await open(env, "contract-first")
        let taken = try await DeliveryCollector(first.consume(queue: q, prefetch: 1)).wait(for: 1, "the first delivery")
        try check(!taken[0].redelivered, "a first delivery came flagged redelivered")
        await first.close()  // gone without acking: at-least-once means the message comes back
        let second = try await open(env, "contract-second")
        let again = try await DeliveryCollector(second.consume(queue: q, prefetch: 1)).wait(for: 1, "the redelivery")
        try check(
            again[0].text == "job" && again[0].redelivered,
            "expected 'job' redelivered, got '\(again[0].text)' redelivered=\(again[0].redelivered)")
        try check(await second.ack(again[0].tag), "acking the redelivery failed")
        try check(try await admin.inspect(queue: q).messageCount == 0, "the queue is not empty after the ack")
        await second.close()
        try await admin.deleteQueue(q)
        await admin.close()
    }

    static func nackWithRequeueRedelivers(_ env: Env, _ names: Names) async throws {
        let q = names.queue("nack")
        let c = try await open(env, "contract-nack")
        try await c.declare(scratch(q))
        try await c.publish(message("a", to: q))
        try await c.publish(message("b", to: q))
        let got = DeliveryCollector(try await c.consume(queue: q, prefetch: 1))
        let first = try await got.wait(for: 1, "the first delivery")[0]
        try check(first.text == "a", "expected 'a' first, got '\(first.text)'")
        try check(await c.nack(first.tag, requeue: true), "nack failed")
        // Back in its place, ahead of 'b', and flagged.
        let again = try await got.wait(for: 2, "the requeued delivery")[1]
        try check(
            again.text == "a" && again.redelivered,
            "expected 'a' redelivered second, got '\(again.text)' redelivered=\(again.redelivered)")
        await c.ack(again.tag)
        let third = try await got.wait(for: 3, "the next message")[2]
        try check(third.text == "b" && !third.redelivered, "expected 'b' not redelivered, got '\(third.text)'")
        await c.ack(third.tag)
        try await c.deleteQueue(q)
        await c.close()
    }

    /// Publishes that deliver at once race a cancel of the consumer: every delivery made before the cancel reaches
    /// the consumer's stream before it ends (on RabbitMQ they travel ahead of `cancel-ok`), so whatever the stream
    /// did not carry is still ready in the queue, never delivered before (a client that handed such deliveries
    /// back would make them come again, redelivered). A few rounds: the in-memory broker's own test runs many.
    static func deliveriesMadeBeforeACancelReachTheConsumer(_ env: Env, _ names: Names) async throws {
        let q = names.queue("cancel-race")
        let consuming = try await open(env, "contract-cancel-race-consume", confirms: false)
        let publishing = try await open(env, "contract-cancel-race-publish")
        try await publishing.declare(scratch(q))
        let total = 64
        for round in 0..<5 {
            let consumer = try await consuming.consume(queue: q, prefetch: 0)
            var received: [Delivery] = []
            try await withThrowingTaskGroup(of: Void.self) { group in
                for lane in 0..<4 {
                    group.addTask {
                        for i in stride(from: lane, to: total, by: 4) {
                            try await publishing.publish(message("\(i)", to: q))
                        }
                    }
                }
                for await delivery in consumer.deliveries {
                    received.append(delivery)
                    if received.count == 1 + round * 7 { group.addTask { try await consuming.cancel(consumer) } }
                }
                try await group.waitForAll()
            }
            let ready = Int(try await publishing.inspect(queue: q).messageCount)
            try check(
                ready == total - received.count,
                "round \(round): the stream carried \(received.count) of \(total) deliveries but \(ready) are ready; \(total - received.count - ready) are held unacked out of reach"
            )
            if let last = received.last { _ = await consuming.ack(last.tag, multiple: true) }
            while let rest = try await publishing.get(queue: q) {
                try check(!rest.redelivered, "round \(round): a message the stream never carried came back redelivered")
                _ = await publishing.ack(rest.tag)
            }
        }
        try await publishing.deleteQueue(q)
        await consuming.close()
        await publishing.close()
    }

    static func prefetchBoundsUnackedDeliveries(_ env: Env, _ names: Names) async throws {
        let q = names.queue("prefetch")
        let c = try await open(env, "contract-prefetch")
        try await c.declare(scratch(q))
        try await c.publish((1...5).map { message("m\($0)", to: q) })
        let got = DeliveryCollector(try await c.consume(queue: q, prefetch: 2))
        let two = try await got.wait(for: 2, "two deliveries under prefetch 2")
        try check(
            try await c.inspect(queue: q).messageCount == 3, "with 2 unacked under prefetch 2, 3 should stay ready")
        try check(got.items.count == 2, "a consumer with prefetch 2 got \(got.items.count) unacked deliveries")
        await c.ack(two[0].tag)
        let three = try await got.wait(for: 3, "one more after an ack")
        try check(three.map(\.text) == ["m1", "m2", "m3"], "deliveries out of order: \(three.map(\.text))")
        try check(try await c.inspect(queue: q).messageCount == 2, "after one ack, 2 should stay ready")
        await c.ack(three[2].tag, multiple: true)
        try await got.wait(for: 5, "the rest after a multiple ack")
        try await c.deleteQueue(q)
        await c.close()
    }

    static func consumerIsCancelledWhenItsQueueGoes(_ env: Env, _ names: Names) async throws {
        let q = names.queue("cancelled")
        let c = try await open(env, "contract-cancelled")
        let events = c.events()
        try await c.declare(scratch(q))
        let consumer = try await c.consume(queue: q, prefetch: 1, tag: "\(names.prefix)-consumer")
        let got = DeliveryCollector(consumer)
        let admin = try await open(env, "contract-deleter")
        try await admin.deleteQueue(q)
        try await got.waitForEnd("the broker cancelling the consumer of a deleted queue")
        var sawCancel = false
        for await event in events {
            if case .consumerCancelled(let tag) = event, tag == consumer.tag { sawCancel = true; break }
        }
        try check(sawCancel, "no consumerCancelled event for \(consumer.tag)")
        await admin.close()
        await c.close()
    }

    static func rejectedMessagesAreDeadLettered(_ env: Env, _ names: Names) async throws {
        let q = names.queue("work"), dlx = names.queue("dlx"), dead = names.queue("dead")
        let c = try await open(env, "contract-dead-letter")
        try await c.declare(ExchangeSpec(dlx, kind: .topic, durable: false, autoDelete: false))
        try await c.declare(scratch(dead))
        try await c.bind(BindingSpec(queue: dead, exchange: dlx, routingKey: "#"))
        try await c.declare(scratch(q, ["x-dead-letter-exchange": .string(dlx)]))
        var props = BasicProperties(correlationID: "id-1")
        props.headers = ["id": .string("id-1"), "task": .string("demo.add")]
        try await c.publish(message("body", to: q, properties: props))
        let got = DeliveryCollector(try await c.consume(queue: q, prefetch: 1))
        let d = try await got.wait(for: 1, "the message to reject")[0]
        try check(await c.reject(d.tag, requeue: false), "reject failed")
        let inDeadConsumer = try await c.consume(queue: dead, prefetch: 1)
        let inDead = DeliveryCollector(inDeadConsumer)
        let copy = try await inDead.wait(for: 1, "the dead-lettered copy")[0]
        try check(
            copy.text == "body" && copy.routingKey == q, "dead copy has body '\(copy.text)' key '\(copy.routingKey)'")
        guard case .array(let deaths)? = copy.properties.headers?["x-death"], case .table(let death)? = deaths.first
        else {
            throw ContractViolation(
                "no x-death header on the dead-lettered copy: \(String(describing: copy.properties.headers))")
        }
        try check(
            death["reason"]?.stringValue == "rejected" && death["queue"]?.stringValue == q,
            "x-death says reason \(String(describing: death["reason"])) queue \(String(describing: death["queue"]))")
        try check(death["count"]?.intValue == 1, "x-death count \(String(describing: death["count"]))")
        try check(
            copy.properties.headers?["x-first-death-reason"]?.stringValue == "rejected", "no x-first-death-reason")
        // What `celeriac dlq list` shows for it (it reads with basic.get, so the looking consumer goes first).
        try await c.cancel(inDeadConsumer)
        await c.reject(copy.tag, requeue: true)
        let entries = try await DeadLetterQueue(connection: c, queue: dead).list()
        try check(
            entries.count == 1 && entries[0].reason == "broker: rejected" && entries[0].taskID == "id-1"
                && entries[0].task == "demo.add",
            "dlq list read \(entries.map { "\($0.taskID) \($0.task) \($0.reason) \($0.queue)" })")
        try await c.deleteQueue(q)
        try await c.deleteQueue(dead)
        try await c.deleteExchange(dlx)
        await c.close()
    }

    static func expiredMessagesAreDeadLettered(_ env: Env, _ names: Names) async throws {
        let q = names.queue("ttl"), dead = names.queue("expired")
        let c = try await open(env, "contract-ttl")
        try await c.declare(scratch(dead))
        try await c.declare(
            scratch(
                q,
                [
                    "x-message-ttl": .int(1000), "x-dead-letter-exchange": .string(""),
                    "x-dead-letter-routing-key": .string(dead),
                ]))
        try await c.publish(message("later", to: q))
        await env.pass(.milliseconds(400))
        try check(
            try await c.inspect(queue: dead).messageCount == 0, "a message with a 1 s TTL was dead-lettered after 0.4 s"
        )
        try check(try await c.inspect(queue: q).messageCount == 1, "the message left its TTL queue early")
        await env.pass(.milliseconds(700))
        let got = DeliveryCollector(try await c.consume(queue: dead, prefetch: 1))
        let d = try await got.wait(for: 1, within: .seconds(10) + env.slack, "the expired message")[0]
        if case .array(let deaths)? = d.properties.headers?["x-death"], case .table(let death)? = deaths.first {
            try check(
                death["reason"]?.stringValue == "expired", "x-death reason \(String(describing: death["reason"]))")
        } else {
            throw ContractViolation("no x-death on the expired message")
        }
        await c.ack(d.tag)
        try await c.deleteQueue(q)
        try await c.deleteQueue(dead)
        await c.close()
    }

    static func delayedDeliveryIsNeverEarly(_ env: Env, _ names: Names) async throws {
        let q = names.queue("delayed")
        let c = try await open(env, "contract-delay")
        try await c.declare(scratch(q))
        try await DelayTopology.declare(on: c, queues: [q])
        // As a client sends a countdown: into the top level of the delay topology.
        try await c.publish(
            OutgoingMessage(
                exchange: Topology.delayLevel(Topology.delayLevels - 1),
                routingKey: Topology.delayRoutingKey(seconds: 1, routingKey: q), body: Array("eta".utf8),
                properties: BasicProperties(deliveryMode: 2)))
        await env.pass(.milliseconds(500))
        try check(
            try await c.inspect(queue: q).messageCount == 0, "a 1 s delayed message reached its queue after 0.5 s")
        await env.pass(.milliseconds(600))
        let got = DeliveryCollector(try await c.consume(queue: q, prefetch: 1))
        let d = try await got.wait(for: 1, within: .seconds(10) + env.slack, "the delayed message")[0]
        try check(d.text == "eta", "delayed body '\(d.text)'")
        await c.ack(d.tag)
        try await c.deleteQueue(q)
        await c.close()
    }

    static func resultsAreRoutedByCorrelationID(_ env: Env, _ names: Names) async throws {
        let reply = names.queue("reply")
        let client = try await open(env, "contract-client")
        try await client.declare(Topology.replyQueue(reply, expiresMilliseconds: 120_000))
        let got = DeliveryCollector(try await client.consume(queue: reply, prefetch: 0))
        let worker = try await open(env, "contract-worker")
        let ids = (1...3).map { "task-\($0)" }
        for id in ids {
            try await worker.publish(
                OutgoingMessage(
                    routingKey: reply, body: Array("{\"task_id\":\"\(id)\"}".utf8),
                    properties: BasicProperties(
                        contentType: "application/json", deliveryMode: 2,
                        correlationID: id)))
        }
        let results = try await got.wait(for: 3, "three results")
        try check(
            results.map { $0.properties.correlationID ?? "" } == ids,
            "correlation ids \(results.map { $0.properties.correlationID ?? "-" })")
        for r in results { client.ackInBackground(r.tag) }
        await worker.close()
        try await client.deleteQueue(reply)
        await client.close()
    }

    static func anUnusedQueueExpires(_ env: Env, _ names: Names) async throws {
        let reply = names.queue("expiring")
        let c = try await open(env, "contract-expiry")
        try await c.declare(Topology.replyQueue(reply, expiresMilliseconds: 1000))
        await env.pass(.milliseconds(300))
        _ = try await c.inspect(queue: reply)  // still there
        await env.pass(.milliseconds(1200))
        try await expectGone(
            reply, on: c, within: env.slack + .milliseconds(100),
            "the unused queue \(reply) with x-expires 1 s was not deleted")
        await c.close()
    }

    static func higherPrioritiesComeFirst(_ env: Env, _ names: Names) async throws {
        let q = names.queue("priority")
        let c = try await open(env, "contract-priority")
        try await c.declare(scratch(q).maxPriority(9))
        try await c.publish(message("low", to: q, properties: BasicProperties(priority: 1)))
        try await c.publish(message("none", to: q))
        try await c.publish(message("high", to: q, properties: BasicProperties(priority: 9)))
        try await c.publish(message("mid", to: q, properties: BasicProperties(priority: 5)))
        let got = try await DeliveryCollector(c.consume(queue: q, prefetch: 0, tag: nil, noAck: true)).wait(
            for: 4, "four messages")
        try check(got.map(\.text) == ["high", "mid", "low", "none"], "priority order \(got.map(\.text))")
        try await c.deleteQueue(q)
        await c.close()
    }

    static func publishConfirmsAndRefusals(_ env: Env, _ names: Names) async throws {
        let q = names.queue("bounded")
        let c = try await open(env, "contract-confirms")
        try await c.declare(scratch(q, ["x-max-length": .int(1), "x-overflow": .string("reject-publish")]))
        try await c.publish(message("fits", to: q))
        do {
            try await c.publish(message("too many", to: q))
            throw ContractViolation("a publish into a full reject-publish queue was confirmed")
        } catch let error as BrokerError {
            try check(error.code == .publishNacked, "a refused publish threw \(error), not publishNacked")
        }
        try check(try await c.inspect(queue: q).messageCount == 1, "the refused message was queued")
        do {
            try await c.publish(message("nowhere", to: names.queue("no-such-queue"), mandatory: true))
            throw ContractViolation("a mandatory message with no route was confirmed")
        } catch let error as BrokerError {
            try check(error.code == .unroutable, "an unroutable mandatory publish threw \(error)")
        }
        try await c.purge(queue: q)
        // The connection is still usable, and the queue takes one again.
        try await c.publish(message("after", to: q, mandatory: true))
        try await c.deleteQueue(q)
        await c.close()
    }

    static func aBlockedConnectionFailsPublishesWithinItsBound(_ env: Env, _ names: Names) async throws {
        guard let alarm = env.alarm else {
            throw ContractViolation(
                "this environment has no alarm: give BrokerContract.Environment an Alarm to pin blocked connections")
        }
        let q = names.queue("blocked")
        let c = alarm.broker.connection(
            .init(name: "contract-blocked", confirms: true, blockedTimeout: .milliseconds(300)))
        try await c.connect()
        try await c.declare(scratch(q))
        try await alarm.raise()
        // RabbitMQ blocks a connection when it next publishes; that first publish may or may not be confirmed.
        // The bound is a connection setting in real time (not the clock tasks see), on every broker.
        _ = try? await c.publish(message("first", to: q))
        var outcome: BrokerError?
        do { try await c.publish(message("second", to: q)) } catch let error as BrokerError { outcome = error }
        try check(
            outcome?.code == .blocked,
            "a publish during the alarm ended with \(String(describing: outcome)), not blocked")
        try await alarm.clear()
        try await eventually(within: .seconds(30), "publishes still fail after the alarm cleared") {
            (try? await c.publish(message("after", to: q))) != nil
        }
        try await c.deleteQueue(q)
        await c.close()
    }

    static func anExclusiveQueueIsALock(_ env: Env, _ names: Names) async throws {
        let lock = names.queue("lock")
        let owner = try await open(env, "contract-owner")
        let other = try await open(env, "contract-other")
        try await owner.declare(
            QueueSpec(lock, durable: false, exclusive: true, autoDelete: true), recreateAfterReconnect: false)
        do {
            try await other.declare(
                QueueSpec(lock, durable: false, exclusive: true, autoDelete: true), recreateAfterReconnect: false)
            throw ContractViolation("a second connection declared an exclusive queue held by another")
        } catch let error as BrokerError {
            try check(error.replyCode == 405, "a held exclusive queue answered \(error), not 405 RESOURCE_LOCKED")
        }
        await owner.close()
        try await eventually(
            within: .seconds(10) + env.slack, "the lock was not free after its owner's connection closed"
        ) {
            do {
                try await other.declare(
                    QueueSpec(lock, durable: false, exclusive: true, autoDelete: true), recreateAfterReconnect: false)
                return true
            } catch let error as BrokerError where error.replyCode == 405 {
                return false
            }
        }
        await other.close()
    }

    static func aStreamReplaysFromTheFirstEntry(_ env: Env, _ names: Names) async throws {
        let stream = names.queue("stream")
        let c = try await open(env, "contract-stream")
        try await c.declare(
            QueueSpec(
                stream, durable: true, arguments: ["x-queue-type": .string("stream"), "x-max-age": .string("1h")]))
        try await c.publish((1...3).map { message("revoked-\($0)", to: stream) })
        let first = DeliveryCollector(
            try await c.consume(
                queue: stream, prefetch: 100, tag: nil, noAck: false, exclusive: false,
                arguments: RevocationLog.fromFirst))
        let one = try await first.wait(for: 3, "the first reader's replay")
        try check(one.map(\.text) == ["revoked-1", "revoked-2", "revoked-3"], "first replay \(one.map(\.text))")
        for d in one { await c.ack(d.tag) }
        // Acks do not consume a stream: a later reader replays the same entries, then sees new ones.
        let second = DeliveryCollector(
            try await c.consume(
                queue: stream, prefetch: 100, tag: nil, noAck: false, exclusive: false,
                arguments: RevocationLog.fromFirst))
        try await c.publish(message("revoked-4", to: stream))
        let two = try await second.wait(for: 4, "the second reader's replay and the new entry")
        try check(
            two.prefix(4).map(\.text) == ["revoked-1", "revoked-2", "revoked-3", "revoked-4"],
            "second replay \(two.map(\.text))")
        try await c.deleteQueue(stream)
        await c.close()
    }

    static func getCountsAndAutoDelete(_ env: Env, _ names: Names) async throws {
        let q = names.queue("get"), auto = names.queue("auto")
        let c = try await open(env, "contract-get")
        try await c.declare(scratch(q))
        try await c.publish([message("x", to: q), message("y", to: q)])
        guard let d = try await c.get(queue: q) else {
            throw ContractViolation("basic.get found nothing in a queue of 2")
        }
        try check(
            d.text == "x" && d.messageCount == 1,
            "basic.get gave '\(d.text)' with \(String(describing: d.messageCount)) left")
        await c.reject(d.tag, requeue: true)
        let again = try await c.get(queue: q)
        try check(
            again?.text == "x" && again?.redelivered == true,
            "a requeued get came back as \(String(describing: again?.text))")
        if let again { await c.ack(again.tag) }
        try await c.purge(queue: q)
        try check(try await c.get(queue: q) == nil, "basic.get on a purged queue found something")
        try await c.declare(QueueSpec(auto, durable: false, autoDelete: true))
        let consumer = try await c.consume(queue: auto, prefetch: 1)
        try await c.cancel(consumer)
        try await expectGone(
            auto, on: c, within: .seconds(10) + env.slack, "an auto-delete queue outlived its last consumer")
        try await c.deleteQueue(q)
        await c.close()
    }

    static func topicRoutingAndEquivalence(_ env: Env, _ names: Names) async throws {
        let exchange = names.queue("topic"), a = names.queue("a"), b = names.queue("b")
        let c = try await open(env, "contract-topic")
        try await c.declare(ExchangeSpec(exchange, kind: .topic, durable: false, autoDelete: false))
        try await c.declare(scratch(a))
        try await c.declare(scratch(b))
        try await c.bind(BindingSpec(queue: a, exchange: exchange, routingKey: "task.*"))
        try await c.bind(BindingSpec(queue: b, exchange: exchange, routingKey: "#.failed"))
        for key in ["task.started", "task.failed", "worker.heartbeat", "a.b.failed"] {
            try await c.publish(OutgoingMessage(exchange: exchange, routingKey: key, body: Array(key.utf8)))
        }
        let inA = try await DeliveryCollector(c.consume(queue: a, prefetch: 0, tag: nil, noAck: true)).wait(
            for: 2, "task.* matches")
        let inB = try await DeliveryCollector(c.consume(queue: b, prefetch: 0, tag: nil, noAck: true)).wait(
            for: 2, "#.failed matches")
        try check(Set(inA.map(\.text)) == ["task.started", "task.failed"], "task.* got \(inA.map(\.text))")
        try check(Set(inB.map(\.text)) == ["task.failed", "a.b.failed"], "#.failed got \(inB.map(\.text))")
        do {
            try await c.declare(scratch(a, ["x-message-ttl": .int(5)]))
            throw ContractViolation("redeclaring a queue with another x-message-ttl succeeded")
        } catch let error as BrokerError {
            try check(error.replyCode == 406, "an inequivalent redeclare answered \(error), not 406")
        }
        try await c.deleteQueue(a)
        try await c.deleteQueue(b)
        try await c.deleteExchange(exchange)
        await c.close()
    }
}
