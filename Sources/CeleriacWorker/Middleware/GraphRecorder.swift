import CeleriacBroker
import CeleriacCanvas
import CeleriacCore
import CeleriacMessaging
import FoundationEssentials
import Logging
import Synchronization

/// Workflow-graph records (README "Workflow graphs"): for tasks marked with ``GraphRecording/header`` only, one
/// small persistent message per state change to the `celeriac.graph` exchange, routed by the workflow's root id.
/// Unmarked tasks return at the first line. Records are published without waiting for confirms, like events: a
/// lost record leaves a node in an older state, never blocks a task.
final class GraphRecorder: TaskMiddleware {
    private let publisher: any MessagePublishing & TopologyDeclaring
    private let hostname: String
    private let logger: Logger
    /// The workflow-graph exchange was declared on the publisher connection.
    private let exchangeDeclared = Atomic<Bool>(false)

    init(publisher: any MessagePublishing & TopologyDeclaring, hostname: String, logger: Logger) {
        self.publisher = publisher
        self.hostname = hostname
        self.logger = logger
    }

    func started(_ run: TaskRun) async {
        let message = run.message
        guard let root = message.extraHeaders[GraphRecording.header]?.stringValue else { return }
        await send(
            GraphRecord(
                taskID: message.id, name: message.name, state: .started,
                timestamp: Date().timeIntervalSince1970, worker: hostname), root: root)
    }

    func finished(_ run: TaskRun, outcome: TaskOutcome, seconds: Double) async {
        let message = run.message
        guard let root = message.extraHeaders[GraphRecording.header]?.stringValue else { return }
        var record = GraphRecord(
            taskID: message.id, name: message.name, state: .success, timestamp: Date().timeIntervalSince1970,
            runtime: seconds, worker: hostname)
        switch outcome {
        case .success: break
        case .failure(let f), .reported(let f, _): record.state = .failure; record.error = "\(f.type): \(f.message)"
        case .workerLost(let lost):
            record.state = .failure; record.error = "\(lost.failure.type): \(lost.failure.message)"
        case .retry: record.state = .retry
        case .revoked(let reason): record.state = .revoked; record.error = reason; record.runtime = nil
        }
        await send(record, root: root)
    }

    /// A task of a recorded workflow that will never run (the rest of a failed chain, a failed chord's body).
    func notRun(_ message: TaskMessage, failure: TaskFailure) async {
        guard let root = message.extraHeaders[GraphRecording.header]?.stringValue else { return }
        await send(
            GraphRecord(
                taskID: message.id, name: message.name, state: .failure, timestamp: Date().timeIntervalSince1970,
                worker: hostname, error: "not run: \(failure.type): \(failure.message)"), root: root)
    }

    private func send(_ record: GraphRecord, root: String) async {
        if !exchangeDeclared.load(ordering: .relaxed) {
            do {
                try await publisher.declare(GraphStore.exchangeSpec)
                exchangeDeclared.store(true, ordering: .relaxed)
            } catch {
                logger.error(
                    "could not declare the workflow-graph exchange; record dropped",
                    metadata: ["task.id": .string(record.taskID), "error": .string(error.description)])
                return
            }
        }
        publisher.publishInBackground(GraphStore.message(record.json, root: root))
    }
}
