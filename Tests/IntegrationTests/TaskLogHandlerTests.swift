import Logging
import Testing

@testable import CeleriacWorker

/// A task's logger carries `task.id` and `task.name` without touching the worker's handler.
@Suite struct TaskLogHandlerTests {
    @Test func taskLinesCarryTheTaskKeysTheWorkersKeysAndTheCallsOwn() {
        let recorder = LogRecorder()
        var workerLogger = recorder.logger("worker")
        workerLogger[metadataKey: "worker"] = "w1"
        var taskLogger = workerLogger
        taskLogger.handler = TaskLogHandler(base: workerLogger.handler, taskID: "t-1", taskName: "demo.add")
        taskLogger[metadataKey: "step"] = "two"
        taskLogger.info("hello", metadata: ["k": "v", "task.name": "explicit wins"])
        workerLogger.info("plain")

        let lines = recorder.text.split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        #expect(lines.first == "info hello k=v step=two task.id=t-1 task.name=explicit wins worker=w1")
        #expect(lines.last == "info plain worker=w1", "the worker's own logger gained no task keys")
        #expect(taskLogger[metadataKey: "task.id"] == "t-1")
        #expect(taskLogger[metadataKey: "worker"] == "w1")
        #expect(taskLogger.handler.metadata["worker"] == "w1" && taskLogger.handler.metadata["step"] == "two")
        #expect(taskLogger.logLevel == workerLogger.logLevel)
    }
}
