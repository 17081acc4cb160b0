import CeleriacBroker
import CeleriacMessaging
import CeleriacCanvas
import CeleriacCore
import FoundationEssentials

/// Workflow-graph records (README "Workflow graphs"): for tasks marked with ``GraphRecording/header`` only, one
/// small persistent message per state change to the `celeriac.graph` exchange, routed by the workflow's root id.
/// Unmarked tasks return at the first line. Records are published without waiting for confirms, like events: a
/// lost record leaves a node in an older state, never blocks a task.
extension Worker {
    func recordGraphStarted(_ message: TaskMessage) async {
        guard let root = message.extraHeaders[GraphRecording.header]?.stringValue else { return }
        await sendGraphRecord(GraphRecord(taskID: message.id, name: message.name, state: .started,
                                          timestamp: Date().timeIntervalSince1970, worker: configuration.hostname), root: root)
    }

    func recordGraphFinished(_ message: TaskMessage, outcome: Outcome, seconds: Double) async {
        guard let root = message.extraHeaders[GraphRecording.header]?.stringValue else { return }
        var record = GraphRecord(taskID: message.id, name: message.name, state: .success, timestamp: Date().timeIntervalSince1970,
                                 runtime: seconds, worker: configuration.hostname)
        switch outcome {
        case .success: break
        case .failure(let f), .reported(let f, _): record.state = .failure; record.error = "\(f.type): \(f.message)"
        case .workerLost(let lost): record.state = .failure; record.error = "\(lost.failure.type): \(lost.failure.message)"
        case .retry: record.state = .retry
        case .revoked(let reason): record.state = .revoked; record.error = reason; record.runtime = nil
        }
        await sendGraphRecord(record, root: root)
    }

    /// A task of a recorded workflow that will never run (the rest of a failed chain, a failed chord's body).
    func recordGraphNotRun(_ message: TaskMessage, failure: TaskFailure) async {
        guard let root = message.extraHeaders[GraphRecording.header]?.stringValue else { return }
        await sendGraphRecord(GraphRecord(taskID: message.id, name: message.name, state: .failure, timestamp: Date().timeIntervalSince1970,
                                          worker: configuration.hostname, error: "not run: \(failure.type): \(failure.message)"), root: root)
    }

    private func sendGraphRecord(_ record: GraphRecord, root: String) async {
        if !graphExchangeDeclared.load(ordering: .relaxed) {
            do {
                try await publisherConnection.declare(GraphStore.exchangeSpec)
                graphExchangeDeclared.store(true, ordering: .relaxed)
            } catch {
                logger.error("could not declare the workflow-graph exchange; record dropped",
                             metadata: ["task.id": .string(record.taskID), "error": .string(error.description)])
                return
            }
        }
        publisherConnection.publishInBackground(GraphStore.message(record.json, root: root))
    }
}
