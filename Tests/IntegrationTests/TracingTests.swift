import AMQPTransport
import CeleriacAMQP
import CeleriacCanvas
import CeleriacCore
import CeleriacMessaging
import CeleriacTracing
import CeleriacWorker
import Foundation
import ServiceLifecycle
import Testing
import Tracing

/// Starts a worker that traces with `tracer` (nil: the default, which is off) and waits until it consumes.
func startTracedWorker(_ registry: TaskRegistry, url: AMQPURL, queue: String, tracer: (any Tracer)?) async throws
    -> RunningWorker
{
    let observer = RecordingObserver()
    let logger = testLogger("it.trace.worker")
    var configuration = Worker.Configuration(queues: [queue], concurrency: 8, hostname: "trace-\(queue.suffix(8))@test")
    if let tracer { configuration.tracer = tracer }
    let worker = Worker(
        registry: registry, configuration: configuration, broker: AMQPBroker(url: url), logger: logger,
        observer: observer)
    let group = ServiceGroup(configuration: .init(services: [.init(service: worker)], logger: logger))
    let task = Task { try await group.run() }
    _ = try await first(observer.readyEvents, within: .seconds(30), "the worker to be ready") { $0 }
    return RunningWorker(worker: worker, observer: observer, group: group, task: task)
}

func startTracedClient(url: AMQPURL, queue: String, tracer: (any Tracer)?) async throws -> CeleriacClient {
    var configuration = CeleriacClient.Configuration(defaultQueue: queue, connectionName: "it-trace-client")
    if let tracer { configuration.tracer = tracer }
    let client = CeleriacClient(configuration: configuration, broker: AMQPBroker(url: url))
    try await client.start()
    return client
}

/// Waits (on span-end events, with a deadline) until `done` holds for the finished spans; returns them.
func waitForSpans(
    _ tracer: RecordingTracer, within timeout: Duration = .seconds(30), _ what: String,
    until done: @escaping @Sendable ([RecordingTracer.Finished]) -> Bool
) async throws -> [RecordingTracer.Finished] {
    if done(tracer.finishedSpans) { return tracer.finishedSpans }
    _ = try await first(tracer.ended, within: timeout, what) { _ in done(tracer.finishedSpans) }
    return tracer.finishedSpans
}

