import CeleriacCore
import Tracing

/// Span attribute names: OpenTelemetry's messaging conventions, plus `celery.*` names as Python's instrumentation
/// sets them.
public enum MessagingAttributes {
    /// `messaging.system`: always `rabbitmq`.
    public static let system = "messaging.system"
    /// `messaging.operation.type`: `send` on producer spans, `process` on consumer spans.
    public static let operationType = "messaging.operation.type"
    /// `messaging.operation.name`: `publish` on producer spans, `process` on consumer spans.
    public static let operationName = "messaging.operation.name"
    /// `messaging.destination.name`: the exchange published to (the queue for the default exchange); the queue consumed
    /// from on consumer spans.
    public static let destinationName = "messaging.destination.name"
    /// `messaging.rabbitmq.destination.routing_key`: the routing key, which for Celery's direct routing is the queue
    /// name.
    public static let routingKey = "messaging.rabbitmq.destination.routing_key"
    /// `messaging.message.id`: the task id.
    public static let messageID = "messaging.message.id"
    /// `messaging.message.conversation_id`: the correlation id, which is the task id unless set otherwise.
    public static let conversationID = "messaging.message.conversation_id"
    /// `celery.task_name`: task name as registered, e.g. `demo.add`.
    public static let taskName = "celery.task_name"
    /// `celery.root_id`: id of the workflow's first task, when the message has one.
    public static let rootID = "celery.root_id"
    /// `celery.parent_id`: id of the task that sent this one, when there is one.
    public static let parentID = "celery.parent_id"
    /// `celery.group`: id of the task's group, when it is in one.
    public static let groupID = "celery.group"
    /// `celery.retries`: how many times the task was retried before this run; set only when above 0.
    public static let retries = "celery.retries"
    /// `celery.hostname`: the worker's node name, e.g. `celeriac@host`, on consumer spans.
    public static let worker = "celery.hostname"
    /// `celery.state`: how the run ended: `success`, `failure`, `retry` or `revoked`.
    public static let outcome = "celery.state"
    /// `error.type`: the exception type of a failed run, e.g. `ValueError`.
    public static let errorType = "error.type"

    static func common(_ message: TaskMessage, queue: String) -> SpanAttributes {
        var a = SpanAttributes()
        a[system] = "rabbitmq"
        a[routingKey] = queue
        a[messageID] = message.id
        a[conversationID] = message.correlationID ?? message.id
        a[taskName] = message.name
        if let root = message.rootID { a[rootID] = root }
        if let parent = message.parentID { a[parentID] = parent }
        if let group = message.groupID { a[groupID] = group }
        return a
    }
}
