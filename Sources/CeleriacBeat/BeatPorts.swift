import Foundation
import Synchronization

/// Sends one run of an entry (the production one uses `CeleriacClient` with publisher confirms).
public protocol BeatSender: Sendable {
    /// Returns once the broker confirmed the message. `recording` is the state with this run recorded: a sender
    /// that shares state through the broker publishes it in the same batch as the task message.
    func send(_ entry: ScheduleEntry, instant: Date, taskID: String, recording: BeatState) async throws
}

/// Where beat keeps its state (the local file, the broker snapshot, or both).
public protocol BeatStateStore: Sendable {
    func load() async -> BeatState
    func save(_ state: BeatState) async
}

/// Decides which beat is active. ``changes()`` yields true when this process becomes the leader, false when it stops.
public protocol LeaderElection: Sendable {
    /// Campaigns until cancelled.
    func run() async
    func changes() -> AsyncStream<Bool>
    /// True while this process holds the lock (checked before every send).
    var isLeader: Bool { get }
}

/// What beat reports, for metrics.
public protocol BeatObserver: Sendable {
    func sent(entry: String, lateness: Double)
    func dropped(entry: String, policy: String, count: Int)
    func leadership(_ leader: Bool)
    func nextSend(entry: String, at: Date?)
    func sendFailed(entry: String)
}

extension BeatObserver {
    /// Default: ignores the failure.
    public func sendFailed(entry: String) {}
}

/// An observer that ignores everything: the default when beat runs without metrics.
public struct NoBeatObserver: BeatObserver {
    /// The observer (it has no state).
    public init() {}
    /// Does nothing.
    public func sent(entry: String, lateness: Double) {}
    /// Does nothing.
    public func dropped(entry: String, policy: String, count: Int) {}
    /// Does nothing.
    public func leadership(_ leader: Bool) {}
    /// Does nothing.
    public func nextSend(entry: String, at: Date?) {}
}

/// A single beat with no lock: always the leader (`--no-lock`, and tests).
public final class AlwaysLeader: LeaderElection {
    /// An election this process always wins.
    public init() {}
    /// Always true.
    public var isLeader: Bool { true }
    /// A stream that yields true once and never finishes.
    public func changes() -> AsyncStream<Bool> {
        AsyncStream { c in c.yield(true) }
    }
    /// Waits until cancelled; there is nothing to campaign for.
    public func run() async {
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
    }
}

/// Keeps the state in memory (tests), optionally starting from a given state.
public final class MemoryStateStore: BeatStateStore {
    private let state: Mutex<BeatState>
    private let saves = Mutex(0)
    /// A store holding `initial` (an empty state by default).
    public init(_ initial: BeatState = BeatState()) { state = Mutex(initial) }
    /// The state last saved, or the initial one.
    public func load() async -> BeatState { state.withLock { $0 } }
    /// Replaces the state and counts the save (``saveCount``).
    public func save(_ s: BeatState) async {
        state.withLock { $0 = s }
        saves.withLock { $0 += 1 }
    }
    /// The state last saved, or the initial one, for a test to inspect without `await`.
    public var current: BeatState { state.withLock { $0 } }
    /// How many times ``save(_:)`` was called.
    public var saveCount: Int { saves.withLock { $0 } }
}

/// Merges several stores: loads take the latest instant per entry from each, saves go to all.
public struct CombinedStateStore: BeatStateStore {
    /// The combined stores, in the order they are loaded and saved.
    public let stores: [any BeatStateStore]
    /// Combines `stores` (the CLI: the local state file, plus the broker snapshot unless `--no-lock`).
    public init(_ stores: [any BeatStateStore]) { self.stores = stores }
    /// Loads every store in turn and merges them with ``BeatState/merged(with:)``: the latest instant per entry wins.
    public func load() async -> BeatState {
        var out = BeatState()
        for s in stores { out = out.merged(with: await s.load()) }
        return out
    }
    /// Saves `state` to every store, one after the other; each store handles (logs) its own failures.
    public func save(_ state: BeatState) async {
        for s in stores { await s.save(state) }
    }
}
