import CeleriacCore
import Foundation

/// A small YAML reader for schedule files: the subset documented in the README's "Beat" section.
///
/// Supported: block mappings (`key: value`) and block sequences (`- item`) by indentation (spaces only);
/// flow sequences `[1, 2]` and flow mappings `{a: 1, b: "x"}` (nested); scalars: double-quoted (with `\"`, `\\`,
/// `\n`, `\t`), single-quoted (`''` for a quote), integers, floats, `true`/`false`, `null`/`~`, plain strings;
/// `#` comments. Not supported (an error names the line): anchors, aliases, tags, multi-line scalars (`|`, `>`),
/// multiple documents, tabs for indentation.
public enum MiniYAML {
    /// A schedule file outside the supported YAML subset, or malformed.
    public struct ParseError: Error, CustomStringConvertible, Sendable, Equatable {
        /// The 1-based line number in the file.
        public let line: Int
        /// What is wrong there, e.g. `duplicate key 'task'`.
        public let message: String
        /// `line N: message`.
        public var description: String { "line \(line): \(message)" }
    }

    private struct Line { let number: Int; let indent: Int; let text: String }

    /// Parses `text` into a `JSONValue` tree: mappings become objects, sequences arrays, scalars strings, numbers,
    /// booleans or null. An empty document is an empty object.
    ///
    /// - Throws: ``ParseError`` at the first unsupported or malformed line.
    public static func parse(_ text: String) throws(ParseError) -> JSONValue {
        var lines: [Line] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var s = String(raw)
            if s.hasSuffix("\r") { s.removeLast() }
            let body = stripComment(s)
            let trimmed = body.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed == "---" { continue }
            if s.prefix(while: { $0 == " " || $0 == "\t" }).contains("\t") {
                throw ParseError(line: i + 1, message: "tabs are not allowed for indentation; use spaces")
            }
            if trimmed.hasPrefix("&") || trimmed.hasPrefix("*") || trimmed.hasPrefix("!") || trimmed == "|"
                || trimmed == ">"
            {
                throw ParseError(line: i + 1, message: "anchors, aliases, tags and block scalars are not supported")
            }
            let indent = body.prefix { $0 == " " }.count
            lines.append(Line(number: i + 1, indent: indent, text: String(trimmed)))
        }
        var index = 0
        guard !lines.isEmpty else { return .object([:]) }
        let value = try block(&lines, &index, indent: lines[0].indent)
        if index < lines.count { throw ParseError(line: lines[index].number, message: "unexpected indentation") }
        return value
    }

    /// Removes a `#` comment that is outside quotes and starts the line or follows a space.
    static func stripComment(_ s: String) -> String {
        var inSingle = false, inDouble = false, previous: Character = " "
        var out = ""
        var escaped = false
        for c in s {
            if inDouble {
                if escaped {
                    escaped = false
                } else if c == "\\" {
                    escaped = true
                } else if c == "\"" {
                    inDouble = false
                }
            } else if inSingle {
                if c == "'" { inSingle = false }
            } else if c == "\"" {
                inDouble = true
            } else if c == "'" {
                inSingle = true
            } else if c == "#" && (previous == " " || previous == "\t") {
                break
            }
            out.append(c)
            previous = c
        }
        return out
    }

    private static func block(_ lines: inout [Line], _ i: inout Int, indent: Int) throws(ParseError) -> JSONValue {
        let first = lines[i]
        if first.text == "-" || first.text.hasPrefix("- ") {
            var items: [JSONValue] = []
            while i < lines.count, lines[i].indent == indent, lines[i].text == "-" || lines[i].text.hasPrefix("- ") {
                let line = lines[i]
                let rest = line.text.dropFirst(1).trimmingCharacters(in: .whitespaces)
                if rest.isEmpty {
                    i += 1
                    guard i < lines.count, lines[i].indent > indent else { items.append(.null); continue }
                    items.append(try block(&lines, &i, indent: lines[i].indent))
                } else if splitKey(rest) != nil && !rest.hasPrefix("{") && !rest.hasPrefix("[") && !rest.hasPrefix("\"")
                    && !rest.hasPrefix("'")
                {
                    // "- key: value" starts a mapping whose keys are indented to the text after "- ".
                    let inner = line.indent + (line.text.count - rest.count)
                    lines[i] = Line(number: line.number, indent: inner, text: rest)
                    items.append(try block(&lines, &i, indent: inner))
                } else {
                    items.append(try scalarOrFlow(rest, line: line.number))
                    i += 1
                }
            }
            return .array(items)
        }
        var object = JSONObject()
        while i < lines.count, lines[i].indent == indent {
            let line = lines[i]
            guard let (key, rest) = splitKey(line.text) else {
                throw ParseError(line: line.number, message: "expected 'key: value', got '\(line.text)'")
            }
            if object[key] != nil { throw ParseError(line: line.number, message: "duplicate key '\(key)'") }
            i += 1
            if rest.isEmpty {
                if i < lines.count,
                    lines[i].indent > indent || (lines[i].indent == indent && lines[i].text.hasPrefix("- "))
                {
                    object[key] = try block(&lines, &i, indent: lines[i].indent)
                } else {
                    object[key] = .null
                }
            } else {
                object[key] = try scalarOrFlow(rest, line: line.number)
            }
        }
        if i < lines.count, lines[i].indent > indent {
            throw ParseError(line: lines[i].number, message: "unexpected indentation")
        }
        return .object(object)
    }

    /// `key: rest` with the key unquoted or quoted; nil when the line is not a mapping entry.
    static func splitKey(_ text: String) -> (String, String)? {
        let chars = Array(text)
        var key = ""
        var j = 0
        if let q = chars.first, q == "\"" || q == "'" {
            j = 1
            while j < chars.count, chars[j] != q { key.append(chars[j]); j += 1 }
            guard j < chars.count else { return nil }
            j += 1
            guard j < chars.count, chars[j] == ":" else { return nil }
        } else {
            while j < chars.count {
                if chars[j] == ":" && (j + 1 == chars.count || chars[j + 1] == " ") { break }
                if chars[j] == "{" || chars[j] == "[" { return nil }
                j += 1
            }
            guard j < chars.count else { return nil }
            key = String(chars[0..<j]).trimmingCharacters(in: .whitespaces)
        }
        let rest = String(chars[(j + 1)...]).trimmingCharacters(in: .whitespaces)
        return (key, rest)
    }

    static func scalarOrFlow(_ text: String, line: Int) throws(ParseError) -> JSONValue {
        var p = FlowParser(chars: Array(text), line: line)
        let v = try p.value(inFlow: false)
        p.skipSpaces()
        if p.pos < p.chars.count {
            throw ParseError(line: line, message: "unexpected text after value: '\(String(p.chars[p.pos...]))'")
        }
        return v
    }

    struct FlowParser {
        let chars: [Character]
        let line: Int
        var pos = 0

        mutating func skipSpaces() { while pos < chars.count, chars[pos] == " " { pos += 1 } }

        func error(_ m: String) -> ParseError { ParseError(line: line, message: m) }

        mutating func value(inFlow: Bool) throws(ParseError) -> JSONValue {
            skipSpaces()
            guard pos < chars.count else { return inFlow ? .null : .string("") }
            switch chars[pos] {
            case "[":
                pos += 1
                var items: [JSONValue] = []
                skipSpaces()
                if pos < chars.count, chars[pos] == "]" { pos += 1; return .array([]) }
                while true {
                    items.append(try value(inFlow: true))
                    skipSpaces()
                    guard pos < chars.count else { throw error("unclosed [") }
                    if chars[pos] == "," { pos += 1; continue }
                    if chars[pos] == "]" { pos += 1; return .array(items) }
                    throw error("expected , or ] in a flow sequence")
                }
            case "{":
                pos += 1
                var object = JSONObject()
                skipSpaces()
                if pos < chars.count, chars[pos] == "}" { pos += 1; return .object([:]) }
                while true {
                    skipSpaces()
                    let keyValue = try value(inFlow: true)
                    let key: String =
                        switch keyValue {
                        case .string(let s): s
                        case .int(let n): String(n)
                        default: throw error("flow mapping keys must be strings")
                        }
                    skipSpaces()
                    guard pos < chars.count, chars[pos] == ":" else { throw error("expected ':' after key '\(key)'") }
                    pos += 1
                    object[key] = try value(inFlow: true)
                    skipSpaces()
                    guard pos < chars.count else { throw error("unclosed {") }
                    if chars[pos] == "," { pos += 1; continue }
                    if chars[pos] == "}" { pos += 1; return .object(object) }
                    throw error("expected , or } in a flow mapping")
                }
            case "\"":
                pos += 1
                var s = ""
                while pos < chars.count, chars[pos] != "\"" {
                    if chars[pos] == "\\", pos + 1 < chars.count {
                        pos += 1
                        switch chars[pos] {
                        case "n": s.append("\n")
                        case "t": s.append("\t")
                        default: s.append(chars[pos])
                        }
                    } else {
                        s.append(chars[pos])
                    }
                    pos += 1
                }
                guard pos < chars.count else { throw error("unclosed double quote") }
                pos += 1
                return .string(s)
            case "'":
                pos += 1
                var s = ""
                while pos < chars.count {
                    if chars[pos] == "'" {
                        if pos + 1 < chars.count, chars[pos + 1] == "'" { s.append("'"); pos += 2; continue }
                        break
                    }
                    s.append(chars[pos])
                    pos += 1
                }
                guard pos < chars.count else { throw error("unclosed single quote") }
                pos += 1
                return .string(s)
            default:
                var s = ""
                while pos < chars.count {
                    let c = chars[pos]
                    if inFlow && (c == "," || c == "]" || c == "}") { break }
                    if inFlow && c == ":" && (pos + 1 == chars.count || chars[pos + 1] == " ") { break }
                    s.append(c)
                    pos += 1
                }
                return plain(s.trimmingCharacters(in: .whitespaces))
            }
        }

        func plain(_ s: String) -> JSONValue {
            switch s {
            case "true", "True", "TRUE": return .bool(true)
            case "false", "False", "FALSE": return .bool(false)
            case "null", "Null", "NULL", "~", "": return .null
            default: break
            }
            if let i = Int64(s) { return .int(i) }
            if s.contains(where: { $0.isNumber }),
                s.allSatisfy({ $0.isNumber || $0 == "." || $0 == "-" || $0 == "+" || $0 == "e" || $0 == "E" }),
                let d = Double(s)
            {
                return .double(d)
            }
            return .string(s)
        }
    }
}
