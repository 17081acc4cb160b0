import CeleriacCore
import Tracing

/// Span attribute names: OpenTelemetry's messaging conventions, plus `celery.*` names as Python's instrumentation
/// sets them.
public enum MessagingAttributes {
    public static let system = "messaging.system"
    public static let operationType = "messaging.operation.type"
    public static let operationName = "messaging.operation.name"
    public static let destinationName = "messaging.destination.name"
    public static let routingKey = "messaging.rabbitmq.destination.routing_key"
    public static let messageID = "messaging.message.id"
    public static let conversationID = "messaging.message.conversation_id"
    public static let taskName = "celery.task_name"
    public static let rootID = "celery.root_id"
    public static let parentID = "celery.parent_id"
    public static let groupID = "celery.group"
    public static let retries = "celery.retries"
    public static let worker = "celery.hostname"
    public static let outcome = "celery.state"
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
