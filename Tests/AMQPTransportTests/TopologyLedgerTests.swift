import Testing

@testable import AMQPTransport

/// What a connection declares again after a reconnect, and in which order.
@Suite struct TopologyLedgerTests {
    typealias Step = TopologyLedger.Step

    @Test func replaysExchangesThenQueuesThenExchangeBindingsThenQueueBindingsEachInRecordedOrder() {
        var l = TopologyLedger()
        // Recorded interleaved, as an application declares them.
        l.bound(BindingSpec(queue: "q1", exchange: "x1", routingKey: "a"))
        l.declared(QueueSpec("q2"))
        l.bound(ExchangeBindingSpec(destination: "x2", source: "x1", routingKey: "#"))
        l.declared(ExchangeSpec("x2", kind: .topic))
        l.declared(QueueSpec("q1"))
        l.bound(BindingSpec(queue: "q2", exchange: "x2", routingKey: "b"))
        l.declared(ExchangeSpec("x1"))
        #expect(
            l.replayPlan == [
                .exchange(ExchangeSpec("x2", kind: .topic)),
                .exchange(ExchangeSpec("x1")),
                .queue(QueueSpec("q2")),
                .queue(QueueSpec("q1")),
                .exchangeBinding(ExchangeBindingSpec(destination: "x2", source: "x1", routingKey: "#")),
                .binding(BindingSpec(queue: "q1", exchange: "x1", routingKey: "a")),
                .binding(BindingSpec(queue: "q2", exchange: "x2", routingKey: "b")),
            ])
    }

    @Test func anEmptyLedgerReplaysNothing() {
        #expect(TopologyLedger().replayPlan.isEmpty)
    }

    @Test func deletingAQueueForgetsItAndItsBindingsOnly() {
        var l = TopologyLedger()
        l.declared(ExchangeSpec("x"))
        l.declared(QueueSpec("gone"))
        l.declared(QueueSpec("kept"))
        l.bound(BindingSpec(queue: "gone", exchange: "x", routingKey: "1"))
        l.bound(BindingSpec(queue: "gone", exchange: "x", routingKey: "2"))
        l.bound(BindingSpec(queue: "kept", exchange: "x", routingKey: "1"))
        l.deletedQueue(named: "gone")
        #expect(
            l.replayPlan == [
                .exchange(ExchangeSpec("x")),
                .queue(QueueSpec("kept")),
                .binding(BindingSpec(queue: "kept", exchange: "x", routingKey: "1")),
            ])
    }

    @Test func deletingAnExchangeForgetsItAndTheQueueBindingsToIt() {
        var l = TopologyLedger()
        l.declared(ExchangeSpec("gone"))
        l.declared(ExchangeSpec("kept"))
        l.declared(QueueSpec("q"))
        l.bound(BindingSpec(queue: "q", exchange: "gone", routingKey: "k"))
        l.bound(BindingSpec(queue: "q", exchange: "kept", routingKey: "k"))
        l.deletedExchange(named: "gone")
        #expect(l.exchanges.map(\.name) == ["kept"])
        #expect(l.queues.map(\.name) == ["q"])
        #expect(l.bindings == [BindingSpec(queue: "q", exchange: "kept", routingKey: "k")])
    }

    @Test func deletingAnExchangeForgetsTheExchangeBindingsFromAndToIt() {
        var l = TopologyLedger()
        for name in ["a", "gone", "c"] { l.declared(ExchangeSpec(name, kind: .topic)) }
        l.bound(ExchangeBindingSpec(destination: "gone", source: "a", routingKey: "#"))
        l.bound(ExchangeBindingSpec(destination: "c", source: "gone", routingKey: "#"))
        l.bound(ExchangeBindingSpec(destination: "c", source: "a", routingKey: "x.#"))
        l.deletedExchange(named: "gone")
        // A replayed binding that names a deleted exchange gets a 404 and drops the connection again.
        #expect(l.exchangeBindings == [ExchangeBindingSpec(destination: "c", source: "a", routingKey: "x.#")])
        #expect(
            !l.replayPlan.contains {
                if case .exchangeBinding(let b) = $0 { return b.source == "gone" || b.destination == "gone" };
                return false
            })
    }

    @Test func aQueueDeclaredWithoutRecreateAfterReconnectIsNotReplayed() {
        var l = TopologyLedger()
        l.declared(QueueSpec("lock.chord-1", exclusive: true), recreateAfterReconnect: false)
        l.declared(QueueSpec("celery"))
        #expect(l.replayPlan == [.queue(QueueSpec("celery"))])
    }

    @Test func aReDeclaredQueueIsReplayedOnceWithItsNewestSpecInItsNewPlace() {
        var l = TopologyLedger()
        l.declared(QueueSpec("a"))
        l.declared(QueueSpec("b"))
        l.declared(QueueSpec("a").messageTTL(milliseconds: 500))
        #expect(l.replayPlan == [.queue(QueueSpec("b")), .queue(QueueSpec("a").messageTTL(milliseconds: 500))])
    }

    @Test func aReDeclaredExchangeIsReplayedOnceWithItsNewestSpec() {
        var l = TopologyLedger()
        l.declared(ExchangeSpec("x", kind: .direct))
        l.declared(ExchangeSpec("y"))
        l.declared(ExchangeSpec("x", kind: .fanout))
        #expect(l.exchanges == [ExchangeSpec("y"), ExchangeSpec("x", kind: .fanout)])
    }

    @Test func aBindingMadeTwiceIsReplayedOnceInItsFirstPlace() {
        var l = TopologyLedger()
        let first = BindingSpec(queue: "q", exchange: "x", routingKey: "1")
        let second = BindingSpec(queue: "q", exchange: "x", routingKey: "2")
        l.bound(first)
        l.bound(second)
        l.bound(first)
        // Same names, other arguments: a different binding.
        let withArgs = BindingSpec(queue: "q", exchange: "x", routingKey: "1", arguments: ["x-match": .string("all")])
        l.bound(withArgs)
        #expect(l.bindings == [first, second, withArgs])
    }

    @Test func anExchangeBindingMadeTwiceIsReplayedOnce() {
        var l = TopologyLedger()
        let b = ExchangeBindingSpec(destination: "d", source: "s", routingKey: "k")
        l.bound(b)
        l.bound(b)
        #expect(l.replayPlan == [.exchangeBinding(b)])
    }
}
