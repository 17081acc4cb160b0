import CeleriacCanvas
import CeleriacCore
import Logging

/// Celery's built-in canvas tasks a worker runs without registering them: the chord join and gather of Celeriac's
/// chords, and `celery.map` / `celery.starmap`.
enum BuiltinTasks {
    static let names: Set<String> = [ChordInfo.joinTaskName, ChordInfo.gatherTaskName, "celery.map", "celery.starmap"]

    /// A placeholder registration for a built-in (the pipeline runs its body itself).
    static func placeholder(_ name: String) -> RegisteredTask {
        RegisteredTask(name: name, parameters: [], options: TaskOptions()) { _, _ in .null }
    }

    /// `celery.map` / `celery.starmap`: the named task run here once per item, results in order.
    static func map(_ message: TaskMessage, registry: TaskRegistry, hostname: String, log: Logger) async -> TaskOutcome
    {
        let star = message.name == "celery.starmap"
        guard let sig = message.kwargs["task"], let name = sig["task"]?.stringValue,
            let items = message.kwargs["it"]?.arrayValue
        else {
            return .failure(
                TaskFailure(
                    type: "TypeError",
                    arguments: [.string("\(message.name) needs kwargs 'task' (a signature) and 'it' (a list)")],
                    module: "builtins"))
        }
        guard let task = registry[name] else {
            return .failure(TaskFailure(type: "NotRegistered", arguments: [.string(name)], module: "celery.exceptions"))
        }
        var results: [JSONValue] = []
        for item in items {
            let args = star ? (item.arrayValue ?? [item]) : [item]
            let each = TaskMessage(
                id: message.id, name: name, args: (sig["args"]?.arrayValue ?? []) + args,
                kwargs: sig["kwargs"]?.objectValue ?? [:])
            let context = TaskContext(message: each, logger: log, hostname: hostname, options: task.options)
            do {
                results.append(try await task.run(each, context))
            } catch {
                return .failure(TaskFailure(error: error))
            }
        }
        return .success(.array(results))
    }
}
