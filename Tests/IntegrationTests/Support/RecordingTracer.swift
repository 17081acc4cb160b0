import Foundation
import Synchronization
import Tracing

/// A tracer for tests: W3C ids and `traceparent` propagation (as OpenTelemetry's), spans kept in memory, and every
/// finished span announced on a stream so tests wait for the span they expect instead of sleeping.
final class RecordingTracer: Tracer {
    struct SpanID: Sendable, Hashable, CustomStringConvertible {
        let trace: String  // 32 lowercase hex
        let span: String  // 16 lowercase hex
        var description: String { "\(trace)/\(span)" }
    }

    struct Finished: Sendable {
        let name: String
        let kind: SpanKind
        let id: SpanID
        let parent: SpanID?
        let attributes: SpanAttributes
        let links: [SpanID]
        let status: SpanStatus?
        func attribute(_ key: String) -> String? {
            switch attributes[key]?.toSpanAttribute() {
            case .string(let s)?: s
            case .stringConvertible(let c)?: "\(c)"
            case .int64(let i)?: String(i)
            default: nil
            }
        }
    }

    private let finished = Mutex<[Finished]>([])
    let ended: AsyncStream<Finished>
    private let endedSink: AsyncStream<Finished>.Continuation

    init() { (ended, endedSink) = AsyncStream<Finished>.makeStream() }

    var finishedSpans: [Finished] { finished.withLock { $0 } }

    fileprivate func end(_ span: Finished) {
        finished.withLock { $0.append(span) }
        endedSink.yield(span)
    }

    static func hex(bytes: Int) -> String {
        var out = ""
        for _ in 0..<bytes { out += String(format: "%02x", UInt8.random(in: 0...255)) }
        return out
    }

    func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> InstrumentationContext, ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> RecordedSpan {
        var context = context()
        let parent = context.recordedSpanID
        let id = SpanID(trace: parent?.trace ?? Self.hex(bytes: 16), span: Self.hex(bytes: 8))
        context.recordedSpanID = id
        return RecordedSpan(name: operationName, kind: kind, id: id, parent: parent, context: context, tracer: self)
    }

    func forceFlush() {}

    func inject<Carrier, Inject: Injector>(
        _ context: InstrumentationContext, into carrier: inout Carrier, using injector: Inject
    )
    where Inject.Carrier == Carrier {
        guard let id = context.recordedSpanID else { return }
        injector.inject("00-\(id.trace)-\(id.span)-01", forKey: "traceparent", into: &carrier)
    }

    func extract<Carrier, Extract: Extractor>(
        _ carrier: Carrier, into context: inout InstrumentationContext, using extractor: Extract
    )
    where Extract.Carrier == Carrier {
        guard let value = extractor.extract(key: "traceparent", from: carrier), let id = Self.parse(traceparent: value)
        else { return }
        context.recordedSpanID = id
    }

    /// `00-<32 hex>-<16 hex>-<2 hex>` (W3C Trace Context, version 00).
    static func parse(traceparent: String) -> SpanID? {
        let parts = traceparent.split(separator: "-")
        guard parts.count == 4, parts[0] == "00", parts[1].count == 32, parts[2].count == 16, parts[3].count == 2,
            parts[1].allSatisfy(\.isHexDigit), parts[2].allSatisfy(\.isHexDigit)
        else { return nil }
        return SpanID(trace: parts[1].lowercased(), span: parts[2].lowercased())
    }
}

final class RecordedSpan: Span {
    let context: InstrumentationContext
    private let id: RecordingTracer.SpanID
    private let parent: RecordingTracer.SpanID?
    private let kind: SpanKind
    private let tracer: RecordingTracer
    private struct State {
        var name: String
        var attributes = SpanAttributes()
        var links: [RecordingTracer.SpanID] = []
        var status: SpanStatus?
        var ended = false
    }
    private let state: Mutex<State>

    init(
        name: String, kind: SpanKind, id: RecordingTracer.SpanID, parent: RecordingTracer.SpanID?,
        context: InstrumentationContext, tracer: RecordingTracer
    ) {
        self.id = id
        self.parent = parent
        self.kind = kind
        self.context = context
        self.tracer = tracer
        self.state = Mutex(State(name: name))
    }

    var operationName: String {
        get { state.withLock { $0.name } }
        set { state.withLock { $0.name = newValue } }
    }
    var attributes: SpanAttributes {
        get { state.withLock { $0.attributes } }
        set { state.withLock { $0.attributes = newValue } }
    }
    var isRecording: Bool { state.withLock { !$0.ended } }
    func setStatus(_ status: SpanStatus) { state.withLock { $0.status = status } }
    func addEvent(_ event: SpanEvent) {}
    func recordError<Instant: TracerInstant>(
        _ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant
    ) {}
    func addLink(_ link: SpanLink) {
        guard let linked = link.context.recordedSpanID else { return }
        state.withLock { $0.links.append(linked) }
    }
    func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        let snapshot = state.withLock { s -> State? in
            if s.ended { return nil }
            s.ended = true
            return s
        }
        guard let s = snapshot else { return }
        tracer.end(
            .init(
                name: s.name, kind: kind, id: id, parent: parent, attributes: s.attributes, links: s.links,
                status: s.status))
    }
}

private enum RecordedSpanIDKey: InstrumentationContextKey {
    typealias Value = RecordingTracer.SpanID
}

extension InstrumentationContext {
    var recordedSpanID: RecordingTracer.SpanID? {
        get { self[RecordedSpanIDKey.self] }
        set { self[RecordedSpanIDKey.self] = newValue }
    }
}
