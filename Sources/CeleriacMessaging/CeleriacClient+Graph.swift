import CeleriacCanvas
import CeleriacCore
import FoundationEssentials

/// A canvas sent with its workflow graph recorded: its result, and the root id `celeriac graph` takes.
public struct RecordedWorkflow<Output: Codable & Sendable>: Sendable {
    /// The canvas' result, as ``CeleriacClient/apply(_:)`` returns it.
    public let result: CanvasResult<Output>
    /// The workflow's root id: pass it to `celeriac graph` or ``CeleriacClient/workflowGraph(root:)``.
    public let rootID: String
}

extension CeleriacClient {
    /// Sends a canvas like ``apply(_:)`` and records its workflow graph (README "Workflow graphs"): the frozen
    /// canvas is stored in the durable queue `celeriac.graph.<root id>` before any task is published, and workers
    /// add a record per state change, so `celeriac graph ROOT_ID` can draw it while it runs or after it finished.
    ///
    /// - Parameters:
    ///   - signature: the canvas to send.
    ///   - keepFor: how long the records stay after the last time the queue was used (`x-expires`).
    public func applyRecorded<Output>(_ signature: Signature<Output>, keepFor: Duration = .seconds(86_400)) async throws
        -> RecordedWorkflow<Output>
    {
        let (marked, root) = GraphRecording.mark(signature.node)
        let frozen = CanvasFreezer(
            replyTo: configuration.receiveResults ? replyQueue : nil, defaultQueue: configuration.defaultQueue,
            quorumJoinQueues: configuration.queueType == .quorum
        )
        .freeze(marked)
        try await GraphStore.prepare(on: publisher, root: root, keepFor: keepFor)
        try await publishWithRetry([
            GraphStore.message(GraphRecording.planRecord(root: root, frozen: frozen), root: root)
        ])
        try await publish(
            CanvasPlanner(defaultQueue: configuration.defaultQueue).plan(frozen, now: configuration.clock.now))
        let result = CanvasResult<Output>(
            shape: ResultShape(of: frozen), client: self, chordIDs: Self.chordIDs(in: frozen))
        return RecordedWorkflow(result: result, rootID: root)
    }

    /// The recorded workflow `root` as a graph, read from the broker without consuming its records.
    public func workflowGraph(root: String) async throws(CeleriacError) -> WorkflowGraph {
        try WorkflowGraph(root: root, records: try await GraphStore.read(root: root, on: publisher))
    }
}
