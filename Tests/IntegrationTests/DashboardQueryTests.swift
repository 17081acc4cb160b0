import AMQPTransport
import CeleriacAMQP
import CeleriacCoordination
import CeleriacCore
import CeleriacMessaging
import Foundation
import Testing

/// Every PromQL expression of `Grafana/*.json` and `Deploy/prometheus/alerts.yml` runs against a real Prometheus
/// that scrapes what the deployment scrapes: a `celeriac-demo worker` process (process pool), a `celeriac-demo beat`
/// process and the test RabbitMQ node's own `rabbitmq_prometheus` endpoint (aggregated and per-queue).
///
/// How each kind of expression is checked:
/// - dashboard panel targets and query variables: template variables substituted, then `/api/v1/query` must
///   answer `success` with at least one series, except the few in ``mayBeEmpty`` (series that only exist after
///   an event the workload does not cause), which must answer `success`;
/// - alert rules: Prometheus loads `alerts.yml` itself; every rule must be evaluated with health `ok`, its
///   expression must answer `success`, and each operand of the condition *without its threshold comparison*
///   (`X > 0.1` → `X`; `A and on (q) B` → `A`, `B`) must return data unless the alert is in ``mayBeEmpty``.
///   `CeleriacMessagesDeadLettered` must fire, since the workload dead-letters a message.
@Suite(.tags(.integration))
struct DashboardQueryTests {
    static let demo = DemoApp.path

    /// Expressions allowed to return no series, with the reason. Matched against "source: place" by prefix.
    /// Empty today: every series the dashboards and alerts read is pre-set to 0 or caused by the workload. Add an
    /// entry only for a series that cannot exist before a rare event, and say why.
    static let mayBeEmpty: [String: String] = [:]

    static func allowedEmpty(_ what: String) -> Bool { mayBeEmpty.keys.contains { what.hasPrefix($0) } }

    @Test func everyDashboardAndAlertExpressionReturnsData() async throws {
        let prometheusBinary = "/usr/bin/prometheus"
        guard FileManager.default.isExecutableFile(atPath: prometheusBinary),
            FileManager.default.isExecutableFile(atPath: Self.demo)
        else {
            Issue.record(
                "\(prometheusBinary) or \(Self.demo) is missing: scripts/bootstrap.sh installs prometheus, `swift build --build-tests` builds the demo"
            )
            return
        }
        let repo = TestBroker.repoRoot
        let url = try TestBroker.shared.url()
        let rabbitPort = TestBroker.shared.prometheusPort
        guard (try? httpGet(port: rabbitPort, path: "/metrics").status) == 200 else {
            Issue.record(
                "RabbitMQ's rabbitmq_prometheus is not answering on 127.0.0.1:\(rabbitPort): restart the test node (scripts/broker.sh restart) so it gets the plugin"
            )
            return
        }
        let dir = NSTemporaryDirectory() + "celeriac-dash-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let queue = uniqueName("dash")
        let missingTask = "it.dash.missing-\(UUID().uuidString.prefix(8).lowercased())"
        let env = ProcessInfo.processInfo.environment

        let workerPort = try freeLoopbackPort()
        let worker = try Shell.spawn(
            Self.demo,
            [
                "worker", "-Q", queue, "-c", "2", "-n", "\(queue)@test", "--metrics-port", String(workerPort),
                "--metrics-bind", "127.0.0.1", "--broker", TestBroker.shared.urlString,
            ],
            environment: env, log: "\(dir)/worker.log")
        var workerRunning = true
        defer { if workerRunning { Shell.kill(worker) } }
        try """
        entries:
          tick:
            task: demo.add
            every: 1s
            args: [1, 1]
            queue: \(queue)
        """.write(toFile: "\(dir)/schedule.yaml", atomically: true, encoding: .utf8)
        let beatPort = try freeLoopbackPort()
        let beat = try Shell.spawn(
            Self.demo,
            [
                "beat", "--schedule", "\(dir)/schedule.yaml", "--no-lock", "--state", "\(dir)/beat-state.json",
                "--metrics-port", String(beatPort), "--metrics-bind", "127.0.0.1", "--broker",
                TestBroker.shared.urlString,
            ],
            environment: env, log: "\(dir)/beat.log")
        defer { Shell.kill(beat) }

        // The job names of Deploy/prometheus/prometheus.yml (the alerts select on them), with loopback targets, and
        // Prometheus loading Deploy/prometheus/alerts.yml itself.
        let deployConfig = try String(contentsOfFile: "\(repo)/Deploy/prometheus/prometheus.yml", encoding: .utf8)
        let jobs = deployConfig.split(separator: "\n").compactMap { line -> String? in
            let t = line.trimmingCharacters(in: .whitespaces)
            return t.hasPrefix("- job_name:")
                ? t.dropFirst("- job_name:".count).trimmingCharacters(in: .whitespaces) : nil
        }
        #expect(
            Set(jobs) == ["celeriac-workers", "celeriac-beat", "rabbitmq", "rabbitmq-detailed"],
            "Deploy/prometheus/prometheus.yml's jobs changed (\(jobs)): update this test's scrape config to match")
        try """
        global:
          scrape_interval: 1s
          evaluation_interval: 1s
        rule_files:
          - \(repo)/Deploy/prometheus/alerts.yml
        scrape_configs:
          - job_name: celeriac-workers
            static_configs: [{targets: ['127.0.0.1:\(workerPort)']}]
          - job_name: celeriac-beat
            static_configs: [{targets: ['127.0.0.1:\(beatPort)']}]
          - job_name: rabbitmq
            static_configs: [{targets: ['127.0.0.1:\(rabbitPort)']}]
          - job_name: rabbitmq-detailed
            metrics_path: /metrics/detailed
            params:
              family: [queue_coarse_metrics, queue_consumer_count]
            static_configs: [{targets: ['127.0.0.1:\(rabbitPort)']}]
        """.write(toFile: "\(dir)/prometheus.yml", atomically: true, encoding: .utf8)
        let webPort = try freeLoopbackPort()
        let prometheus = try Shell.spawn(
            prometheusBinary,
            [
                "--config.file=\(dir)/prometheus.yml", "--storage.tsdb.path=\(dir)/data",
                "--web.listen-address=127.0.0.1:\(webPort)",
            ],
            environment: env, log: "\(dir)/prometheus.log")
        defer { Shell.kill(prometheus) }
        let api = PrometheusAPI(port: webPort)

