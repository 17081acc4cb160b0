import Foundation
import Logging

/// The local state file as a ``BeatStateStore``: a missing file is an empty state; a corrupt one is reported,
/// moved aside and treated as empty; a failed save is logged (the broker snapshot, if any, still has the state).
public struct FileStateStore: BeatStateStore {
    /// The state file at the path given to ``init(path:logger:)``.
    public let file: StateFile
    let logger: Logger
    /// A store for the file at `path` (the CLI's `--state`, default `celeriac-beat-state.json`), logging to `logger`.
    public init(path: String, logger: Logger) {
        file = StateFile(path: path)
        self.logger = logger
    }
    /// The file's state, or an empty state when the file is missing or corrupt (a corrupt file is moved aside first).
    public func load() async -> BeatState {
        switch file.load() {
        case .missing:
            logger.info(
                "no beat state file yet; entries start from their next run", metadata: ["path": .string(file.path)])
            return BeatState()
        case .loaded(let s):
            return s
        case .corrupt(let aside, let reason):
            logger.error(
                "beat state file is corrupt; moved aside, starting without it",
                metadata: ["path": .string(file.path), "moved_to": .string(aside), "reason": .string(reason)])
            return BeatState()
        }
    }
    /// Writes the state atomically (``StateFile/save(_:)``); a failure is logged, not thrown.
    public func save(_ state: BeatState) async {
        do throws(StateFileError) { try file.save(state) } catch {
            logger.error("could not write the beat state file", metadata: ["error": .string(error.description)])
        }
    }
}
