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

    @Test func brokerListsAreSplitOnSemicolonsAsCeleryWritesThem() throws {
        let url = try AMQPURL("amqp://u:p1@h1:5672//;amqp://u:p2@h2:5673/%2F?heartbeat=2 ; amqps://h3")
        #expect(url.host == "h1" && url.password == "p1")
        #expect(url.alternates.map(\.host) == ["h2", "h3"])
        #expect(url.failoverOrder.map(\.endpoint) == ["h1:5672", "h2:5673", "h3:5671"])
        #expect(url.failoverOrder.allSatisfy { $0.alternates.isEmpty })
        #expect(url.alternates[0].heartbeat == 2 && url.alternates[1].tls)
        #expect(url.redacted == "amqp://u:***@h1:5672/%2F;amqp://u:***@h2:5673/%2F;amqps://guest:***@h3:5671/%2F")
        #expect(!url.redacted.contains("p1") && !url.redacted.contains("p2"))
        #expect(try AMQPURL("amqp://h1").failoverOrder.count == 1)
    }

    @Test func brokerListErrorsNameTheBadEntry() {
        #expect { try AMQPURL("amqp://h1;;amqp://h2") } throws: {
            ($0 as? AMQPError)?.reason?.contains("empty entry") == true
        }
        #expect { try AMQPURL("amqp://h1;ftp://h2") } throws: { ($0 as? AMQPError)?.reason?.contains("'ftp'") == true }
        #expect { try AMQPURL("amqp://u:secret1@h1;amqp://u:secret2@h2:x") } throws: { error in
            let text = "\(error)"
            return text.contains("port 'x'") && !text.contains("secret2")
        }
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
