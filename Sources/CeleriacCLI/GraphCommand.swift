import ArgumentParser
import CeleriacBroker
import CeleriacAMQP
import CeleriacMessaging
import CeleriacCanvas
import CeleriacCore
import Foundation

/// `graph ROOT_ID [--format dot|mermaid|json] [--wait SECONDS]`: draw a recorded workflow with each task's state and
/// timing (README "Workflow graphs").
public struct GraphCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "graph",
        abstract: "Render a workflow sent with applyRecorded (chains, groups, chords) as DOT, Mermaid or JSON.")

    @OptionGroup var broker: BrokerOptions
    @Argument(help: "The workflow's root id (RecordedWorkflow.rootID: the id of its first task).") var root: String
    @Option(name: .customLong("format"), help: "dot (Graphviz), mermaid, or json.") var format: String = "dot"
    @Option(name: .customLong("wait"), help: "Seconds to wait for every task to finish before rendering (0: render now).")
    var wait: Double = 0

    public init() {}

    public func run() async throws {
        guard let format = WorkflowGraph.Format(rawValue: format.lowercased()) else {
            throw ValidationError("--format must be one of: \(WorkflowGraph.Format.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let amqp = try broker.amqpBroker()
        let connection = amqp.connection(.init(name: "celeriac-graph", confirms: false))
        do { try await connection.connect() } catch { throw CLIError(description: error.description) }
        defer { Task { await connection.close() } }
        let deadline = ContinuousClock.now + .milliseconds(Int(wait * 1000))
        var graph: WorkflowGraph
        while true {
            do {
                graph = try WorkflowGraph(root: root, records: try await GraphStore.read(root: root, on: connection))
            } catch {
                throw CLIError(description: error.description)
            }
            if graph.isFinished || ContinuousClock.now >= deadline { break }
            // Polling the broker: records arrive as messages nobody is told about.
            try await Task.sleep(for: .milliseconds(250))
        }
        print(graph.render(format), terminator: "")
        if !graph.isFinished && wait > 0 {
            FileHandle.standardError.write(Data("graph: not every task finished within \(wait) s; rendered as it is now\n".utf8))
        }
    }
}
