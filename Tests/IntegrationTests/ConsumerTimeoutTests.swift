import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import Foundation
import Testing

/// RabbitMQ closes a channel that holds a delivery unacked longer than `consumer_timeout` (celery#6760): a
/// countdown must be held by the broker's delay queues, never by an unacked message in the worker.
@Suite(.tags(.integration), .serialized)
struct ConsumerTimeoutTests {
    static var brokerLog: String { "\(TestBroker.repoRoot)/.run/\(TestBroker.chaos.dir)/log/rabbit.log" }

    /// How many consumer timeouts the chaos node has logged so far.
    static func timeoutsLogged() -> Int {
        let text = (try? String(contentsOfFile: brokerLog, encoding: .utf8)) ?? ""
        return text.components(separatedBy: "timed out waiting for delivery acknowledgement").count - 1
    }

    @Test func countdownLongerThanTheConsumerTimeoutIsNeverHeldByTheWorker() async throws {
        let broker = TestBroker.chaos
        let url = try broker.url()
        // A 2 s consumer timeout checked every 0.5 s, for channels opened from now on. The node's own values are
        // saved and put back at the end (removing them instead would break every later channel.open).
        try await broker.scriptAsync(
            "ctl", "eval",
            """
            persistent_term:put(celeriac_ct_saved, {application:get_env(rabbit, channel_tick_interval), \
            application:get_env(rabbit, consumer_timeout)}), application:set_env(rabbit, channel_tick_interval, 500), \
            application:set_env(rabbit, consumer_timeout, 2000).
            """)
        do {
            // Control: a consumer holding a delivery unacked past the timeout loses its channel; the message comes
            // back redelivered and the broker logs the timeout. This shows the setting is live.
            let raw = AMQPConnection(url: url, options: .init(name: "it-timeout-control", confirms: true))
            try await raw.connect()
            let probe = uniqueName("ct-probe")
            _ = try await raw.declare(QueueSpec(probe, durable: false))
            let before = Self.timeoutsLogged()
            let consumer = try await raw.consume(queue: probe, prefetch: 1)
            try await raw.publish(OutgoingMessage(routingKey: probe, body: Array("held".utf8)))
            _ = try await first(consumer.deliveries, within: .seconds(30), "the redelivery after the consumer timeout")
            { $0.redelivered }
            // The log line has no event to wait on: bounded polling of the file.
            try await within(.seconds(10), "the broker to log the consumer timeout") {
                while Self.timeoutsLogged() == before { try await Task.sleep(for: .milliseconds(50)) }
            }
            _ = try? await raw.deleteQueue(probe)
            await raw.close()

            // Celeriac: a countdown three times the timeout. The broker's delay queues hold it; the worker gets it
            // at its ETA and acks it after the run, so no channel times out and the task runs.
            let queue = uniqueName("ct")
            let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue])
            let client = try await startClient(url: url, queue: queue)
            let afterControl = Self.timeoutsLogged()
            let sent = Date()
            let result = try await client.send("it.add", args: [1, 2], options: SendOptions(countdown: 6))
            let value = try await result.get(timeout: .seconds(60))
            #expect(value == .int(3))
            #expect(Date().timeIntervalSince(sent) >= 6, "the task ran before its countdown")
            #expect(
                Self.timeoutsLogged() == afterControl, "a consumer timed out while the task waited for its countdown")
            await client.close()
            try await running.stop()
            await deleteQueues([queue], url: url)
        } catch {
            _ = try? await Self.restoreTimeouts(broker)
            throw error
        }
        try await Self.restoreTimeouts(broker)
    }

    static func restoreTimeouts(_ broker: TestBroker) async throws {
        try await broker.scriptAsync(
            "ctl", "eval",
            """
            {T, C} = persistent_term:get(celeriac_ct_saved), \
            case T of {ok, TV} -> application:set_env(rabbit, channel_tick_interval, TV); undefined -> ok end, \
            case C of {ok, CV} -> application:set_env(rabbit, consumer_timeout, CV); undefined -> application:unset_env(rabbit, consumer_timeout) end.
            """)
    }
}
