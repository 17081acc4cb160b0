import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import CeleriacMetrics
import Foundation
import Prometheus
import Testing

/// A minimal HTTP/1.1 GET over a socket (FoundationNetworking is not needed for a loopback check).
func httpGet(port: Int, path: String) throws -> (status: Int, headers: String, body: String) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard rc == 0 else { throw Shell.Failure(command: "GET \(path)", status: errno, output: "connect failed") }
    // Connection: close, so servers with keep-alive (Prometheus) end the response with EOF; reads time out at 5 s.
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let request = Array("GET \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    var data = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n <= 0 { break }
        data.append(contentsOf: buffer[0..<n])
    }
    let text = String(decoding: data, as: UTF8.self)
    let parts = text.components(separatedBy: "\r\n\r\n")
    let head = parts.first ?? ""
    let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
    return (status, head, parts.dropFirst().joined(separator: "\r\n\r\n"))
}

@Suite(.tags(.integration))
struct MetricsEndpointTests {
    @Test func workerMetricsPassPromtoolAndCountOutcomes() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName()
        let registry = PrometheusCollectorRegistry()
        let names = TestTasks.registry().names
        let metrics = WorkerMetrics(registry: registry, knownTasks: names, queues: [queue], concurrency: 4)
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue], observers: [metrics])
        let endpoint = MetricsEndpoint(
            registry: registry, host: "127.0.0.1", port: 0, isReady: { running.worker.isReady })
        let port = try endpoint.start()
        defer { endpoint.stop() }
        let client = try await startClient(url: url, queue: queue)
        #expect(try await client.send("it.add", args: [1, 2]).get(timeout: .seconds(20)) == .int(3))
        _ = try? await client.send("it.fail", args: ["x"]).get(timeout: .seconds(20))
        // Six adds under a 5/s per-worker limit: the bucket holds at most 5 tokens, so at least one waits.
        try await running.worker.setRateLimit("it.add", RateLimit("5/s"))
        var limited: [AsyncResult] = []
        for i in 0..<6 { limited.append(try await client.send("it.add", args: [.int(Int64(i)), 0])) }
        for r in limited { _ = try await r.get(timeout: .seconds(20)) }

        let ready = try httpGet(port: port, path: "/readyz")
        #expect(ready.status == 200)
        #expect(try httpGet(port: port, path: "/healthz").status == 200)
        #expect(try httpGet(port: port, path: "/nope").status == 404)
        // The worker counts an outcome before its result leaves, but the broker's confirm of the last result
        // can reach the worker after the client has the result: scrape until that confirm is in (bounded).
        func confirms(_ body: String) -> Double {
            body.split(separator: "\n").first { $0.hasPrefix("celeriac_publish_confirm_seconds_count ") }
                .flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        }
        var scrape = try httpGet(port: port, path: "/metrics")
        let deadline = ContinuousClock.now + .seconds(10)
        while confirms(scrape.body) < 8, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
            scrape = try httpGet(port: port, path: "/metrics")
        }
        #expect(scrape.status == 200)
        #expect(scrape.headers.contains("text/plain; version=0.0.4"))
        #expect(
            scrape.body.contains(
                #"celeriac_tasks_finished_total{task="it.add",queue="\#(queue)",outcome="succeeded"} 7"#))
        func sample(_ prefix: String) -> Double? {
            scrape.body.split(separator: "\n").first { $0.hasPrefix(prefix + " ") }.flatMap {
                Double($0.split(separator: " ").last ?? "")
            }
        }
        #expect(
            (sample(#"celeriac_rate_limit_wait_seconds_count{task="it.add",scope="worker"}"#) ?? 0) >= 1,
            "\(scrape.body)")
        // Every result (8) was a confirmed publish.
        #expect((sample("celeriac_publish_confirm_seconds_count") ?? 0) >= 8, "\(scrape.body)")
        #expect(sample(#"celeriac_tasks_reserved{queue="\#(queue)"}"#) == 0, "\(scrape.body)")
        #expect(sample("celeriac_result_publish_failures_total") == 0, "\(scrape.body)")
        // The client stamps its send time: one queue-wait observation per add.
        #expect(
            sample(#"celeriac_task_queue_wait_seconds_count{task="it.add",queue="\#(queue)"}"#) == 7, "\(scrape.body)")
        #expect(
            scrape.body.contains(#"celeriac_tasks_finished_total{task="it.fail",queue="\#(queue)",outcome="failed"} 1"#)
        )
        #expect(scrape.body.contains("process_resident_memory_bytes"))
        #expect(!scrape.body.contains("guest:guest"))

        // promtool accepts the exposition without warnings (exit 0).
        let file = NSTemporaryDirectory() + "celeriac-metrics-\(UUID().uuidString).txt"
        try scrape.body.write(toFile: file, atomically: true, encoding: .utf8)
        defer { unlink(file) }
        let lint = try Shell.run("/bin/sh", ["-c", "promtool check metrics < \(file)"])
        #expect(!lint.contains("WARNING"))

        await client.close()
        try await running.stop()
        #expect(try httpGet(port: port, path: "/readyz").status == 503)
        await deleteQueues([queue], url: url)
    }
}