        /// Bounded poll of Prometheus until `promql`'s first value satisfies `ok`.
        func waitFor(_ promql: String, _ what: String, _ ok: @escaping @Sendable (Double) -> Bool = { $0 >= 1 })
            async throws
        {
            _ = try await within(.seconds(60), "Prometheus: \(what) (\(promql))") {
                while true {
                    if let v = api.number(promql), ok(v) { return true }
                    try await Task.sleep(for: .milliseconds(250))
                }
            }
        }
        try await waitFor(#"celeriac_worker_ready{job="celeriac-workers"}"#, "the worker process ready")

        // Workload: successes, a failure, a retry (demo.flaky retries once), a crashed pool child (worker_lost) and
        // a dead letter (a task no worker registers).
        let client = try await startClient(url: url, queue: queue)
        for i in 0..<5 { _ = try await client.send("demo.add", args: [.int(Int64(i)), 1]).get(timeout: .seconds(30)) }
        #expect(try await client.send("demo.flaky", args: [1]).get(timeout: .seconds(30)) == .int(1))
        await #expect(throws: (any Error).self) {
            try await client.send("demo.fail", args: ["dashboard"]).get(timeout: .seconds(30))
        }
        await #expect(throws: (any Error).self) { try await client.send("demo.crash").get(timeout: .seconds(30)) }
        _ = try await client.send(missingTask, args: [])

