import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A state file failure, with what to do about it.
public struct StateFileError: Error, CustomStringConvertible, Sendable {
    /// The file the call failed on (`PATH.tmp` for `open`, `write` and `fsync`; `PATH` for `rename`).
    public let path: String
    /// The system call that failed: `open`, `write`, `fsync` or `rename`.
    public let operation: String
    /// The `errno` the call left.
    public let errno: Int32
    /// The path, the call, the `strerror` text and what to check.
    public var description: String {
        "beat state file \(path): \(operation) failed: \(String(cString: strerror(errno))). Check that the directory exists and is writable, or pass --state PATH"
    }
}

/// The local state file: written atomically (write to `PATH.tmp`, fsync, rename over `PATH`, fsync the directory),
/// so a crash leaves either the old or the new state, never a torn one.
public struct StateFile: Sendable {
    /// Where the state lives; saves write `PATH.tmp` next to it first.
    public let path: String
    /// The state file at `path`; nothing is read or created before ``load()`` or ``save(_:)``.
    public init(path: String) { self.path = path }

    /// What ``load()`` found.
    public enum LoadResult: Sendable, Equatable {
        case missing
        case loaded(BeatState)
        /// The file could not be read as beat state; it was renamed to `movedTo` and beat starts without it.
        case corrupt(movedTo: String, reason: String)
    }

    /// Reads the state: ``LoadResult/missing`` when there is no file; a file that does not decode is renamed to
    /// `PATH.corrupt-<unix seconds>` and reported as ``LoadResult/corrupt(movedTo:reason:)``.
    public func load() -> LoadResult {
        guard let data = FileManager.default.contents(atPath: path) else { return .missing }
        do {
            return .loaded(try BeatState.decode(Array(data)))
        } catch {
            let aside = "\(path).corrupt-\(Int(Date().timeIntervalSince1970))"
            if rename(path, aside) != 0 {
                return .corrupt(movedTo: "(could not move: \(String(cString: strerror(errno))))", reason: "\(error)")
            }
            return .corrupt(movedTo: aside, reason: "\(error)")
        }
    }

    /// Writes `state` atomically: `PATH.tmp`, fsync, rename over `PATH`, fsync the directory.
    ///
    /// - Throws: ``StateFileError`` naming the failed step; `PATH` then still holds the previous state.
    public func save(_ state: BeatState) throws(StateFileError) {
        let tmp = path + ".tmp"
        let bytes = state.encoded()
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StateFileError(path: tmp, operation: "open", errno: errno) }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                close(fd)
                throw StateFileError(path: tmp, operation: "write", errno: e)
            }
            written += n
        }
        guard fsync(fd) == 0 else {
            let e = errno; close(fd); throw StateFileError(path: tmp, operation: "fsync", errno: e)
        }
        close(fd)
        guard rename(tmp, path) == 0 else { throw StateFileError(path: path, operation: "rename", errno: errno) }
        let dir = (path as NSString).deletingLastPathComponent
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }
}