/// Distributed tracing end to end: producer/consumer spans, parents across chain steps, a chord body linked to its
/// header, nothing on the wire when tracing is off, and one trace across Python and Swift both ways.
@Suite(.tags(.integration), .serialized)
struct TracingTests {
    @Test func chainStepIsAChildOfTheStepBefore() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("trace")
        let tracer = RecordingTracer()
        let worker = try await startTracedWorker(CanvasTasks.registry(), url: url, queue: queue, tracer: tracer)
        let client = try await startTracedClient(url: url, queue: queue, tracer: tracer)
        let root = tracer.startSpan("test request", context: .topLevel, ofKind: .server)
        let result = try await InstrumentationContext.withValue(root.context) {
            try await client.apply(CanvasTasks.add.s(1, 1) | CanvasTasks.mul.s(3) | CanvasTasks.add.s(4))
        }
        root.end()
        let ten: Int = try await result.get(timeout: .seconds(30))
        #expect(ten == 10)
        let spans = try await waitForSpans(tracer, "three process spans") { s in
            s.filter { $0.kind == .consumer }.count >= 3
        }
        let rootID = try #require(spans.first { $0.name == "test request" }).id
        let byID = Dictionary(spans.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let processes = spans.filter { $0.kind == .consumer }
        #expect(processes.count == 3)
        #expect(spans.allSatisfy { $0.id.trace == rootID.trace }, "one trace")
        // Each step's process span → its send span → the step before's process span (the first: the request).
        var expectedParents: [RecordingTracer.SpanID] = []
        for step in processes {
            let send = try #require(step.parent.flatMap { byID[$0] }, "the send span of \(step.name)")
            #expect(send.kind == .producer && send.name == "send \(step.attribute("celery.task_name") ?? "?")")
            #expect(send.attribute("messaging.message.id") == step.attribute("messaging.message.id"))
            expectedParents.append(try #require(send.parent))
        }
        let processIDs = Set(processes.map(\.id))
        let parentsThatAreSteps = expectedParents.filter { processIDs.contains($0) }
        let parentsThatAreRoot = expectedParents.filter { $0 == rootID }
        #expect(parentsThatAreRoot.count == 1, "the first step was sent inside the request span")
        #expect(parentsThatAreSteps.count == 2, "steps 2 and 3 were sent inside the step before")
        #expect(Set(parentsThatAreSteps).count == 2)
        let attributes = try #require(processes.first)
        #expect(attributes.attribute("messaging.system") == "rabbitmq")
        #expect(attributes.attribute("messaging.operation.type") == "process")
        #expect(attributes.attribute("messaging.destination.name") == queue)
        await client.close()
        try await worker.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func chordOfTenIsOneTraceWithTheBodyLinkedToEveryHeaderSpan() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("trace")
        let tracer = RecordingTracer()
        let worker = try await startTracedWorker(CanvasTasks.registry(), url: url, queue: queue, tracer: tracer)
        let client = try await startTracedClient(url: url, queue: queue, tracer: tracer)
        let root = tracer.startSpan("test request", context: .topLevel, ofKind: .server)
        let result = try await InstrumentationContext.withValue(root.context) {
            try await client.apply(chord(group { for i in 0..<10 { CanvasTasks.add.s(i, i) } }, CanvasTasks.xsum.s()))
        }
        root.end()
        let sum: Int = try await result.get(timeout: .seconds(60))
        #expect(sum == 90)
        let spans = try await waitForSpans(tracer, "the process spans of the header, the join and the body") { s in
            s.contains { $0.name == "process cv.xsum" } && s.contains { $0.name == "process \(ChordInfo.joinTaskName)" }
                && s.filter { $0.name == "process cv.add" }.count == 10
        }
        let rootID = try #require(spans.first { $0.name == "test request" }).id
        let traces = Set(spans.map(\.id.trace))
        #expect(traces == [rootID.trace], "one trace")
        let header = spans.filter { $0.name == "process cv.add" }
        #expect(header.count == 10)
        let body = try #require(spans.first { $0.name == "process cv.xsum" })
        let links = Set(body.links)
        let headerIDs = Set(header.map(\.id))
        #expect(body.links.count == 10)
        #expect(links == headerIDs, "the body links to every header member's span")
        // The body descends from the request through the join (no orphan).
        let byID = Dictionary(spans.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var cursor: RecordingTracer.SpanID? = body.id
        var hops = 0
        while let id = cursor, id != rootID, hops < 20 { cursor = byID[id]?.parent; hops += 1 }
        #expect(cursor == rootID)
        await client.close()
        try await worker.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func noTracerOrANoOpTracerMeansTracingIsOff() {
        #expect(TaskTracing(nil) == nil)
        #expect(TaskTracing(NoOpTracer()) == nil)
        #expect(TaskTracing(RecordingTracer()) != nil)
        // Nothing is bootstrapped in the test process, so the defaults are the NoOpTracer: off.
        let url = try? AMQPURL("amqp://127.0.0.1:1//")
        if let url {
            #expect(Worker.Configuration().tracer is NoOpTracer)
            #expect(CeleriacClient.Configuration().tracer is NoOpTracer)
        } else {
            Issue.record("test URL did not parse")
        }
    }

    @Test func offByDefaultSendsNoTraceHeaders() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("trace-off")
        let plain = try await startTracedClient(url: url, queue: queue, tracer: nil)
        let tracer = RecordingTracer()
        let traced = try await startTracedClient(url: url, queue: queue, tracer: tracer)
        _ = try await plain.send("cv.add", args: [1, 2])
        _ = try await traced.send("cv.add", args: [1, 2])
        let reader = AMQPConnection(url: url, options: .init(name: "it-trace-reader", confirms: false))
        try await reader.connect()
        let untraced = try #require(try await reader.get(queue: queue, noAck: true))
        let withTrace = try #require(try await reader.get(queue: queue, noAck: true))
        #expect(untraced.properties.headers?["traceparent"] == nil)
        let send = try #require(tracer.finishedSpans.first { $0.kind == .producer })
        let header = withTrace.properties.headers?["traceparent"]?.stringValue
        #expect(
            header == "00-\(send.id.trace)-\(send.id.span)-01",
            "the send span's context, W3C, at the top level of the headers")
        await reader.close()
        await plain.close()
        await traced.close()
        await deleteQueues([queue], url: url)
    }

    @Test func pythonSpanIsTheParentOfTheCeleriacConsumerSpan() async throws {
        let python = try TestPython.path()
        let url = try TestBroker.shared.url()
        let queue = uniqueName("trace-py")
        let tracer = RecordingTracer()
        let worker = try await startTracedWorker(CanvasTasks.registry(), url: url, queue: queue, tracer: tracer)
        var env = ProcessInfo.processInfo.environment
        env["CELERIAC_INTEROP_BROKER"] = TestBroker.shared.urlString
        env["CELERIAC_INTEROP_QUEUE"] = queue
        env["PYTHONPATH"] = CeleryInteropTests.interopDir
        let output = await Shell.runOffPool(
            python, ["\(CeleryInteropTests.interopDir)/python_trace_client.py"], environment: env)
        let line = output.split(separator: "\n").last.flatMap { try? JSONValue.parse(String($0)) }
        let report = try #require(line, "python_trace_client.py printed no JSON: \(output.suffix(2000))")
        #expect(report["result"] == .int(5))
        let traceID = try #require(report["trace_id"]?.stringValue)
        let publishSpan = try #require(report["publish_span_id"]?.stringValue, "\(output)")
        #expect(report["publish_parent_span_id"]?.stringValue == report["request_span_id"]?.stringValue)
        let spans = try await waitForSpans(tracer, "the Swift process span") { s in
            s.contains { $0.name == "process cv.add" }
        }
        let process = try #require(spans.first { $0.name == "process cv.add" })
        #expect(process.id.trace == traceID, "the Python trace continues in Swift")
        #expect(
            process.parent == RecordingTracer.SpanID(trace: traceID, span: publishSpan),
            "the parent is Python's publish span")
        try await worker.stop()
        await deleteQueues([queue], url: url)
    }

