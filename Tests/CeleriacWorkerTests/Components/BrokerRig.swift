import CeleriacBroker
import CeleriacMessaging
import CeleriacTesting

/// What every component test starts from: an in-memory broker on a manual clock, with a confirming publishing
/// connection and a consuming one, both open.
struct BrokerRig {
    let clock: ManualClock
    let broker: InMemoryBroker
    let publishing: any BrokerConnection
    let consuming: any BrokerConnection

    init(clock: ManualClock) async throws {
        self.clock = clock
        broker = InMemoryBroker(clock: clock)
        publishing = broker.connection(.init(name: "publish", confirms: true))
        consuming = broker.connection(.init(name: "consume", confirms: false))
        try await publishing.connect()
        try await consuming.connect()
    }

    /// Declares work queues as a worker does (Celery's flags); with `delayed`, bound to the delay topology too.
    func declareWorkQueues(_ queues: [String], delayed: [String] = []) async throws {
        for queue in queues {
            let (exchange, spec, binding) = Topology.workQueue(queue)
            try await publishing.declare(exchange)
            _ = try await publishing.declare(spec, recreateAfterReconnect: true)
            try await publishing.bind(binding)
        }
        if !delayed.isEmpty { try await DelayTopology.declare(on: publishing, queues: delayed) }
    }

    /// Declares the dead-letter exchange and queue.
    func declareDeadLetter() async throws {
        let (dlx, dlq, dlb) = Topology.deadLetter()
        try await publishing.declare(dlx)
        _ = try await publishing.declare(dlq, recreateAfterReconnect: true)
        try await publishing.bind(dlb)
    }
}
