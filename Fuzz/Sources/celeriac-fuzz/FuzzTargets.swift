import AMQPTransport
import CeleriacBeat
import CeleriacCore
import CeleriacMessaging
import Foundation

/// The three parsers that read untrusted text or bytes, each as a function of one input. A crash, a trap or a
/// broken invariant (`fuzzCheck`) is a finding; libFuzzer saves the input.
enum FuzzTarget: String, CaseIterable {
    /// Input: 2-byte big-endian length N, N bytes of AMQP content-header properties (decoded by librabbitmq, as
    /// every delivery is), then the body.
    case decoder
    /// Input: a crontab expression (`m h dom mon dow`) as UTF-8.
    case crontab
    /// Input: a broker URL as UTF-8.
    case url

    func run(_ bytes: [UInt8]) {
        switch self {
        case .decoder: FuzzTargets.decoder(bytes)
        case .crontab: FuzzTargets.crontab(bytes)
        case .url: FuzzTargets.url(bytes)
        }
    }
}

/// Stops the run with a message libFuzzer shows next to the saved input.
func fuzzCheck(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("fuzz invariant broken: \(message())") }
}

enum FuzzTargets {
    static let signer = try! MessageSigner(
        keys: [try! SigningKey(id: "fuzz", secret: Array("fuzzing-secret-0123456789".utf8))], requireSignature: false)
    static let limits = TaskCodec.Limits(maxBodyBytes: 1 << 20, maxDepth: 64, maxArgs: 1024, maxHeaders: 256)
    static let roomy = TaskCodec.Limits(maxBodyBytes: .max, maxDepth: 200, maxArgs: .max, maxHeaders: .max)

    static func delivery(_ properties: BasicProperties, _ body: [UInt8]) -> Delivery {
        Delivery(
            tag: DeliveryTag(generation: 1, channel: 1, value: 1), consumerTag: "fuzz", redelivered: false,
            exchange: "",
            routingKey: "celery", properties: properties, body: body, messageCount: nil)
    }

    /// Splits a decoder input into its properties and body.
    static func split(_ bytes: [UInt8]) -> (properties: [UInt8], body: [UInt8])? {
        guard bytes.count >= 2 else { return nil }
        let n = Int(bytes[0]) << 8 | Int(bytes[1])
        let end = min(bytes.count, 2 + n)
        return (Array(bytes[2..<end]), Array(bytes[end...]))
    }

    static func decoder(_ bytes: [UInt8]) {
        guard let (raw, body) = split(bytes), let properties = ContentHeaderCodec.decode(raw) else { return }
        let d = delivery(properties, body)
        _ = try? signer.verify(d)
        let task: TaskMessage
        do { task = try TaskCodec.decode(d, limits: limits) } catch { return }
        // What the decoder accepts, the encoder writes back in either form (Celery's and the compact one) in a way
        // the decoder accepts again, and a signature made on it survives librabbitmq's encode and decode.
        for form in MessageForm.allCases { roundTrip(task, form: form) }
    }

    static func roundTrip(_ task: TaskMessage, form: MessageForm) {
        let again = signer.sign(TaskCodec.encode(task, routingKey: "celery", form: form))
        guard let wire = ContentHeaderCodec.encode(again.properties) else { return }  // larger than a frame
        guard let back = ContentHeaderCodec.decode(wire) else {
            fuzzCheck(false, "librabbitmq cannot decode what it encoded: \(again.properties)"); return
        }
        let redelivered = delivery(back, again.body)
        do {
            try signer.verify(redelivered)
        } catch {
            fuzzCheck(false, "a message signed by Celeriac fails verification after the wire: \(error.reason)")
        }
        do {
            let copy = try TaskCodec.decode(redelivered, limits: roomy)
            fuzzCheck(
                copy.id == task.id && copy.name == task.name && copy.args.count == task.args.count
                    && copy.kwargs.count == task.kwargs.count && copy.retries == task.retries
                    && copy.embed == task.embed && copy.eta == task.eta && copy.groupIndex == task.groupIndex,
                "re-encoded task differs (\(form) form)")
        } catch {
            fuzzCheck(false, "re-encoded task rejected (\(form) form): \(error.reason)")
        }
    }

    static let utc = TimeZone(identifier: "UTC")!
    static let berlin = TimeZone(identifier: "Europe/Berlin")!
    static let start = Date(timeIntervalSince1970: 1_774_746_000)  // 2026-03-29 01:00 UTC, a DST change in Berlin

    static func crontab(_ bytes: [UInt8]) {
        guard bytes.count <= 512 else { return }
        guard let cron = try? Crontab(String(decoding: bytes, as: UTF8.self)) else { return }
        for zone in [utc, berlin] {
            guard let next = cron.next(after: start, in: zone) else { continue }
            fuzzCheck(next > start, "next fire \(next) is not after \(start) for \(cron)")
        }
        // The description is an expression that parses to the same schedule.
        guard let again = try? Crontab(cron.description) else {
            fuzzCheck(false, "description '\(cron)' does not parse"); return
        }
        fuzzCheck(again == cron, "description '\(cron)' parses to a different schedule")
    }

    static func url(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        let parsed: AMQPURL
        do { parsed = try AMQPURL(text) } catch {
            // Fixed wording (the hint's example URL, the list of known parameters) may contain a short password by
            // chance; what is left must not.
            var shown = error.description
            for fixed in [
                error.hint ?? "",
                "(known: heartbeat, connection_timeout, frame_max, channel_max, cacertfile, certfile, keyfile, verify)",
            ] where !fixed.isEmpty {
                shown = shown.replacing(fixed, with: "")
            }
            // Substring checks on bytes: Foundation's `contains` traps on some invalid-UTF-8-derived strings
            // (String index out of bounds in its UTF-16 view), which is Foundation's bug, not the parser's.
            if let pw = rawPassword(text), pw.count >= 6, !occurs(pw, in: AMQPURL.redact(text)) {
                fuzzCheck(!occurs(pw, in: shown), "parse error shows the password: \(shown)")
            }
            return
        }
        let redacted = parsed.redacted
        // The redacted form is a URL for the same endpoint, user and vhost, with the password replaced.
        guard let again = try? AMQPURL(redacted) else {
            fuzzCheck(false, "redacted URL '\(redacted)' does not parse"); return
        }
        fuzzCheck(
            again.host == parsed.host && again.port == parsed.port && again.user == parsed.user
                && again.vhost == parsed.vhost
                && again.tls == parsed.tls, "redacted URL '\(redacted)' names another endpoint")
        fuzzCheck(again.password == "***", "redacted URL keeps a password")
    }

    /// Whether `needle` occurs in `haystack`, compared as UTF-8 bytes.
    static func occurs(_ needle: String, in haystack: String) -> Bool {
        let h = Array(haystack.utf8), n = Array(needle.utf8)
        guard n.count <= h.count else { return false }
        return (0...(h.count - n.count)).contains { h[$0..<($0 + n.count)].elementsEqual(n) }
    }

    /// The password part of a URL as typed (before percent-decoding), if it has one.
    static func rawPassword(_ text: String) -> String? {
        guard let schemeEnd = text.firstRange(of: "://") else { return nil }
        let after = text[schemeEnd.upperBound...]
        let authority = after[..<(after.firstIndex { $0 == "/" || $0 == "?" } ?? after.endIndex)]
        guard let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") else {
            return nil
        }
        return String(authority[authority.index(after: colon)..<at])
    }
}
