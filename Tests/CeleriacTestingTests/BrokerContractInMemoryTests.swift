import CeleriacBroker
import CeleriacTesting
import Testing

/// The broker contract on the in-memory broker, with time moved by a manual clock. The same cases run on RabbitMQ
/// in `IntegrationTests/BrokerContractRabbitMQTests.swift`.
@Suite struct BrokerContractInMemoryTests {
    @Test(arguments: BrokerContract.cases)
    func inMemoryBrokerKeepsTheContract(_ contract: BrokerContract.Case) async throws {
        let clock = ManualClock()
        let broker = InMemoryBroker(clock: clock)
        let alarm = BrokerContract.Alarm(
            broker: broker, raise: { broker.setBlocked("memory alarm (test)") }, clear: { broker.setBlocked(nil) })
        try await contract.run(in: .init(broker: broker, pass: { await clock.advance(by: $0) }, alarm: alarm))
    }
}
