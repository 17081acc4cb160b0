import AMQPTransport
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import CeleriacTesting
import CeleriacWorker
import Foundation
import Testing

/// The consumer watchdog: a worker whose consumer is alive but gets nothing (celery#8030) notices it, reports it
/// (stall counter, `/readyz` 503) and heals by re-subscribing.
@Suite(.tags(.integration))
struct WorkerWatchdogTests {
    /// Reports the watchdog's re-subscriptions as a stream.
    final class Stalls: WorkerObserver {
        let events: AsyncStream<String>
        private let sink: AsyncStream<String>.Continuation
        init() { (events, sink) = AsyncStream<String>.makeStream() }
        func consumerRestarted(queue: String, reason: String) { sink.yield(reason) }
    }

    /// Suspends the broker's process for channel 1 of the named connection: the consumer stays registered and the
    /// TCP connection and heartbeats stay healthy, but the channel processes nothing (acks included). A suspension
    /// lasts as long as the Erlang process that made it, so a helper process holds it until ``resume(_:)``.
    func suspendChannel(of connection: String, holder: String) throws -> String {
        try TestBroker.shared.ctl(
            "eval",
            """
            Name = <<"\(connection)">>,
            Conns = [P || P <- rabbit_networking:connections(), case rabbit_networking:connection_info(P, [client_properties]) of [{client_properties, CP}] -> lists:keyfind(<<"connection_name">>, 1, CP) =:= {<<"connection_name">>, longstr, Name}; _ -> false end],
            Chs = [Ch || Ch <- rabbit_channel:list(), lists:member(proplists:get_value(connection, rabbit_channel:info(Ch, [connection])), Conns), proplists:get_value(number, rabbit_channel:info(Ch, [number])) =:= 1],
            Self = self(),
            Holder = spawn(fun() -> [erlang:suspend_process(Ch) || Ch <- Chs], Self ! suspended, receive resume -> ok after 120000 -> ok end end),
            receive suspended -> ok end,
            register('\(holder)', Holder),
            length(Chs).
            """
        ).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func resume(_ holder: String) throws {
        _ = try TestBroker.shared.ctl("eval", "'\(holder)' ! resume, ok.")
    }

    @Test func aConsumerThatGetsNothingIsNoticedReportedAndHealed() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("wd")
        let node = "wd-\(queue.suffix(8))@test"
        let stalls = Stalls()
        let gate = Gate()
        let running = try await startWorker(
            TestTasks.registry(gate: gate), url: url, queues: [queue], concurrency: 2, hostname: node,
            observers: [stalls], watchdogInterval: .seconds(1))
        let client = try await startClient(url: url, queue: queue)
        // Two gated tasks fill both slots and the prefetch of 2; five adds wait in the queue behind them.
        let gated = [try await client.send("it.gate"), try await client.send("it.gate")]
        for _ in 0..<2 {
            _ = try await first(running.observer.started, within: .seconds(30), "a gated task to start") {
                $0 == "it.gate"
            }
        }
        var results: [AsyncResult] = []
        for i in 0..<5 { results.append(try await client.send("it.add", args: [.int(Int64(i)), 100])) }

        // The broker stops serving the worker's consumer channel: the two acks that follow are not processed,
        // so the broker sends nothing more, while the worker has free slots and the queue has ready messages.
        let holder = "celeriac_wd_\(queue.suffix(8))"
        #expect(try suspendChannel(of: "\(node)-consume", holder: holder) == "1")
        var resumed = false
        defer { if !resumed { try? resume(holder) } }
        gate.open()
        for g in gated { #expect(try await g.get(timeout: .seconds(30)) == .string("opened")) }

        let reason = try await first(stalls.events, within: .seconds(60), "the watchdog to notice the stall") {
            $0 == "watchdog"
        }
        #expect(reason == "watchdog")
        #expect(!running.worker.isReady, "/readyz must fail while the consumer is stalled")
        #expect(running.worker.isStalled)

        try resume(holder)
        resumed = true
        for (i, r) in results.enumerated() {
            #expect(try await r.get(timeout: .seconds(60)) == .int(Int64(i) + 100))
        }
        #expect(running.worker.isReady && !running.worker.isStalled, "ready again once deliveries flow")
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }

    /// Deleting a queue under a running worker cancels its consumer (consumer_cancel_notify): the worker declares
    /// the queue again and re-subscribes by itself, so tasks sent afterwards run.
    @Test func aDeletedQueueIsDeclaredAgainAndConsumed() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("deleted")
        let stalls = Stalls()
        let running = try await startWorker(
            TestTasks.registry(), url: url, queues: [queue], concurrency: 2, observers: [stalls])
        let client = try await startClient(url: url, queue: queue)
        #expect(try await client.send("it.add", args: [1, 2]).get(timeout: .seconds(30)) == .int(3))

        let admin = AMQPConnection(url: url, options: .init(name: "it-delete-queue", confirms: false))
        try await admin.connect()
        _ = try await admin.deleteQueue(queue)
        let reason = try await first(stalls.events, within: .seconds(30), "the worker to re-subscribe") {
            $0 == "resubscribed"
        }
        #expect(reason == "resubscribed")
        // The queue exists again (declared by the worker, not by this test or the client) and is consumed.
        let declared = try await admin.inspect(queue: queue)
        #expect(declared.consumerCount == 1)
        await admin.close()
        #expect(try await client.send("it.add", args: [2, 3]).get(timeout: .seconds(30)) == .int(5))
        await client.close()
        try await running.stop()
        await deleteQueues([queue], url: url)
    }
}
