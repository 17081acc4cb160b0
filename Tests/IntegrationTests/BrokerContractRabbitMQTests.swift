import CeleriacAMQP
import CeleriacBroker
import CeleriacTesting
import Testing

/// The broker contract on a real RabbitMQ node: what the in-memory broker is held to. Time passes for real here;
/// the alarm case runs on the chaos node, since a memory alarm blocks a whole node.
@Suite(.serialized) struct BrokerContractRabbitMQTests {
    @Test(arguments: BrokerContract.cases)
    func rabbitMQKeepsTheContract(_ contract: BrokerContract.Case) async throws {
        let broker = AMQPBroker(url: try TestBroker.shared.url())
        let chaos = TestBroker.chaos
        let alarm = BrokerContract.Alarm(
            broker: AMQPBroker(url: try chaos.url()),
            raise: { _ = try await chaos.scriptAsync("ctl", "set_vm_memory_high_watermark", "0.000001") },
            clear: { _ = try await chaos.scriptAsync("ctl", "set_vm_memory_high_watermark", "0.4") })
        do {
            try await contract.run(
                in: .init(broker: broker, pass: { try? await Task.sleep(for: $0) }, slack: .seconds(5), alarm: alarm))
        } catch {
            _ = try? chaos.ctl("set_vm_memory_high_watermark", "0.4")
            throw error
        }
    }
}
