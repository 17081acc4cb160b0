import ArgumentParser
import CeleriacAMQP
import CeleriacBroker
import CeleriacCanvas
import CeleriacCore
import CeleriacMessaging
import Foundation

/// `graph ROOT_ID [--format dot|mermaid|json] [--wait SECONDS]`: draw a recorded workflow with each task's state and
/// timing (README "Workflow graphs").
public struct GraphCommand: AsyncParsableCommand {
    /// `celeriac graph ROOT_ID`; reads the workflow's records from the broker without consuming them.
    public static let configuration = CommandConfiguration(
        commandName: "graph",
        abstract: "Render a workflow sent with applyRecorded (chains, groups, chords) as DOT, Mermaid or JSON.")

    @OptionGroup var broker: BrokerOptions
    @Argument(help: "The workflow's root id (RecordedWorkflow.rootID: the id of its first task).") var root: String
    @Option(name: .customLong("format"), help: "dot (Graphviz), mermaid, or json.") var format: String = "dot"
    @Option(
        name: .customLong("wait"), help: "Seconds to wait for every task to finish before rendering (0: render now).")
    var wait: Double = 0

    /// Required by ArgumentParser; the values come from parsing the command line.
    public init() {}

    /// Prints the graph on stdout. With `--wait`, polls every 250 ms until every task finished or the time is up, then
    /// renders what there is (with a note on stderr). Exits with status 1 when the workflow has no records (never
    /// recorded, or expired) or the broker cannot be reached; an unknown `--format` is a usage error (status 64).
    public func run() async throws {
        guard let format = WorkflowGraph.Format(rawValue: format.lowercased()) else {
            throw ValidationError(
                "--format must be one of: \(WorkflowGraph.Format.allCases.map(\.rawValue).joined(separator: ", "))")
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
            FileHandle.standardError.write(
                Data("graph: not every task finished within \(wait) s; rendered as it is now\n".utf8))
        }
    }
}
