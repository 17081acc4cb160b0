import CeleriacBroker
import CeleriacCore
import CeleriacMessaging
import Foundation

/// Sends runs as ordinary Celery task messages through `CeleriacClient` (publisher confirms), with the entry's
/// options, the deterministic task id and two headers naming the run: `beat_entry` and `beat_instant` (ISO 8601).
///
/// With `stateQueue`, the state snapshot recording this run is published in the same confirmed batch, on the same
/// channel, right after the task message: the broker gets both or neither, so a beat taking over never sees a sent
/// run missing from the snapshot (or a snapshot claiming a run that was never published).
public struct ClientSender: BeatSender {
    /// The client the task messages are published through (started by the caller).
    public let client: CeleriacClient
    /// The broker state queue (``BrokerStateStore/queue``) that gets the snapshot with every run; nil with `--no-lock`.
    public let stateQueue: String?
    /// A sender through `client`; with `stateQueue`, each run's snapshot goes in the same confirmed batch.
    public init(client: CeleriacClient, stateQueue: String? = nil) {
        self.client = client
        self.stateQueue = stateQueue
    }

    /// Publishes the run of `entry` at `instant` as task `taskID`, and returns once the broker confirmed it (and the
    /// snapshot, with ``stateQueue``). The entry's `expires` counts from the scheduled instant, not from the send.
    ///
    /// - Throws: the client's error when the publish fails or is not confirmed; beat logs it and retries.
    public func send(_ entry: ScheduleEntry, instant: Date, taskID: String, recording: BeatState) async throws {
        var headers = entry.headers
        headers["beat_entry"] = .string(entry.name)
        headers["beat_instant"] = .string(ZonedTime.format(instant, in: TimeZone(identifier: "UTC")!))
        var options = SendOptions(
            queue: entry.queue, routingKey: entry.routingKey, exchange: entry.exchange,
            priority: entry.priority, taskID: taskID, headers: headers,
            softTimeLimit: entry.softTimeLimit, hardTimeLimit: entry.hardTimeLimit)
        if let expires = entry.expires { options.expires = instant.addingTimeInterval(expires) }
        let companions = stateQueue.map { [BrokerStateStore.message(recording, queue: $0)] } ?? []
        _ = try await client.send(
            entry.task, args: entry.args, kwargs: entry.kwargs, options: options, companions: companions)
    }
}
