import CeleriacBroker
import FoundationEssentials
import Synchronization

/// A broker behaviour that did not hold: what was expected and what happened.
public struct ContractViolation: Error, CustomStringConvertible {
    /// What was expected and what happened instead.
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Collects a consumer's deliveries as they come and lets a check wait for the n-th one, against a deadline in
/// real time (deliveries are events: they come at once on the in-memory broker, within milliseconds on RabbitMQ).
final class DeliveryCollector: Sendable {
    private struct State {
        var items: [Delivery] = []
        var ended = false
        var waiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }
    private final class Box: Sendable {
        let state = Mutex(State())
    }
    private let box = Box()
    private let pump: Task<Void, Never>

    init(_ consumer: Consumer) {
        let box = self.box
        let deliveries = consumer.deliveries
        pump = Task {
            for await delivery in deliveries {
                let ready = box.state.withLock { s -> [CheckedContinuation<Void, Never>] in
                    s.items.append(delivery)
                    let due = s.waiters.filter { $0.count <= s.items.count }.map(\.continuation)
                    s.waiters.removeAll { $0.count <= s.items.count }
                    return due
                }
                ready.forEach { $0.resume() }
            }
            let rest = box.state.withLock { s -> [CheckedContinuation<Void, Never>] in
                s.ended = true
                defer { s.waiters = [] }
                return s.waiters.map(\.continuation)
            }
            rest.forEach { $0.resume() }
        }
    }

    deinit { pump.cancel() }

    var items: [Delivery] { box.state.withLock { $0.items } }
    /// True once the consumer's stream has finished (cancelled by the client or by the broker).
    var ended: Bool { box.state.withLock { $0.ended } }

    /// Waits until `count` deliveries have come (or the stream ended), at most `limit` of real time.
    @discardableResult
    func wait(for count: Int, within limit: Duration = .seconds(10), _ what: String) async throws -> [Delivery] {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let now = self.box.state.withLock { s -> Bool in
                        if s.items.count >= count || s.ended { return true }
                        s.waiters.append((count, c))
                        return false
                    }
                    if now { c.resume() }
                }
            }
            group.addTask { try? await Task.sleep(for: limit) }
            _ = await group.next()
            group.cancelAll()
            // Wake a waiter left behind by the deadline so its child task ends.
            let left = self.box.state.withLock { s -> [CheckedContinuation<Void, Never>] in
                defer { s.waiters = [] }
                return s.waiters.map(\.continuation)
            }
            left.forEach { $0.resume() }
        }
        let items = self.items
        guard items.count >= count else {
            throw ContractViolation(
                "waited \(limit) for \(count) deliveries (\(what)), got \(items.count)\(ended ? "; the consumer ended" : "")"
            )
        }
        return items
    }

    /// Waits until the stream ends, at most `limit` of real time.
    func waitForEnd(within limit: Duration = .seconds(10), _ what: String) async throws {
        _ = try? await wait(for: Int.max, within: limit, what)
        guard ended else { throw ContractViolation("waited \(limit) for the consumer to end (\(what)); it did not") }
    }
}

func check(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw ContractViolation(message()) }
}

/// Retries `body` until it returns true, for at most `limit` of real time (for broker housekeeping that has no
/// event to wait on, such as an expiring queue's removal); the in-memory broker passes at the first try.
func eventually(within limit: Duration, _ what: String, _ body: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + limit
    while true {
        if try await body() { return }
        guard ContinuousClock.now < deadline else { throw ContractViolation("\(what): still not so after \(limit)") }
        try await Task.sleep(for: .milliseconds(50))
    }
}

extension Delivery {
    var text: String { String(decoding: body, as: UTF8.self) }
}

func message(_ text: String, to queue: String, properties: BasicProperties = .init(), mandatory: Bool = false)
    -> OutgoingMessage
{
    OutgoingMessage(routingKey: queue, body: Array(text.utf8), properties: properties, mandatory: mandatory)
}
