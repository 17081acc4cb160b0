import Testing

@testable import AMQPTransport

/// Passwords never show, however a URL is printed.
@Suite struct AMQPURLRedactionTests {
    struct Holder { let url: AMQPURL; let name: String }

    @Test func everyWayOfPrintingAURLHidesThePassword() throws {
        let url = try AMQPURL("amqps://bob:hunter2%40x@rabbit:5671/prod?cacertfile=/ca.pem")
        var dumped = ""
        dump(url, to: &dumped)
        var dumpedHolder = ""
        dump(Holder(url: url, name: "n"), to: &dumpedHolder)
        let texts = [
            "\(url)", String(reflecting: url), "\(Holder(url: url, name: "n"))",
            String(reflecting: Holder(url: url, name: "n")),
            dumped, dumpedHolder, "\([url])", "\(Optional(url) as Any)",
        ]
        for text in texts {
            #expect(!text.contains("hunter2"), "leaked: \(text)")
            #expect(text.contains("***") || text.contains("amqps://bob:***@rabbit"), "\(text)")
        }
        #expect(url.password == "hunter2@x")
    }

    @Test func parseErrorsHideThePassword() {
        for bad in [
            "amqp://bob:hunter2@host:99999/v", "amqp://bob:hunter2@host/v?nope=1", "amqp://bob:hunter2@[::1/v",
            "amqp://bob:hunter2%zz@host/",
        ] {
            #expect {
                _ = try AMQPURL(bad)
            } throws: { error in
                let text = "\(error) \(String(reflecting: error))"
                return !text.contains("hunter2") && text.contains("***")
            }
        }
    }
}
