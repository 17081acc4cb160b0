import CeleriacCore
import Foundation
import Yams

/// Reads a schedule file's YAML with Yams (libyaml): the whole of YAML 1.2, block and flow style, anchors and
/// aliases, merge keys (`<<: *defaults`), multi-line strings, comments.
///
/// Scalars are typed by the YAML 1.2 core schema, not YAML 1.1's: `true`/`false` are booleans, `null`/`~`/nothing
/// is null, decimal (and `0x`/`0o`) integers and floats are numbers, and everything else is a string. So `on`, `no`
/// and `yes` stay strings (`catch_up: no` is not a boolean), `1:30` stays a string (not YAML 1.1's sexagesimal 90),
/// and `2026-12-01` is a string (a date is written as an ISO-8601 instant with its offset). A quoted scalar is
/// always a string.
public enum ScheduleYAML {
    /// A file that is not valid YAML, or uses something a schedule cannot hold (a tag, a non-string key).
    public struct ParseError: Error, CustomStringConvertible, Equatable {
        /// The 1-based line number in the file.
        public let line: Int
        /// What is wrong there, e.g. `found duplicate key 'task'`.
        public let message: String
        /// `line N: message`.
        public var description: String { "line \(line): \(message)" }
    }

    /// Parses `text` into a `JSONValue` tree: mappings become objects (in file order), sequences arrays, scalars
    /// strings, numbers, booleans or null. An empty document is an empty object.
    ///
    /// - Throws: ``ParseError`` naming the line of the first problem.
    public static func parse(_ text: String) throws(ParseError) -> JSONValue {
        let root: Node?
        do {
            // The basic resolver types nothing: every scalar arrives as written, and `value(_:)` applies the core
            // schema to plain ones.
            root = try Yams.compose(yaml: text, .basic)
        } catch let error as YamlError {
            throw Self.error(error)
        } catch {
            throw ParseError(line: 1, message: "\(error)")
        }
        guard let root else { return .object([:]) }
        return try value(root)
    }

    private static func value(_ node: Node) throws(ParseError) -> JSONValue {
        switch node {
        case .scalar(let scalar):
            return scalar.style == .plain ? Self.typed(scalar.string) : .string(scalar.string)
        case .sequence(let sequence):
            var items: [JSONValue] = []
            for item in sequence { items.append(try value(item)) }
            return .array(items)
        case .mapping(let mapping):
            var object = JSONObject()
            var merged: [JSONObject] = []
            for (key, item) in mapping {
                guard case .scalar(let k) = key else {
                    throw ParseError(line: key.mark?.line ?? 1, message: "a key must be a plain string")
                }
                if k.string == "<<", k.style == .plain {
                    // A merge key: the entries of the mapping (or mappings) it names, unless given here.
                    let sources: [Node] = if case .sequence(let list) = item { Array(list) } else { [item] }
                    for source in sources {
                        guard case .object(let entries) = try value(source) else {
                            throw ParseError(
                                line: k.mark?.line ?? 1, message: "'<<' takes a mapping or a list of mappings")
                        }
                        merged.append(entries)
                    }
                    continue
                }
                guard object[k.string] == nil else {
                    throw ParseError(line: k.mark?.line ?? 1, message: "duplicate key '\(k.string)'")
                }
                object[k.string] = try value(item)
            }
            for entries in merged {
                for (k, v) in entries where object[k] == nil { object[k] = v }
            }
            return .object(object)
        case .alias:
            // Aliases are resolved by the parser; one left over refers to nothing.
            throw ParseError(line: node.mark?.line ?? 1, message: "an alias that names no anchor")
        }
    }

    /// A plain scalar by the YAML 1.2 core schema.
    static func typed(_ s: String) -> JSONValue {
        switch s {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .double(.infinity)
        case "-.inf", "-.Inf", "-.INF": return .double(-.infinity)
        default: break
        }
        if s.wholeMatch(of: /[-+]?[0-9]+/) != nil, let i = Int64(s.hasPrefix("+") ? String(s.dropFirst()) : s) {
            return .int(i)
        }
        if s.hasPrefix("0x"), let i = Int64(s.dropFirst(2), radix: 16) { return .int(i) }
        if s.hasPrefix("0o"), let i = Int64(s.dropFirst(2), radix: 8) { return .int(i) }
        if s.wholeMatch(of: /[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?/) != nil, let d = Double(s) {
            return .double(d)
        }
        return .string(s)
    }

    private static func error(_ error: YamlError) -> ParseError {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            // libyaml notices an unclosed `[` or `{` where the input ends: name the line where it was opened.
            guard let context, context.mark.line != mark.line else {
                return ParseError(line: mark.line, message: problem)
            }
            return ParseError(
                line: context.mark.line, message: "\(context.text) here: \(problem) (noticed at line \(mark.line))")
        case .reader(let problem, _, _, _):
            return ParseError(line: 1, message: problem)
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ParseError(
                line: context.mark.line, message: "duplicate key '\(duplicates.joined(separator: "', '"))'")
        default:
            return ParseError(line: 1, message: "\(error)")
        }
    }
}
