import AMQPTransport
import Foundation
import Testing

@Suite(.tags(.integration))
struct TransportErrorTests {
    @Test func badCredentialsAreATypedError() async throws {
        var url = try TestBroker.shared.url()
        url.password = "wrong-password"
        let c = AMQPConnection(url: url)
        defer { Task { await c.close() } }
        await #expect {
            try await c.connect()
        } throws: { error in
            guard let e = error as? AMQPError else { return false }
            return e.code == .accessRefused && e.description.contains("password")
                && !e.description.contains("wrong-password")
        }
    }

    @Test func unknownVhostIsATypedError() async throws {
        let c = AMQPConnection(url: try TestBroker.shared.url(vhost: "no-such-vhost"))
        defer { Task { await c.close() } }
        await #expect {
            try await c.connect()
        } throws: { error in
            guard let e = error as? AMQPError else { return false }
            return e.code == .vhostNotFound && e.description.contains("virtual host")
        }
    }

    @Test func nothingListeningIsConnectionRefused() async throws {
        let c = AMQPConnection(url: try AMQPURL("amqp://guest:guest@127.0.0.1:1/"))
        defer { Task { await c.close() } }
        await #expect {
            try await c.connect()
        } throws: { error in
            guard let e = error as? AMQPError else { return false }
            return e.code == .connectionRefused && e.description.contains("127.0.0.1:1")
                && e.description.contains("Is RabbitMQ running")
        }
    }

    @Test func unresolvableHostIsHostNotFound() async throws {
        let c = AMQPConnection(url: try AMQPURL("amqp://guest:guest@no-such-host.invalid:5672/"))
        defer { Task { await c.close() } }
        await #expect {
            try await c.connect()
        } throws: { ($0 as? AMQPError)?.code == .hostNotFound }
    }

    @Test func callsAfterCloseFailWithClosed() async throws {
        let c = AMQPConnection(url: try TestBroker.shared.url())
        try await c.connect()
        await c.close()
        await #expect {
            try await c.declare(QueueSpec(uniqueName()))
        } throws: { ($0 as? AMQPError)?.code == .closed }
    }
}

@Suite(.tags(.integration))
struct TransportTLSTests {
    func tlsURL(ca: String, host: String = "localhost") throws -> AMQPURL {
        _ = try TestBroker.shared.url()
        let b = TestBroker.shared
        return try AMQPURL("amqps://guest:guest@\(host):\(b.tlsPort)/%2F?cacertfile=\(b.tlsDir)/\(ca)")
    }

    @Test func tlsWithTheRightCAConnects() async throws {
        let c = AMQPConnection(url: try tlsURL(ca: "ca.pem"))
        defer { Task { await c.close() } }
        try await c.connect()
        let q = uniqueName()
        try await c.declare(QueueSpec(q, durable: false).expires(milliseconds: 60_000))
        try await c.publish(OutgoingMessage(routingKey: q, body: Array("over tls".utf8)))
        let consumer = try await c.consume(queue: q, prefetch: 1)
        let d = try await first(consumer.deliveries, within: .seconds(10), "a delivery over TLS") { _ in true }
        #expect(d.body == Array("over tls".utf8))
        try await c.deleteQueue(q)
    }

    @Test func tlsWithClientCertificateConnects() async throws {
        _ = try TestBroker.shared.url()
        let b = TestBroker.shared
        let url = try AMQPURL(
            "amqps://guest:guest@localhost:\(b.tlsPort)/%2F?cacertfile=\(b.tlsDir)/ca.pem&certfile=\(b.tlsDir)/client.pem&keyfile=\(b.tlsDir)/client.key"
        )
        let c = AMQPConnection(url: url)
        defer { Task { await c.close() } }
        try await c.connect()
        #expect(c.isConnected)
    }

    @Test func tlsWithAWrongCAIsRefused() async throws {
        let c = AMQPConnection(url: try tlsURL(ca: "wrong-ca.pem"))
        defer { Task { await c.close() } }
        await #expect {
            try await c.connect()
        } throws: { error in
            guard let e = error as? AMQPError else { return false }
            return e.code == .tlsFailed && e.description.contains("cacertfile")
        }
    }

    @Test func tlsWithAWrongHostNameIsRefused() async throws {
        // The certificate names localhost and 127.0.0.1; 127.0.0.2 also reaches the listener but is not named.
        let c = AMQPConnection(url: try tlsURL(ca: "ca.pem", host: "127.0.0.2"))
        defer { Task { await c.close() } }
        await #expect {
            try await c.connect()
        } throws: { ($0 as? AMQPError)?.code == .tlsFailed }
    }
}
