import CeleriacMetrics
import Foundation
import Prometheus
import Synchronization
import Testing

/// The `/metrics` endpoint against slow and hostile clients, and on IPv6. No broker: the endpoint alone.
@Suite(.tags(.integration))
struct MetricsEndpointHardeningTests {
    /// A TCP connection to the endpoint, over IPv4 or IPv6; closed at the end.
    final class Client: Sendable {
        let fd: Int32

        init(port: Int, v6: Bool = false, receiveBuffer: Int32? = nil) throws {
            fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            if var size = receiveBuffer {
                setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            }
            let rc: Int32
            if v6 {
                var addr = sockaddr_in6()
                addr.sin6_family = sa_family_t(AF_INET6)
                addr.sin6_port = in_port_t(UInt16(port).bigEndian)
                inet_pton(AF_INET6, "::1", &addr.sin6_addr)
                rc = withUnsafePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                    }
                }
            } else {
                var addr = sockaddr_in()
                addr.sin_family = sa_family_t(AF_INET)
                addr.sin_port = in_port_t(UInt16(port).bigEndian)
                inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
                rc = withUnsafePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
            guard rc == 0 else {
                throw Shell.Failure(command: "connect", status: errno, output: String(cString: strerror(errno)))
            }
            // A bound on a read that never returns: far beyond the endpoint's own 2 s deadline.
            var timeout = timeval(tv_sec: 20, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        deinit { close(fd) }

        func send(_ text: String) -> Bool {
            let bytes = Array(text.utf8)
            return bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                == bytes.count
        }

        /// Everything until the server closes (or the 20 s bound), as text.
        func readToEnd() -> String {
            var data = [UInt8]()
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = read(fd, &buffer, buffer.count)
                if n <= 0 { break }
                data.append(contentsOf: buffer[0..<n])
            }
            return String(decoding: data, as: UTF8.self)
        }

        func get(_ path: String) -> String {
            _ = send("GET \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            return readToEnd()
        }
    }

    func endpoint(host: String = "127.0.0.1") throws -> (MetricsEndpoint, Int) {
        let registry = PrometheusCollectorRegistry()
        registry.makeCounter(name: "celeriac_test_scrapes_total").increment()
        let endpoint = MetricsEndpoint(registry: registry, host: host, port: 0, isReady: { true })
        return (endpoint, try endpoint.start())
    }

    @Test func clientsThatTrickleTheirRequestHoldNeitherAScrapeNorAProbe() async throws {
        let (endpoint, port) = try endpoint()
        defer { endpoint.stop() }
        // Three clients send a request one byte at a time and never finish it, as long as the test runs. A server
        // that reads one client at a time, with a timeout per read, would serve none of the requests below.
        let tricklers = try (0..<3).map { _ in try Client(port: port) }
        let stop = Atomic<Bool>(false)
        let trickling = Task.detached {
            for _ in 0..<200 where !stop.load(ordering: .relaxed) {
                for t in tricklers { _ = t.send("G") }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        let scrape = try Client(port: port).get("/metrics")
        let probe = try Client(port: port).get("/healthz")
        #expect(scrape.hasPrefix("HTTP/1.1 200") && scrape.contains("celeriac_test_scrapes_total 1"), "\(scrape)")
        #expect(probe.hasPrefix("HTTP/1.1 200"), "\(probe)")
        // One deadline for the whole request: the tricklers are cut off (EOF) although they never stopped sending.
        for t in tricklers { #expect(t.readToEnd() == "", "a trickling client gets no answer and is closed") }
        stop.store(true, ordering: .relaxed)
        await trickling.value
    }

    @Test func aClientThatNeverReadsItsAnswerDoesNotHoldTheNextScrape() async throws {
        // A large exposition (some 200 KiB) and clients with a tiny receive buffer that ask for it and never read:
        // a server that writes until the answer is out would wait on the first of them forever.
        let registry = PrometheusCollectorRegistry()
        for i in 0..<3000 { registry.makeCounter(name: "celeriac_test_padding_\(i)_total").increment() }
        let endpoint = MetricsEndpoint(registry: registry, host: "127.0.0.1", port: 0, isReady: { true })
        let port = try endpoint.start()
        defer { endpoint.stop() }
        let stuck = try (0..<3).map { _ in try Client(port: port, receiveBuffer: 1024) }
        for c in stuck { _ = c.send("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n") }
        // And more silent connections than the endpoint keeps open at once: the oldest make room.
        let silent = try (0..<40).map { _ in try Client(port: port) }
        let scrape = try Client(port: port).get("/metrics")
        #expect(scrape.hasPrefix("HTTP/1.1 200") && scrape.contains("celeriac_test_padding_2999_total 1"))
        _ = (stuck, silent)
    }

    @Test func everyInterfaceMeansIPv4AndIPv6() async throws {
        let (endpoint, port) = try endpoint(host: "::")
        defer { endpoint.stop() }
        #expect(try Client(port: port).get("/healthz").hasPrefix("HTTP/1.1 200"))
        #expect(try Client(port: port, v6: true).get("/healthz").hasPrefix("HTTP/1.1 200"))
        let (v6only, port6) = try self.endpoint(host: "::1")
        defer { v6only.stop() }
        #expect(try Client(port: port6, v6: true).get("/readyz").hasPrefix("HTTP/1.1 200"))
        #expect(throws: MetricsEndpoint.BindError.self) {
            try MetricsEndpoint(registry: .init(), host: "localhost", port: 0, isReady: { true }).start()
        }
    }

    @Test func anOversizedRequestHeadIsRefused() async throws {
        let (endpoint, port) = try endpoint()
        defer { endpoint.stop() }
        let client = try Client(port: port)
        _ = client.send("GET /metrics HTTP/1.1\r\nX-Pad: " + String(repeating: "a", count: 9000))
        #expect(client.readToEnd().hasPrefix("HTTP/1.1 431"))
    }
}
