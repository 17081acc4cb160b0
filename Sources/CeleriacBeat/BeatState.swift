import Foundation

/// What beat has sent: per entry, the last scheduled instant whose task was sent (and confirmed by the broker).
///
/// Merging takes the later instant per entry, so combining the broker snapshot with the local file never moves an
/// entry back (which would re-send).
public struct BeatState: Codable, Sendable, Equatable {
    /// Format version of the state JSON; 1 is the only version written so far.
    public var version: Int = 1
    /// Entry name -> last sent scheduled instant (seconds since 1970).
    public var lastSent: [String: Double]
    /// Which beat wrote it, and when (for operators).
    public var writer: String?
    /// When ``writer`` saved it, in seconds since 1970 (``Beat`` sets both on every save).
    public var writtenAt: Double?

    /// A state with the given last sent instants (entry name -> seconds since 1970); empty by default.
    public init(lastSent: [String: Double] = [:], writer: String? = nil, writtenAt: Double? = nil) {
        self.lastSent = lastSent
        self.writer = writer
        self.writtenAt = writtenAt
    }

    /// The last sent scheduled instant of `entry`, or nil when it was never sent.
    public func last(_ entry: String) -> Date? { lastSent[entry].map { Date(timeIntervalSince1970: $0) } }
    /// Records that `entry`'s run at `instant` was sent. Never moves an entry back: an instant before the recorded one
    /// is ignored.
    public mutating func record(_ entry: String, _ instant: Date) {
        lastSent[entry] = max(lastSent[entry] ?? -.infinity, instant.timeIntervalSince1970)
    }

    /// This state combined with `other`, keeping the later instant per entry (``writer`` and ``writtenAt`` stay this
    /// state's).
    public func merged(with other: BeatState) -> BeatState {
        var out = self
        for (k, v) in other.lastSent { out.lastSent[k] = max(out.lastSent[k] ?? -.infinity, v) }
        return out
    }

    /// The state as JSON with sorted keys: the format of the state file and of the broker snapshot (`{}` if encoding
    /// fails).
    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data("{}".utf8))
    }

    /// Reads state JSON as written by ``encoded()``.
    ///
    /// - Throws: the `DecodingError` when the bytes are not beat state JSON.
    public static func decode(_ bytes: [UInt8]) throws -> BeatState {
        try JSONDecoder().decode(BeatState.self, from: Data(bytes))
    }
}