    @Test func celeriacSpanIsTheParentOfThePythonWorkerSpan() async throws {
        let url = try TestBroker.shared.url()
        let queue = uniqueName("trace-pyw")
        let pid = try CeleryInteropTests.spawnPythonWorker(app: "trace_app", queue: queue)
        defer { Shell.kill(pid) }
        let tracer = RecordingTracer()
        let client = try await startTracedClient(url: url, queue: queue, tracer: tracer)
        let root = tracer.startSpan("test request", context: .topLevel, ofKind: .server)
        let sent = try await InstrumentationContext.withValue(root.context) { try await client.send("trace.whoami") }
        root.end()
        // The first call also waits for the Python worker to come up.
        let report = try await sent.get(timeout: .seconds(90))
        let send = try #require(tracer.finishedSpans.first { $0.name == "send trace.whoami" })
        #expect(send.parent?.span == root.context.recordedSpanID?.span)
        #expect(
            report["trace_id"]?.stringValue == send.id.trace,
            "the Swift trace continues in Python: \(report.jsonString)")
        #expect(
            report["parent_span_id"]?.stringValue == send.id.span,
            "the Python run span's parent is Celeriac's send span")
        #expect(report["name"]?.stringValue == "run/trace.whoami")
        await client.close()
        await deleteQueues([queue], url: url)
    }
}
