import Foundation

/// What beat has sent: per entry, the last scheduled instant whose task was sent (and confirmed by the broker).
///
/// Merging takes the later instant per entry, so combining the broker snapshot with the local file never moves an
/// entry back (which would re-send).
public struct BeatState: Codable, Sendable, Equatable {
    public var version: Int = 1
    /// Entry name -> last sent scheduled instant (seconds since 1970).
    public var lastSent: [String: Double]
    /// Which beat wrote it, and when (for operators).
    public var writer: String?
    public var writtenAt: Double?

    public init(lastSent: [String: Double] = [:], writer: String? = nil, writtenAt: Double? = nil) {
        self.lastSent = lastSent
        self.writer = writer
        self.writtenAt = writtenAt
    }

    public func last(_ entry: String) -> Date? { lastSent[entry].map { Date(timeIntervalSince1970: $0) } }
    public mutating func record(_ entry: String, _ instant: Date) {
        lastSent[entry] = max(lastSent[entry] ?? -.infinity, instant.timeIntervalSince1970)
    }

    public func merged(with other: BeatState) -> BeatState {
        var out = self
        for (k, v) in other.lastSent { out.lastSent[k] = max(out.lastSent[k] ?? -.infinity, v) }
        return out
    }

    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data("{}".utf8))
    }

    public static func decode(_ bytes: [UInt8]) throws -> BeatState {
        try JSONDecoder().decode(BeatState.self, from: Data(bytes))
    }
}
