extension BasicProperties {
    /// AMQP short strings (`content_type`, `correlation_id`, `reply_to`, …) and field-table keys hold at most
    /// 255 bytes; librabbitmq does not check this and would write a corrupt frame that makes the broker close the
    /// connection. A description of the first field that does not fit, or nil.
    var wireProblem: String? {
        let short: [(String, String?)] = [
            ("content_type", contentType), ("content_encoding", contentEncoding),
            ("correlation_id", correlationID), ("reply_to", replyTo), ("expiration", expiration),
            ("message_id", messageID), ("type", type), ("user_id", userID), ("app_id", appID),
        ]
        for case (let name, let value?) in short where value.utf8.count > 255 {
            return "property \(name) is \(value.utf8.count) bytes; AMQP allows 255"
        }
        guard let headers else { return nil }
        var stack: [FieldValue] = [.table(headers)]
        while let v = stack.popLast() {
            switch v {
            case .table(let t):
                for e in t.entries {
                    if e.key.utf8.count > 255 {
                        return "header key '\(e.key.prefix(40))…' is \(e.key.utf8.count) bytes; AMQP allows 255"
                    }
                    stack.append(e.value)
                }
            case .array(let items): stack.append(contentsOf: items)
            default: break
            }
        }
        return nil
    }
}
