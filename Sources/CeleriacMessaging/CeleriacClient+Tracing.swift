import CeleriacCanvas
import CeleriacCore
import CeleriacTracing
import Tracing

/// Producer spans on the client's send paths (README "Tracing"). Without a tracer these return `.none` at once:
/// no span, no header.
extension CeleriacClient {
    func startSend(_ message: inout TaskMessage, queue: String, exchange: String?) -> SendSpans {
        guard let tracing else { return .none }
        return SendSpans([tracing.startSend(&message, queue: queue, exchange: exchange ?? "")])
    }

    func startSends(_ plan: inout CanvasPlan) -> SendSpans { SendSpans.starting(&plan, tracing: tracing) }
}

extension SendSpans {
    /// One producer span per message of a canvas plan (their contexts go into the messages); none without a tracer.
    public static func starting(_ plan: inout CanvasPlan, tracing: TaskTracing?) -> SendSpans {
        guard let tracing else { return .none }
        var spans: [any Span] = []
        spans.reserveCapacity(plan.messages.count)
        for i in plan.messages.indices {
            spans.append(tracing.startSend(&plan.messages[i].message, queue: plan.messages[i].queue))
        }
        return SendSpans(spans)
    }
}
