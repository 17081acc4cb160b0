import CeleriacCore
import FoundationEssentials
import Testing

@testable import CeleriacPool

@Suite struct PoolFrameTests {
    @Test func framesSurviveAnyChunking() throws {
        let frames: [JSONValue] = [
            ["t": "hello", "v": 1, "pid": 42], ["t": "done", "seq": 7, "ok": ["a": [1, 2.5, nil, "ü"]]], [:],
        ]
        let bytes = frames.flatMap(PoolFrame.encode)
        for chunk in [1, 3, 4, 5, 17, bytes.count] {
            var decoder = PoolFrameDecoder()
            var out: [JSONValue] = []
            var i = 0
            while i < bytes.count {
                decoder.append(bytes[i..<min(bytes.count, i + chunk)])
                i += chunk
                while let f = try decoder.next() { out.append(f) }
            }
            #expect(out == frames, "chunk size \(chunk)")
            #expect(decoder.pendingBytes == 0)
        }
    }

    @Test func lengthPrefixIsBigEndian() {
        let bytes = PoolFrame.encode(.string("ab"))
        #expect(Array(bytes.prefix(4)) == [0, 0, 0, 4])
        #expect(String(decoding: bytes.dropFirst(4), as: UTF8.self) == "\"ab\"")
    }

    @Test func oversizedAndInvalidFramesAreRejected() {
        var decoder = PoolFrameDecoder()
        decoder.append([0x7f, 0xff, 0xff, 0xff])
        #expect(throws: PoolFrameError.tooLarge(0x7fff_ffff)) { try decoder.next() }
        var bad = PoolFrameDecoder()
        bad.append([0, 0, 0, 3] + Array("{x}".utf8))
        #expect(throws: PoolFrameError.self) { try bad.next() }
    }

    @Test func incompleteFrameWaitsForMoreBytes() throws {
        var decoder = PoolFrameDecoder()
        let bytes = PoolFrame.encode(["t": "cancel", "seq": 1])
        decoder.append(bytes.dropLast())
        #expect(try decoder.next() == nil)
        decoder.append(bytes.suffix(1))
        #expect(try decoder.next() == ["t": "cancel", "seq": 1])
    }

    @Test func runRequestCarriesTheWholeTaskContext() throws {
        var m = TaskMessage(
            name: "demo.add", args: [2, 3], kwargs: ["z": "q"], retries: 2, timeLimit: .init(hard: 5, soft: 1.5),
            parentID: "p1", groupID: "g1", replyTo: "reply.q", priority: 7, extraHeaders: ["x-celeriac-worker-lost": 1])
        m.eta = Date(timeIntervalSince1970: 1_700_000_000.25)
        m.groupIndex = 3
        m.embed.chain = [["task": "demo.mul"]]
        let request = PoolRequest.run(seq: 9, message: m)
        var decoder = PoolFrameDecoder()
        decoder.append(PoolFrame.encode(request.json))
        let decoded = try #require(try decoder.next().flatMap(PoolRequest.init(json:)))
        #expect(decoded == request)
    }

    @Test func repliesRoundTrip() throws {
        let failure = TaskFailure(type: "ValueError", arguments: ["boom"], module: "builtins", traceback: "tb")
        let replies: [PoolReply] = [
            .hello(version: PoolFrame.version, pid: 123),
            .done(seq: 1, result: .success(["x": 1]), rss: 1 << 20),
            .done(seq: 2, result: .failure(failure), rss: 0),
            .done(seq: 3, result: .retry(countdown: 0.5, maxRetries: 4, cause: failure), rss: 0),
            .done(seq: 4, result: .retry(countdown: nil, maxRetries: nil, cause: nil), rss: 0),
            .done(seq: 5, result: .cancelled, rss: 0),
            .done(seq: 6, result: .success(.null), rss: 0),
            .state(seq: 7, state: "PROGRESS", meta: ["current": 3, "total": 10]),
            .state(seq: 8, state: "UPLOADING", meta: .null),
        ]
        for reply in replies {
            #expect(PoolReply(json: try JSONValue.parse(reply.json.jsonBytes)) == reply)
        }
        #expect(PoolReply(json: ["t": "nope"]) == nil)
        #expect(PoolReply(json: ["t": "state", "seq": 1]) == nil, "a state frame names its state")
    }

    @Test func exitStatusesAreNamedLikeBilliard() {
        #expect(ChildExit(status: 9).description == "signal 9 (SIGKILL)")
        #expect(ChildExit(status: 4).description == "signal 4 (SIGILL)")
        #expect(ChildExit(status: 1 << 8).description == "exitcode 1")
    }
}
