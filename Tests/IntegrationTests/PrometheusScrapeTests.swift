import CeleriacCore
import CeleriacMetrics
import Foundation
import Prometheus
import Testing

/// A real Prometheus (Debian's `prometheus`, on loopback with a generated config) scrapes a running worker, and a
/// query returns exactly what the test caused.
@Suite(.tags(.integration))
struct PrometheusScrapeTests {
    @Test func prometheusScrapesExactlyTheTasksTheTestRan() async throws {
        let prometheusBinary = "/usr/bin/prometheus"
        guard FileManager.default.isExecutableFile(atPath: prometheusBinary) else {
            Issue.record("\(prometheusBinary) is missing: scripts/bootstrap.sh installs Debian's prometheus")
            return
        }
        let url = try TestBroker.shared.url()
        let queue = uniqueName("prom")
        let registry = PrometheusCollectorRegistry()
        let metrics = WorkerMetrics(
            registry: registry, knownTasks: TestTasks.registry().names, queues: [queue], concurrency: 4)
        let running = try await startWorker(TestTasks.registry(), url: url, queues: [queue], observers: [metrics])
        let endpoint = MetricsEndpoint(
            registry: registry, host: "127.0.0.1", port: 0, isReady: { running.worker.isReady })
        let metricsPort = try endpoint.start()
        defer { endpoint.stop() }

        let client = try await startClient(url: url, queue: queue)
        for i in 0..<100 { _ = try await client.send("it.add", args: [.int(Int64(i)), 1]).get(timeout: .seconds(20)) }

        let dir = NSTemporaryDirectory() + "celeriac-prom-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }

        // Beat (the demo's `beat` process) with one one-off entry a few seconds ahead: it sends exactly once.
        let beatQueue = uniqueName("prom-beat")
        // Beat must be up before it (a first run is not caught up).
        let at = ISOTime.format(Date().addingTimeInterval(8))
        try """
        entries:
          once:
            task: it.add
            args: [1, 1]
            queue: \(beatQueue)
            at: "\(at)"
        """.write(toFile: "\(dir)/schedule.yaml", atomically: true, encoding: .utf8)
        let beatPort = try freeLoopbackPort()
        let beat = try Shell.spawn(
            DemoApp.path,
            [
                "beat", "--schedule", "\(dir)/schedule.yaml", "--no-lock", "--state", "\(dir)/beat-state.json",
                "--metrics-port", String(beatPort), "--metrics-bind", "127.0.0.1", "--broker",
                TestBroker.shared.urlString,
            ],
            environment: ProcessInfo.processInfo.environment, log: "\(dir)/beat.log")
        defer { Shell.kill(beat) }
        let config = """
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: celeriac-worker
                static_configs:
                  - targets: ['127.0.0.1:\(metricsPort)']
              - job_name: celeriac-beat
                static_configs:
                  - targets: ['127.0.0.1:\(beatPort)']
            """
        try config.write(toFile: "\(dir)/prometheus.yml", atomically: true, encoding: .utf8)
        let webPort = try freeLoopbackPort()
        let pid = try Shell.spawn(
            prometheusBinary,
            [
                "--config.file=\(dir)/prometheus.yml", "--storage.tsdb.path=\(dir)/data",
                "--web.listen-address=127.0.0.1:\(webPort)",
            ],
            environment: ProcessInfo.processInfo.environment, log: "\(dir)/prometheus.log")
        defer { Shell.kill(pid) }

        // Prometheus needs a moment to start and to scrape once; ask until it answers (bounded).
        func value(_ query: String, _ expected: String) async throws -> String {
            let encoded = query.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? query
            return try await within(.seconds(60), "Prometheus to return \(expected) for \(query)") {
                while true {
                    if let response = try? httpGet(port: webPort, path: "/api/v1/query?query=\(encoded)"),
                        response.status == 200,
                        let json = try? JSONValue.parse(response.body),
                        case .array(let results)? = json["data"]?["result"], let first = results.first,
                        case .array(let pair)? = first["value"], pair.count == 2, let v = pair[1].stringValue
                    {
                        if v == expected { return v }
                    }
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
        }
        let finished = try await value(
            "celeriac_tasks_finished_total{task=\"it.add\",queue=\"\(queue)\",outcome=\"succeeded\"}", "100")
        #expect(finished == "100")
        // Every call carried its send time: 100 queue-wait observations.
        let waits = try await value("celeriac_task_queue_wait_seconds_count{task=\"it.add\",queue=\"\(queue)\"}", "100")
        #expect(waits == "100")
        let beatSends = try await value("celeriac_beat_sends_total{entry=\"once\",job=\"celeriac-beat\"}", "1")
        #expect(beatSends == "1")
        let up = try httpGet(port: webPort, path: "/api/v1/query?query=up")
        #expect(up.body.contains("\"celeriac-worker\"") && up.body.contains("\"celeriac-beat\""))
        await client.close()
        try await running.stop()
        await deleteQueues([queue, beatQueue], url: url)
    }
}
