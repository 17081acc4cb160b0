import CeleriacMessaging
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The beat service: while this process is the leader, sends each entry's runs when they are due.
///
/// It sleeps exactly until the next due instant (no polling tick), sends, then records the sent instant in the
/// state (local file and/or broker snapshot). Order: **send, then record**. A crash between the two re-sends that
/// one run after a restart or a takeover (at-least-once), never loses it; the re-sent message carries the same
/// deterministic task id, so the duplicate is identifiable. Recording first would instead lose the run.
public final class Beat: Service, Sendable {
    /// The validated entries this beat sends.
    public let schedule: BeatSchedule
    let sender: any BeatSender
    let store: any BeatStateStore
    let election: any LeaderElection
    let clock: any BeatClock
    let observer: any BeatObserver
    let logger: Logger
    let grace: Double
    let retryDelay: Double
    private let sentCount = Mutex(0)

    /// A beat service; nothing connects or sends before ``run()``.
    ///
    /// - Parameters:
    ///   - schedule: the entries to send and when.
    ///   - sender: publishes one run and returns once the broker confirmed it (``ClientSender`` in production).
    ///   - store: where the last sent instants are loaded from on becoming the leader, and saved to after every send.
    ///   - election: which beat of a group sends; ``AlwaysLeader`` (the default) for a single beat.
    ///   - clock: the time source; ``ManualBeatClock`` in tests.
    ///   - observer: told about sends, dropped runs and leadership (`BeatMetrics` in the CLI); none by default.
    ///   - grace: how many seconds late a run may be and still count as on time rather than missed (default 1).
    ///   - logger: where sends, missed runs and leadership changes are logged.
    ///   - retryDelay: seconds to wait before retrying after a failed send (default 1).
    public init(
        schedule: BeatSchedule, sender: any BeatSender, store: any BeatStateStore,
        election: any LeaderElection = AlwaysLeader(),
        clock: any BeatClock = SystemBeatClock(), observer: any BeatObserver = NoBeatObserver(), logger: Logger,
        grace: Double = 1.0, retryDelay: Double = 1.0
    ) {
        self.schedule = schedule
        self.sender = sender
        self.store = store
        self.election = election
        self.clock = clock
        self.observer = observer
        self.logger = logger
        self.grace = grace
        self.retryDelay = retryDelay
    }

    /// Runs sent by this process.
    public var sent: Int { sentCount.withLock { $0 } }

    /// The `ServiceLifecycle` entry point: runs the election and, while this beat is the leader, the sending loop,
    /// until the task is cancelled or a graceful shutdown begins. Losing the lead cancels the sending loop, which also
    /// checks ``LeaderElection/isLeader`` before every send. Returns without throwing.
    public func run() async throws {
        let changes = election.changes()
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.election.run() }
                group.addTask {
                    var leading: Task<Void, Never>?
                    for await leader in changes {
                        leading?.cancel()
                        await leading?.value
                        leading = nil
                        self.observer.leadership(leader)
                        if leader {
                            leading = Task { await self.lead() }
                        } else {
                            self.logger.info("beat is standing by (not the leader)")
                        }
                    }
                    leading?.cancel()
                    await leading?.value
                }
                await group.next()
                group.cancelAll()
            }
        }
        // Cancelling the group on shutdown stops the election (releasing the lock) and the sending loop.
    }

    /// The leader's loop: load the state, then send what is due, sleep until the next due instant, repeat.
    func lead() async {
        var state = await store.load()
        var scheduler = BeatScheduler(schedule: schedule, state: state, start: clock.now, grace: grace)
        logger.info(
            "beat is the leader; resuming",
            metadata: [
                "entries": .stringConvertible(schedule.entries.count),
                "state_entries": .stringConvertible(state.lastSent.count),
            ])
        for e in schedule.entries { observer.nextSend(entry: e.name, at: scheduler.next(e.name)) }
        while !Task.isCancelled {
            let now = clock.now
            let (fires, dropped) = scheduler.due(now: now)
            for d in dropped {
                logger.warning(
                    "missed runs dropped by the catch-up policy",
                    metadata: [
                        "entry": .string(d.entry), "count": .stringConvertible(d.count),
                        "policy": .string(d.policy.description),
                        "first": .string(ZonedTime.format(d.first, in: TimeZone(identifier: "UTC")!)),
                        "last": .string(ZonedTime.format(d.last, in: TimeZone(identifier: "UTC")!)),
                    ])
                observer.dropped(entry: d.entry, policy: d.policy.label, count: d.count)
                if let c = scheduler.cursor[d.entry] { state.record(d.entry, c) }
            }
            if !dropped.isEmpty && fires.isEmpty { await save(&state) }
            var failed = false
            for fire in fires {
                guard !Task.isCancelled, election.isLeader, let entry = schedule[fire.entry] else { return }
                let id = entry.taskID(for: fire.instant)
                var recording = state
                recording.record(fire.entry, fire.instant)
                // How late the send started (timer wake-up and scheduling), apart from the broker's confirm time.
                let startLateness = clock.now.timeIntervalSince(fire.instant)
                do {
                    try await sender.send(entry, instant: fire.instant, taskID: id, recording: recording)
                } catch {
                    logger.error(
                        "beat send failed; retrying",
                        metadata: [
                            "entry": .string(fire.entry), "task_id": .string(id),
                            "error": .string("\(error)"),
                        ])
                    observer.sendFailed(entry: fire.entry)
                    // The snapshot may have gone out with a task message that was not confirmed: put the real one back.
                    await save(&state)
                    failed = true
                    break
                }
                let lateness = clock.now.timeIntervalSince(fire.instant)
                scheduler.markSent(fire)
                state = recording
                await save(&state)
                sentCount.withLock { $0 += 1 }
                observer.sent(entry: fire.entry, lateness: lateness)
                observer.nextSend(entry: fire.entry, at: scheduler.next(fire.entry))
                logger.info(
                    "beat sent",
                    metadata: [
                        "entry": .string(fire.entry), "task": .string(entry.task), "task_id": .string(id),
                        "scheduled": .string(ZonedTime.format(fire.instant, in: entry.schedule.zone)),
                        "lateness_ms": .string(String(format: "%.1f", lateness * 1000)),
                        "start_lateness_ms": .string(String(format: "%.1f", startLateness * 1000)),
                    ])
            }
            let wake: Date
            if failed {
                wake = clock.now.addingTimeInterval(retryDelay)
            } else if let next = scheduler.nextDue() {
                wake = next
            } else {
                logger.info("no entry will fire again")
                wake = clock.now.addingTimeInterval(86_400 * 365)
            }
            do { try await clock.sleep(until: wake) } catch { return }
        }
    }

    private func save(_ state: inout BeatState) async {
        state.writer = "\(Hostname.current):\(getpid())"
        state.writtenAt = clock.now.timeIntervalSince1970
        await store.save(state)
    }
}
