import CeleriacCore
import Tracing

/// Producer and consumer spans for task messages, after OpenTelemetry's messaging semantic conventions.
///
/// The trace context travels in the task message's own AMQP headers, written and read by the tracer's propagation
/// (``TraceCarrier``). With a W3C tracer (swift-otel's default) that is `traceparent` / `tracestate` at the top level
/// of the headers, exactly where Python's `opentelemetry-instrumentation-celery` injects and extracts them, so one
/// trace crosses Python and Swift in both directions.
///
/// Off by default and free when off: ``init(_:)`` returns nil for no tracer or a `NoOpTracer`, and callers keep an
/// optional, so the send and run paths neither start spans nor touch headers.
///
/// ```swift
/// InstrumentationSystem.bootstrap(otelTracer)      // the one line: clients and workers made after it trace
/// ```
public struct TaskTracing: Sendable {
    /// The tracer spans are started with and contexts injected and extracted through; never a `NoOpTracer`.
    public let tracer: any Tracer

    /// nil (tracing off) for no tracer or a `NoOpTracer`.
    public init?(_ tracer: (any Tracer)?) {
        guard let tracer, !(tracer is NoOpTracer) else { return nil }
        self.tracer = tracer
    }

    /// The span of the task this worker task runs now (set by ``process(_:queue:worker:_:)``).
    @TaskLocal public static var currentSpan: (any Span)?

    // MARK: - Producer

    /// Starts a producer span for one message about to be published, child of the current context, and writes its
    /// context into the message headers (replacing any context the message carried).
    public func startSend(_ message: inout TaskMessage, queue: String, exchange: String = "") -> any Span {
        let span = tracer.startSpan(
            "send \(message.name)", context: InstrumentationContext.current ?? .topLevel, ofKind: .producer)
        span.attributes = MessagingAttributes.common(message, queue: queue)
        span.attributes[MessagingAttributes.operationType] = "send"
        span.attributes[MessagingAttributes.operationName] = "publish"
        span.attributes[MessagingAttributes.destinationName] = exchange.isEmpty ? queue : exchange
        for (key, value) in carrier(of: span.context) { message.extraHeaders[key] = .string(value) }
        return span
    }

    /// Producer spans for a batch; end them with ``SendSpans/end(error:)`` once the broker confirmed (or refused).
    public func startSends(_ messages: inout [TaskMessage], queues: [String]) -> SendSpans {
        var spans: [any Span] = []
        spans.reserveCapacity(messages.count)
        for i in messages.indices { spans.append(startSend(&messages[i], queue: queues[i])) }
        return SendSpans(spans)
    }

    // MARK: - Consumer

    /// Runs `body` inside a consumer span whose parent is the context the message carries (a new trace when it
    /// carries none), linked to every context in its ``TraceCarrier/linksHeader`` header (a chord body's header
    /// members). The span is the current span and context for everything `body` does (follow-up sends, user code).
    public func process<T: Sendable>(
        _ message: TaskMessage, queue: String, worker: String,
        _ body: () async -> T
    ) async -> T {
        let parent = context(from: TraceCarrier.carrier(message.extraHeaders))
        let span = tracer.startSpan("process \(message.name)", context: parent, ofKind: .consumer)
        span.attributes = MessagingAttributes.common(message, queue: queue)
        span.attributes[MessagingAttributes.operationType] = "process"
        span.attributes[MessagingAttributes.operationName] = "process"
        span.attributes[MessagingAttributes.destinationName] = queue
        span.attributes[MessagingAttributes.worker] = worker
        if message.retries > 0 { span.attributes[MessagingAttributes.retries] = message.retries }
        for link in TraceCarrier.links(message.extraHeaders) {
            span.addLink(SpanLink(context: context(from: link), attributes: [:]))
        }
        defer { span.end() }
        let active = span
        return await InstrumentationContext.withValue(span.context) {
            await TaskTracing.$currentSpan.withValue(active) { await body() }
        }
    }

    /// Marks the current task's span with how the task ended.
    public static func record(_ outcome: TaskTraceOutcome) {
        guard let span = currentSpan else { return }
        span.attributes[MessagingAttributes.outcome] = outcome.label
        switch outcome {
        case .failure(let type, let message):
            span.attributes[MessagingAttributes.errorType] = type
            span.setStatus(SpanStatus(code: .error, message: "\(type): \(message)"))
        case .revoked(let reason):
            span.setStatus(SpanStatus(code: .error, message: "revoked: \(reason)"))
        case .success:
            span.setStatus(SpanStatus(code: .ok))
        case .retry:
            break
        }
    }

    // MARK: - Propagation

    /// The tracer's propagation of `context` as string headers (`traceparent`, … for W3C).
    public func carrier(of context: InstrumentationContext) -> [String: String] {
        var carrier: [String: String] = [:]
        tracer.inject(context, into: &carrier, using: DictionaryInjector())
        return carrier
    }

    /// The current context's propagation (the running task's span), empty outside a span.
    public func currentCarrier() -> [String: String] {
        guard let context = InstrumentationContext.current else { return [:] }
        return carrier(of: context)
    }

    /// The context a carrier (message headers) propagates, extracted by the tracer; the top-level context when it
    /// carries none. Keys are matched as given, then lower-cased.
    public func context(from carrier: [String: String]) -> InstrumentationContext {
        var context = InstrumentationContext.topLevel
        if !carrier.isEmpty { tracer.extract(carrier, into: &context, using: DictionaryExtractor()) }
        return context
    }
}

/// How a traced task ended.
public enum TaskTraceOutcome: Sendable {
    /// The task returned.
    case success
    /// The task failed with exception `type` and its message; the span gets `error.type` and an error status.
    case failure(type: String, message: String)
    /// The task will be retried; the span's status is left unset.
    case retry
    /// The task was revoked; the span gets an error status naming `reason`.
    case revoked(reason: String)

    var label: String {
        switch self {
        case .success: "success"
        case .failure: "failure"
        case .retry: "retry"
        case .revoked: "revoked"
        }
    }
}

/// The producer spans of one confirmed batch. Empty (and free) when tracing is off.
public struct SendSpans: Sendable {
    private let spans: [any Span]
    /// Spans to end together; ``TaskTracing/startSends(_:queues:)`` builds them.
    public init(_ spans: [any Span]) { self.spans = spans }
    /// No spans: what callers use when tracing is off; ending it does nothing.
    public static let none = SendSpans([])

    /// Ends every span; with an error, marks them failed first.
    public func end(error: (any Error)? = nil) {
        for span in spans {
            if let error {
                span.recordError(error)
                span.setStatus(SpanStatus(code: .error, message: String(describing: error)))
            }
            span.end()
        }
    }

    /// Ends the spans when the broker refused the batch (the publish returned false).
    public func end(published: Bool) {
        end(error: published ? nil : TracedPublishFailed())
    }

    /// Runs the publish and ends the spans with its outcome.
    public func around(_ publish: () async throws -> Void) async throws {
        do {
            try await publish()
        } catch {
            end(error: error)
            throw error
        }
        end()
    }
}

/// Recorded on a producer span whose batch the broker did not confirm.
struct TracedPublishFailed: Error, CustomStringConvertible {
    var description: String { "the broker did not confirm the message (unreachable for the whole grace period)" }
}

struct DictionaryInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
}

struct DictionaryExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] ?? carrier[key.lowercased()] }
}
