import AMQPTransport
import CeleriacCore
import CeleriacMessaging
import Foundation

/// Writes the decoder's seed inputs: real task messages (as Celeriac and Celery send them) in the fuzzer's input
/// format, plus a few hostile ones. Run once; the output is committed under Fuzz/corpus/decoder.
enum SeedWriter {
    static func input(_ m: OutgoingMessage) -> [UInt8] {
        let properties = ContentHeaderCodec.encode(m.properties)!
        precondition(properties.count <= 0xFFFF)
        return [UInt8(properties.count >> 8), UInt8(properties.count & 0xFF)] + properties + m.body
    }

    static func writeDecoderSeeds(into dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var seeds: [(String, OutgoingMessage)] = []
        var plain = TaskMessage(
            id: "7d3bd07c-5d4f-4a6f-9a29-2c5fbb0f3b0e", name: "proj.add", args: [2, 3], kwargs: ["z": 1],
            replyTo: "reply-q", priority: 3)
        plain.timeLimit = .init(hard: 30, soft: 20)
        seeds.append(("plain", TaskCodec.encode(plain, routingKey: "celery")))
        var eta = plain
        eta.eta = Date(timeIntervalSince1970: 1_800_000_000)
        eta.expires = Date(timeIntervalSince1970: 1_800_000_600)
        eta.groupID = "g-1"
        eta.groupIndex = 2
        eta.retries = 4
        eta.parentID = "p-1"
        seeds.append(
            ("eta-group", TaskCodec.encode(eta, routingKey: "celery", now: Date(timeIntervalSince1970: 1_799_999_000))))
        var chain = plain
        chain.embed.chain = [
            [
                "task": "proj.mul", "args": [4], "kwargs": [:], "options": ["task_id": "c-1"], "subtask_type": nil,
                "immutable": false,
            ]
        ]
        chain.embed.callbacks = [
            ["task": "proj.log", "args": [], "kwargs": [:], "options": [:], "subtask_type": nil, "immutable": true]
        ]
        seeds.append(("chain", TaskCodec.encode(chain, routingKey: "celery")))
        seeds.append(("signed", FuzzTargets.signer.sign(TaskCodec.encode(plain, routingKey: "celery"))))
        // As Celery 5 (py-amqp) sends one: ints as I, None as V, timelimit [None, None], stamps.
        let celeryHeaders: FieldTable = [
            "lang": .string("py"), "task": .string("tasks.add"), "id": .string("0b9f5e8b-2f4e-4c44-8a2e-6c1f1e0b6b1a"),
            "shadow": .void, "eta": .void, "expires": .void, "group": .void, "group_index": .void, "retries": .int32(0),
            "timelimit": .array([.void, .void]), "root_id": .string("0b9f5e8b-2f4e-4c44-8a2e-6c1f1e0b6b1a"),
            "parent_id": .void,
            "argsrepr": .string("(2, 3)"), "kwargsrepr": .string("{}"), "origin": .string("gen1@host"),
            "ignore_result": .bool(false),
            "replaced_task_nesting": .int32(0), "stamped_headers": .void, "stamps": .table([:]),
        ]
        seeds.append(
            (
                "celery",
                OutgoingMessage(
                    routingKey: "celery",
                    body: Array(
                        #"[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]"#.utf8),
                    properties: BasicProperties(
                        contentType: "application/json", contentEncoding: "utf-8", headers: celeryHeaders,
                        deliveryMode: 2, priority: 0, correlationID: "0b9f5e8b-2f4e-4c44-8a2e-6c1f1e0b6b1a",
                        replyTo: "r"))
            ))
        var odd = celeryHeaders
        odd["retries"] = .string("1")
        odd["timelimit"] = .array([.int64(5)])
        odd["x-death"] = .array([
            .table(["count": .int64(1), "reason": .string("expired"), "time": .timestamp(1_800_000_000)])
        ])
        odd["weird"] = .array([
            .decimal(scale: 2, value: 12345), .bytes([0xFF, 0x00]), .float(1.5), .int8(-1), .int16(300),
        ])
        seeds.append(
            (
                "hostile-types",
                OutgoingMessage(
                    routingKey: "celery", body: Array("[[1],{},{}]".utf8),
                    properties: BasicProperties(contentType: "application/json", headers: odd))
            ))
        // The compact form (as Celeriac sends it to a compact queue), plain, with the canvas parts, and signed.
        seeds.append(("compact-plain", TaskCodec.encode(plain, routingKey: "celery", form: .compact)))
        seeds.append(("compact-eta-chain", TaskCodec.encode(chain.with(eta), routingKey: "celery", form: .compact)))
        seeds.append(
            ("compact-signed", FuzzTargets.signer.sign(TaskCodec.encode(plain, routingKey: "celery", form: .compact))))
        for (name, message) in seeds {
            try Data(input(message)).write(to: URL(fileURLWithPath: "\(dir)/\(name)"))
        }
        print("celeriac-fuzz: wrote \(seeds.count) decoder seeds to \(dir)")
    }
}

extension TaskMessage {
    /// This task with the ETA, expiry, group and retry fields of `other` (a seed that sets every field).
    fileprivate func with(_ other: TaskMessage) -> TaskMessage {
        var copy = self
        copy.eta = other.eta
        copy.expires = other.expires
        copy.groupID = other.groupID
        copy.groupIndex = other.groupIndex
        copy.retries = other.retries
        copy.parentID = other.parentID
        return copy
    }
}
