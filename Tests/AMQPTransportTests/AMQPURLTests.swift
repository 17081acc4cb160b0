import Testing
@testable import AMQPTransport

@Suite struct AMQPURLTests {
    @Test func parsesFullURL() throws {
        let url = try AMQPURL("amqp://alice:s%40cret@broker.example:5673/prod?heartbeat=10&connection_timeout=3")
        #expect(url.tls == false)
        #expect(url.user == "alice")
        #expect(url.password == "s@cret")
        #expect(url.host == "broker.example")
        #expect(url.port == 5673)
        #expect(url.vhost == "prod")
        #expect(url.heartbeat == 10)
        #expect(url.connectionTimeout == 3)
    }

    @Test func defaultVhostSpellings() throws {
        #expect(try AMQPURL("amqp://guest:guest@localhost:5672//").vhost == "/")
        #expect(try AMQPURL("amqp://guest:guest@localhost:5672/%2F").vhost == "/")
        #expect(try AMQPURL("amqp://localhost").vhost == "/")
        #expect(try AMQPURL("amqp://localhost/").vhost == "/")
        #expect(try AMQPURL("amqp://localhost/%2Fnested").vhost == "/nested")
    }

    @Test func defaultPortsAndCredentials() throws {
        let plain = try AMQPURL("amqp://rabbit")
        #expect(plain.port == 5672)
        #expect(plain.user == "guest" && plain.password == "guest")
        let tls = try AMQPURL("amqps://rabbit?cacertfile=/etc/ca.pem&verify=verify_peer")
        #expect(tls.port == 5671)
        #expect(tls.tls)
        #expect(tls.caCertFile == "/etc/ca.pem")
    }

    @Test func ipv6Host() throws {
        let url = try AMQPURL("amqp://u:p@[::1]:5682/v")
        #expect(url.host == "::1")
        #expect(url.port == 5682)
        #expect(url.endpoint == "[::1]:5682")
    }

    @Test(arguments: [
        ("http://localhost", "scheme"),
        ("localhost:5672", "scheme"),
        ("amqp://localhost:99999", "port"),
        ("amqp://localhost:abc", "port"),
        ("amqp://localhost/%zz", "virtual host"),
        ("amqp://localhost?heartbeat=soon", "heartbeat"),
        ("amqp://localhost?colour=blue", "colour"),
        ("amqp://localhost?cacertfile=/x", "amqps"),
        ("amqp://u%:p@localhost", "user name"),
    ])
    func badURLNamesTheBadPart(input: String, part: String) {
        #expect {
            _ = try AMQPURL(input)
        } throws: { error in
            guard let error = error as? AMQPError else { return false }
            return error.code == .invalidURL && error.description.contains(part)
        }
    }

    @Test func redactionHidesPassword() throws {
        let url = try AMQPURL("amqp://bob:hunter2@h:1/v")
        #expect(!url.redacted.contains("hunter2"))
        #expect(url.redacted == "amqp://bob:***@h:1/v")
        #expect(AMQPURL.redact("amqp://bob:hunter2@h:1/v?x") == "amqp://bob:***@h:1/v?x")
        do {
            _ = try AMQPURL("amqp://bob:hunter2@h:notaport/v")
            Issue.record("expected an error")
        } catch {
            #expect(!error.description.contains("hunter2"))
        }
    }
}
