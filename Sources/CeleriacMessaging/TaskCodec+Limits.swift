import CeleriacBroker
import CeleriacCore

/// The checks a delivery passes before its body is parsed: sizes and counts first (cheap, bounded), then the
/// AMQP types of the protocol v2 headers, so a wrong type is a clear rejection instead of a silent default.
extension TaskCodec {
    typealias Reject = (String) -> MessageRejection

    static func checkLimits(_ d: Delivery, headers known: TaskHeaders, limits: Limits, reject: Reject)
        throws(MessageRejection)
    {
        func limit(_ reason: String) -> MessageRejection {
            var r = reject(reason)
            r.label = "limit"
            return r
        }
        guard d.body.count <= limits.maxBodyBytes else {
            throw limit(
                "message body is \(d.body.count) bytes, over the \(limits.maxBodyBytes)-byte limit (--max-message-size)"
            )
        }
        let headers = d.properties.headers ?? [:]
        guard headers.count <= limits.maxHeaders else {
            throw limit("message has \(headers.count) headers, over the limit of \(limits.maxHeaders) (--max-headers)")
        }
        for (key, value) in headers {
            guard depth(of: value, limit: limits.maxDepth) <= limits.maxDepth else {
                throw limit("header '\(key)' nests deeper than \(limits.maxDepth) levels (--max-json-depth)")
            }
        }
        try checkHeaderTypes(known, reject: reject)
    }

    static func checkArguments(args: Int, kwargs: Int, limits: Limits, reject: Reject) throws(MessageRejection) {
        for (what, count) in [("positional arguments", args), ("keyword arguments", kwargs)]
        where count > limits.maxArgs {
            var r = reject("message has \(count) \(what), over the limit of \(limits.maxArgs) (--max-args)")
            r.label = "limit"
            throw r
        }
    }

    /// The body as JSON, both forms alike: UTF-8 first, then parsed within the depth limit (too deep is a `limit`).
    static func parseBody(_ bytes: [UInt8], limits: Limits, reject: Reject) throws(MessageRejection) -> JSONValue {
        try checkUTF8(bytes, reject: reject)
        do {
            return try JSONValue.parse(bytes, maxDepth: limits.maxDepth)
        } catch {
            var rejection = reject("body is not valid JSON: \(error)")
            if error.reason.hasPrefix("nesting deeper") { rejection.label = "limit" }
            throw rejection
        }
    }

    /// Python and Celery write UTF-8; a body that is not is refused rather than read with replacement characters.
    static func checkUTF8(_ body: [UInt8], reject: Reject) throws(MessageRejection) {
        // Task bodies are nearly always ASCII (JSON escapes the rest, and Celery's encoder escapes by default): eight
        // bytes at a time, that is valid at once. Anything else gets the full check, which also says where it fails.
        if isASCII(body) { return }
        var parser = Unicode.UTF8.ForwardParser()
        var it = body.makeIterator()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &it) {
            case .valid(let scalar): offset += scalar.count
            case .emptyInput: return
            case .error:
                throw reject(
                    "body is not valid UTF-8 (bad byte sequence at byte \(offset)); Celery task bodies are UTF-8 JSON")
            }
        }
    }

    /// True when no byte has its high bit set (ASCII), checked a machine word at a time.
    static func isASCII(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            let words = raw.count / 8
            var high: UInt64 = 0
            for i in 0..<words { high |= raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self) }
            for i in (words * 8)..<raw.count { high |= UInt64(raw[i]) }
            return high & 0x8080_8080_8080_8080 == 0
        }
    }

    /// What each protocol v2 header must be on the wire (py-amqp's mapping: strings `S`, ints `I`/`l`, floats
    /// `d`, None `V`, lists `A`, dicts `F`). Absent or void is always allowed except for `task` and `id`.
    static func checkHeaderTypes(_ headers: TaskHeaders, reject: Reject) throws(MessageRejection) {
        func wrong(_ key: String, _ value: FieldValue, _ expected: String) -> MessageRejection {
            reject("header '\(key)' is \(typeName(value)); expected \(expected)")
        }
        // One call per header, no array of names to build per message.
        func string(_ key: String, _ value: FieldValue?) throws(MessageRejection) {
            if let v = value, v.stringValue == nil { throw wrong(key, v, "a string") }
        }
        func stringOrNone(_ key: String, _ value: FieldValue?) throws(MessageRejection) {
            if let v = value, !v.isVoid, v.stringValue == nil { throw wrong(key, v, "a string or None") }
        }
        func count(_ key: String, _ value: FieldValue?) throws(MessageRejection) {
            guard let v = value, !v.isVoid else { return }
            guard let n = v.intValue else { throw wrong(key, v, "an integer") }
            guard n >= 0 else { throw reject("header '\(key)' is \(n); expected a non-negative integer") }
        }
        try string(HeaderKey.task, headers.task)
        try string(HeaderKey.id, headers.id)
        try stringOrNone(HeaderKey.shadow, headers.shadow)
        try stringOrNone(HeaderKey.eta, headers.eta)
        try stringOrNone(HeaderKey.expires, headers.expires)
        try stringOrNone(HeaderKey.group, headers.group)
        try stringOrNone(HeaderKey.rootID, headers.rootID)
        try stringOrNone(HeaderKey.parentID, headers.parentID)
        try stringOrNone(HeaderKey.argsrepr, headers.argsrepr)
        try stringOrNone(HeaderKey.kwargsrepr, headers.kwargsrepr)
        try stringOrNone(HeaderKey.origin, headers.origin)
        try stringOrNone(HeaderKey.lang, headers.lang)
        try count(HeaderKey.retries, headers.retries)
        try count(HeaderKey.groupIndex, headers.groupIndex)
        try count(HeaderKey.replacedTaskNesting, headers.replacedTaskNesting)
        if let v = headers.ignoreResult, !v.isVoid, v.boolValue == nil {
            throw wrong(HeaderKey.ignoreResult, v, "a boolean")
        }
        if let v = headers.timelimit, !v.isVoid {
            guard case .array(let pair) = v, pair.count == 2 else {
                throw wrong(HeaderKey.timelimit, v, "a pair [hard, soft] of seconds or None")
            }
            for limit in pair where !limit.isVoid {
                guard let seconds = limit.doubleValue ?? limit.intValue.map(Double.init) else {
                    throw wrong(HeaderKey.timelimit, v, "a pair [hard, soft] of seconds or None")
                }
                guard seconds.isFinite, seconds >= 0 else {
                    throw reject("header 'timelimit' holds \(seconds); expected non-negative seconds")
                }
            }
        }
    }

    /// Nesting depth of a header value, counted without recursing past `limit`.
    static func depth(of value: FieldValue, limit: Int) -> Int {
        switch value {
        case .array, .table: break
        default: return 0  // most headers are scalars: no walk, no allocation
        }
        var deepest = 0
        var stack: [(FieldValue, Int)] = [(value, 0)]
        while let (v, d) = stack.popLast() {
            deepest = max(deepest, d)
            if deepest > limit { return deepest }
            switch v {
            case .array(let items): for item in items { stack.append((item, d + 1)) }
            case .table(let t): for e in t.entries { stack.append((e.value, d + 1)) }
            default: break
            }
        }
        return deepest
    }

    static func typeName(_ v: FieldValue) -> String {
        switch v {
        case .bool: "a boolean"
        case .int8, .int16, .int32, .int64: "an integer"
        case .float, .double, .decimal: "a number"
        case .string: "a string"
        case .bytes: "a byte array"
        case .timestamp: "a timestamp"
        case .void: "None"
        case .array: "a list"
        case .table: "a table"
        }
    }
}
