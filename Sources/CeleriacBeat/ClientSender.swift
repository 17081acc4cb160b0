import CeleriacAMQP
import CeleriacCore
import Foundation

/// Sends runs as ordinary Celery task messages through ``CeleriacClient`` (publisher confirms), with the entry's
/// options, the deterministic task id and two headers naming the run: `beat_entry` and `beat_instant` (ISO 8601).
public struct ClientSender: BeatSender {
    public let client: CeleriacClient
    public init(client: CeleriacClient) { self.client = client }

    public func send(_ entry: ScheduleEntry, instant: Date, taskID: String) async throws {
        var headers = entry.headers
        headers["beat_entry"] = .string(entry.name)
        headers["beat_instant"] = .string(ZonedTime.format(instant, in: TimeZone(identifier: "UTC")!))
        var options = SendOptions(queue: entry.queue, routingKey: entry.routingKey, exchange: entry.exchange,
                                  priority: entry.priority, taskID: taskID, headers: headers,
                                  softTimeLimit: entry.softTimeLimit, hardTimeLimit: entry.hardTimeLimit)
        if let expires = entry.expires { options.expires = instant.addingTimeInterval(expires) }
        _ = try await client.send(entry.task, args: entry.args, kwargs: entry.kwargs, options: options)
    }
}
