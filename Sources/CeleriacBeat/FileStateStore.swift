import Foundation
import Logging

/// The local state file as a ``BeatStateStore``: a missing file is an empty state; a corrupt one is reported,
/// moved aside and treated as empty; a failed save is logged (the broker snapshot, if any, still has the state).
public struct FileStateStore: BeatStateStore {
    public let file: StateFile
    let logger: Logger
    public init(path: String, logger: Logger) {
        file = StateFile(path: path)
        self.logger = logger
    }
    public func load() async -> BeatState {
        switch file.load() {
        case .missing:
            logger.info("no beat state file yet; entries start from their next run", metadata: ["path": .string(file.path)])
            return BeatState()
        case .loaded(let s):
            return s
        case .corrupt(let aside, let reason):
            logger.error("beat state file is corrupt; moved aside, starting without it",
                         metadata: ["path": .string(file.path), "moved_to": .string(aside), "reason": .string(reason)])
            return BeatState()
        }
    }
    public func save(_ state: BeatState) async {
        do throws(StateFileError) { try file.save(state) } catch {
            logger.error("could not write the beat state file", metadata: ["error": .string(error.description)])
        }
    }
}
