import CeleriacCore

/// Where trace context lives in a task message (README "Tracing", wire section).
///
/// The tracer's own keys (`traceparent`, `tracestate` for W3C) are top-level application headers of the AMQP
/// message, as Celery keeps any header it does not know and as `opentelemetry-instrumentation-celery` reads them
/// from `task.request`. Celeriac adds one header of its own, ``linksHeader``, on a chord body: the contexts of the
/// chord's header members, one carrier object each, which the body's consumer span links to.
public enum TraceCarrier {
    /// Header holding a chord body's span links: an array of carrier objects, one per header member.
    public static let linksHeader = "celeriac_trace_links"

    /// Every string-valued header, as the tracer's extractor reads them (unknown keys are ignored by it).
    public static func carrier(_ headers: JSONObject) -> [String: String] {
        var out: [String: String] = [:]
        for (key, value) in headers where key != linksHeader {
            if let s = value.stringValue { out[key] = s }
        }
        return out
    }

    /// The link carriers of ``linksHeader`` (an array of string-to-string objects).
    public static func links(_ headers: JSONObject) -> [[String: String]] {
        guard let array = headers[linksHeader]?.arrayValue else { return [] }
        return array.compactMap { item in
            guard let object = item.objectValue else { return nil }
            var carrier: [String: String] = [:]
            for (key, value) in object { if let s = value.stringValue { carrier[key] = s } }
            return carrier.isEmpty ? nil : carrier
        }
    }

    /// A carrier as a JSON object of strings, keys sorted, as it goes into ``linksHeader``.
    public static func json(_ carrier: [String: String]) -> JSONValue {
        .object(JSONObject(carrier.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.string($0.value)) }))
    }
}
