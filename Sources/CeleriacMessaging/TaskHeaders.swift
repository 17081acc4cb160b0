import CeleriacBroker

/// The protocol v2 headers of one task message, picked out of its header table in one pass.
///
/// The decoder used to look each header up by name: about forty linear searches of a twenty-entry table per
/// delivery, plus a set lookup per header to find the unknown ones. Here every entry's name is compared once, by
/// length first (an O(1) read), then against the few names of that length. Header tables have distinct keys
/// (``FieldTable`` keeps the last of duplicates), so the result is the same as looking each name up.
struct TaskHeaders {
    var lang, task, id, shadow, eta, expires, group, groupIndex, retries, timelimit: FieldValue?
    var rootID, parentID, argsrepr, kwargsrepr, origin, ignoreResult, replacedTaskNesting: FieldValue?
    var stampedHeaders, stamps, compression, sentAt: FieldValue?
    /// Headers this codec does not know, in wire order (kept in the task's extra headers).
    var unknown: [(key: String, value: FieldValue)] = []

    init(_ table: FieldTable?) {
        guard let table else { return }
        for (key, value) in table.entries where !assign(key, value) {
            unknown.append((key, value))
        }
    }

    /// Stores a known header; false for a name this codec does not know.
    private mutating func assign(_ key: String, _ value: FieldValue) -> Bool {
        switch key.utf8.count {
        case 2 where key == HeaderKey.id: id = value
        case 3 where key == HeaderKey.eta: eta = value
        case 4 where key == HeaderKey.task: task = value
        case 4 where key == HeaderKey.lang: lang = value
        case 5 where key == HeaderKey.group: group = value
        case 6 where key == HeaderKey.shadow: shadow = value
        case 6 where key == HeaderKey.origin: origin = value
        case 6 where key == HeaderKey.stamps: stamps = value
        case 7 where key == HeaderKey.expires: expires = value
        case 7 where key == HeaderKey.retries: retries = value
        case 7 where key == HeaderKey.rootID: rootID = value
        case 8 where key == HeaderKey.argsrepr: argsrepr = value
        case 9 where key == HeaderKey.timelimit: timelimit = value
        case 9 where key == HeaderKey.parentID: parentID = value
        case 10 where key == HeaderKey.kwargsrepr: kwargsrepr = value
        case 11 where key == HeaderKey.groupIndex: groupIndex = value
        case 11 where key == HeaderKey.compression: compression = value
        case 13 where key == HeaderKey.ignoreResult: ignoreResult = value
        case 15 where key == HeaderKey.stampedHeaders: stampedHeaders = value
        case 18 where key == HeaderKey.sentAt: sentAt = value
        case 21 where key == HeaderKey.replacedTaskNesting: replacedTaskNesting = value
        default: return false
        }
        return true
    }
}
