import CeleriacBroker
import CeleriacMessaging
import CeleriacCanvas
import CeleriacCore
import CeleriacTracing
import Tracing

/// Tracing on the worker (README "Tracing"): the consumer span wraps ``Worker/run(_:_:queue:)`` (see `handle`);
/// these are the producer spans of what a task sends (chain steps, callbacks, chord joins and bodies) and the
/// context a chord member hands to its chord's body. Every function is a no-op without a tracer.
extension Worker {
    func startSends(_ plan: inout CanvasPlan) -> SendSpans { SendSpans.starting(&plan, tracing: tracing) }

    func startSend(_ message: inout TaskMessage, queue: String) -> SendSpans {
        guard let tracing else { return .none }
        return SendSpans([tracing.startSend(&message, queue: queue)])
    }

    /// The running member's span context, stored with its chord part (AMQP headers of the part message).
    func chordPartTraceHeaders() -> FieldTable? {
        guard let tracing else { return nil }
        let carrier = tracing.currentCarrier()
        guard !carrier.isEmpty else { return nil }
        return FieldTable(carrier.sorted { $0.key < $1.key }.map { (key: $0.key, value: FieldValue.string($0.value)) })
    }

    /// The span context a chord part carries, as one entry of the body's links header (empty without tracing).
    func traceLink(of part: Delivery) -> [JSONValue] {
        guard tracing != nil, let headers = part.properties.headers else { return [] }
        var carrier: [String: String] = [:]
        for (key, value) in headers { if let s = value.stringValue { carrier[key] = s } }
        return carrier.isEmpty ? [] : [TraceCarrier.json(carrier)]
    }

    /// The chord body's messages carry every header member's span context, so their consumer spans link to them.
    func linked(_ plan: CanvasPlan, to links: [JSONValue]) -> CanvasPlan {
        guard tracing != nil, !links.isEmpty else { return plan }
        var plan = plan
        for i in plan.messages.indices { plan.messages[i].message.extraHeaders[TraceCarrier.linksHeader] = .array(links) }
        return plan
    }

    /// After a run: the span's status, and the workflow-graph record when the task is part of a recorded workflow.
    func traceAndRecord(_ message: TaskMessage, outcome: Outcome, seconds: Double) async {
        if tracing != nil { TaskTracing.record(Self.traceOutcome(outcome)) }
        await recordGraphFinished(message, outcome: outcome, seconds: seconds)
    }

    static func traceOutcome(_ outcome: Outcome) -> TaskTraceOutcome {
        switch outcome {
        case .success: .success
        case .failure(let f), .reported(let f, _): .failure(type: f.type, message: f.message)
        case .workerLost(let lost): .failure(type: lost.failure.type, message: lost.failure.message)
        case .retry: .retry
        case .revoked(let reason): .revoked(reason: reason)
        }
    }
}
