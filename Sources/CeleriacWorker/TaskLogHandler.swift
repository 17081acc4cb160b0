import Logging

/// The handler of a task's logger: the worker's own handler, plus `task.id` and `task.name`.
///
/// Setting those two keys on the worker's handler for every task would let the handler re-render its metadata on
/// every change (swift-log's `StreamLogHandler` prettifies it each time), about 2 % of a busy worker's CPU, paid
/// even when the task logs nothing. This handler keeps the task's metadata apart and merges it only into lines
/// that are actually logged. What the task's code sets (`logger[metadataKey:]`) is kept here too.
struct TaskLogHandler: LogHandler {
    private var base: any LogHandler
    /// The task's keys and whatever the task's code adds; merged over the base handler's metadata when logging.
    private var own: Logger.Metadata

    init(base: any LogHandler, taskID: String, taskName: String) {
        self.base = base
        self.own = ["task.id": .string(taskID), "task.name": .string(taskName)]
    }

    func log(event: LogEvent) {
        var event = event
        // Explicit metadata of the call wins over the task's, which wins over the base handler's (the base merges
        // its own metadata under what it is given).
        event.metadata = event.metadata.map { own.merging($0) { $1 } } ?? own
        base.log(event: event)
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { own[key] ?? base[metadataKey: key] }
        set { own[key] = newValue }
    }

    var metadata: Logger.Metadata {
        get { base.metadata.merging(own) { $1 } }
        set { own = newValue }
    }

    var logLevel: Logger.Level {
        get { base.logLevel }
        set { base.logLevel = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { base.metadataProvider }
        set { base.metadataProvider = newValue }
    }
}
