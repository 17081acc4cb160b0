import CeleriacCore

/// The framing between a worker parent and its pool children: each frame is a 4-byte big-endian length followed
/// by that many bytes of UTF-8 JSON (one object with a `"t"` type field). The first frame a child sends is
/// `{"t":"hello","v":<version>,"pid":<pid>}`; a parent that speaks another version stops that child.
public enum PoolFrame {
    /// Framing and message version. Bump it when a message changes incompatibly.
    /// 2: runs are pipelined (a child runs them one at a time in order and answers in that order), and cancel
    /// frames come on a pipe of their own (fd 5).
    public static let version: Int64 = 2
    /// Largest frame accepted (a task message is limited to 10 MiB by default; this leaves room for JSON escaping).
    public static let maxBytes = 64 << 20

    /// One frame: length prefix and JSON.
    public static func encode(_ value: JSONValue) -> [UInt8] {
        let body = value.jsonBytes
        var out: [UInt8] = []
        out.reserveCapacity(body.count + 4)
        let n = UInt32(body.count)
        out.append(UInt8(n >> 24)); out.append(UInt8((n >> 16) & 0xff)); out.append(UInt8((n >> 8) & 0xff));
        out.append(UInt8(n & 0xff))
        out.append(contentsOf: body)
        return out
    }
}

/// What is wrong with a frame stream. The peer is not speaking the pool protocol; the connection is dropped.
public enum PoolFrameError: Error, Equatable, CustomStringConvertible {
    case tooLarge(Int)
    case invalidJSON(String)
    /// What is wrong with the frame: its size against the limit, or the JSON parser's message.
    public var description: String {
        switch self {
        case .tooLarge(let n): "pool frame of \(n) bytes exceeds the limit of \(PoolFrame.maxBytes)"
        case .invalidJSON(let why): "pool frame is not valid JSON: \(why)"
        }
    }
}

/// Splits a byte stream into frames; bytes may arrive in any chunking.
public struct PoolFrameDecoder {
    private var buffer: [UInt8] = []
    private var start = 0
    /// An empty decoder.
    public init() {}

    /// Adds bytes read from the pipe; ``next()`` then returns the frames they complete.
    public mutating func append(_ bytes: some Collection<UInt8>) {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 65536 && start * 2 > buffer.count {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame, or nil when more bytes are needed.
    public mutating func next() throws(PoolFrameError) -> JSONValue? {
        guard buffer.count - start >= 4 else { return nil }
        let n =
            Int(buffer[start]) << 24 | Int(buffer[start + 1]) << 16 | Int(buffer[start + 2]) << 8
            | Int(buffer[start + 3])
        guard n <= PoolFrame.maxBytes else { throw .tooLarge(n) }
        guard buffer.count - start - 4 >= n else { return nil }
        let body = Array(buffer[(start + 4)..<(start + 4 + n)])
        start += 4 + n
        do {
            return try JSONValue.parse(body, maxDepth: 512)
        } catch {
            throw .invalidJSON(String(describing: error))
        }
    }

    /// Bytes received but not yet returned as a frame.
    public var pendingBytes: Int { buffer.count - start }
}
