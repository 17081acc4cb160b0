import CeleriacTesting
import Testing

@Test(arguments: BrokerContract.cases)
func theInMemoryBrokerKeepsTheContract(_ contract: BrokerContract.Case) async throws {
    let clock = ManualClock()
    let broker = InMemoryBroker(clock: clock)
    let alarm = BrokerContract.Alarm(
        broker: broker, raise: { broker.setBlocked("test") }, clear: { broker.setBlocked(nil) })
    try await contract.run(in: .init(broker: broker, pass: { await clock.advance(by: $0) }, alarm: alarm))
}