        let w = #"job="celeriac-workers", queue=""# + queue + #"""#
        try await waitFor(#"sum(celeriac_tasks_finished_total{"# + w + #", outcome="retried"})"#, "a retry counted")
        try await waitFor(#"sum(celeriac_tasks_finished_total{"# + w + #", outcome="failed"})"#, "a failure counted")
        try await waitFor(
            #"sum(celeriac_tasks_finished_total{"# + w + #", outcome="worker_lost"})"#, "a worker_lost counted")
        try await waitFor(#"sum(celeriac_messages_dead_lettered_total{"# + w + #"})"#, "a dead letter counted")
        try await waitFor(
            #"sum(celeriac_pool_child_restarts_total{job="celeriac-workers"})"#, "a pool child restart counted")
        try await waitFor(
            #"sum(celeriac_beat_sends_total{job="celeriac-beat", entry="tick"})"#, "two beat sends", { $0 >= 2 })
        try await waitFor(
            #"count(rabbitmq_detailed_queue_messages_ready{job="rabbitmq-detailed", queue=""# + queue + #""})"#,
            "RabbitMQ's per-queue depth")
        try await waitFor(
            #"ALERTS{alertname="CeleriacMessagesDeadLettered", alertstate="firing"}"#,
            "CeleriacMessagesDeadLettered firing")

        // Dashboards: every target and query variable, with Grafana's variables set to this worker and to All.
        let variables = [
            "job": ".*", "queue": ".*", "task": ".*", "instance": "127.0.0.1:\(workerPort)",
            "__rate_interval": "1m", "__interval": "15s", "__range": "1h", "__range_s": "3600",
        ]
        var checked = 0
        for dashboard in try DashboardExpressions.dashboards(in: repo) {
            for e in try DashboardExpressions.expressions(repo: repo, dashboard: dashboard) {
                let promql = try DashboardExpressions.substitute(e.expr, variables)
                try await expectAnswer(api, promql, "\(e)", mayBeEmpty: Self.allowedEmpty("\(e)"))
                checked += 1
            }
        }
        #expect(checked >= 60, "only \(checked) dashboard expressions found: did the extraction break?")

        // Alerts, as Prometheus loaded and evaluated them.
        let groups = try api.get("/api/v1/rules")["data"]?["groups"]?.arrayValue ?? []
        let rules = groups.flatMap { $0["rules"]?.arrayValue ?? [] }
        let alertCount =
            try String(contentsOfFile: "\(repo)/Deploy/prometheus/alerts.yml", encoding: .utf8).components(
                separatedBy: "- alert:"
            ).count - 1
        #expect(
            rules.count == alertCount && alertCount > 0,
            "Prometheus loaded \(rules.count) rules, alerts.yml has \(alertCount)")
        for rule in rules {
            let name = rule["name"]?.stringValue ?? "?", expr = rule["query"]?.stringValue ?? ""
            #expect(
                rule["health"]?.stringValue == "ok",
                "alert \(name): evaluation health \(rule["health"]?.stringValue ?? "?"): \(rule["lastError"]?.stringValue ?? "")"
            )
            try await expectAnswer(api, expr, "alert \(name) (full condition)", mayBeEmpty: true)
            for operand in DashboardExpressions.alertOperands(expr) {
                try await expectAnswer(
                    api, operand, "alert \(name) (operand without threshold: \(operand))",
                    mayBeEmpty: Self.allowedEmpty("alert \(name)"))
            }
        }

        await client.close()
        // Leave celeriac.dead as it was: with the worker gone, replay our dead letter to our queue, then delete it.
        Shell.kill(worker)
        workerRunning = false
        let admin = AMQPConnection(url: url, options: .init(name: "it-dash-cleanup", confirms: true))
        if (try? await admin.connect()) != nil {
            _ = try? await DeadLetterQueue(connection: admin).replay(id: nil, task: missingTask)
            await admin.close()
        }
        await deleteQueues([queue], url: url)
    }

    /// `promql` answers `success`; and, unless it may be empty, with at least one series within a bounded poll (a
    /// `rate()` over a counter born during the workload needs two scrapes before it has a value).
    private func expectAnswer(_ api: PrometheusAPI, _ promql: String, _ what: String, mayBeEmpty: Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            let answer: PrometheusAPI.Answer
            do { answer = try api.query(promql) } catch {
                Issue.record("\(what): the query failed: \(error)\n  \(promql)")
                return
            }
            guard answer.status == "success" else {
                Issue.record("\(what): Prometheus says \(answer.error ?? answer.status)\n  \(promql)")
                return
            }
            if mayBeEmpty || !answer.result.isEmpty { return }
            if ContinuousClock.now >= deadline {
                Issue.record("\(what): no data after the workload (10 s of scrapes)\n  \(promql)")
                return
            }
            try await Task.sleep(for: .milliseconds(250))
        }
    }
}
