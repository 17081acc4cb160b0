import CeleriacCore
import Foundation

/// One PromQL expression found in a dashboard or an alert rule, with the place an operator would look for it.
struct PromQLExpression: Sendable, CustomStringConvertible {
    let source: String  // "Grafana/celeriac-workers.json"
    let place: String  // "panel 'Queue wait p50 / p95 / p99' target B" or "variable 'task'"
    let expr: String  // as written, template variables included
    var description: String { "\(source): \(place)" }
}

/// Reads every PromQL expression from the Grafana dashboards: each panel target (rows' nested panels included) and
/// each query variable (`label_values(SELECTOR, LABEL)` is returned as its selector).
enum DashboardExpressions {
    static func dashboards(in repo: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: "\(repo)/Grafana").filter { $0.hasSuffix(".json") }.sorted()
            .map { "Grafana/\($0)" }
    }

    static func expressions(repo: String, dashboard: String) throws -> [PromQLExpression] {
        let json = try JSONValue.parse(String(contentsOfFile: "\(repo)/\(dashboard)", encoding: .utf8))
        var found: [PromQLExpression] = []
        func visit(_ panels: [JSONValue]) {
            for panel in panels {
                let title = panel["title"]?.stringValue ?? "?"
                for target in panel["targets"]?.arrayValue ?? [] {
                    guard let expr = target["expr"]?.stringValue else { continue }
                    found.append(
                        .init(
                            source: dashboard, place: "panel '\(title)' target \(target["refId"]?.stringValue ?? "?")",
                            expr: expr))
                }
                visit(panel["panels"]?.arrayValue ?? [])
            }
        }
        visit(json["panels"]?.arrayValue ?? [])
        for variable in json["templating"]?["list"]?.arrayValue ?? [] where variable["type"]?.stringValue == "query" {
            guard let query = variable["query"]?["query"]?.stringValue ?? variable["query"]?.stringValue else {
                continue
            }
            let name = variable["name"]?.stringValue ?? "?"
            found.append(
                .init(source: dashboard, place: "variable '\(name)'", expr: labelValuesSelector(query) ?? query))
        }
        return found
    }

    /// `label_values(up{job="x"}, instance)` → `up{job="x"}`; nil for any other query.
    static func labelValuesSelector(_ query: String) -> String? {
        guard query.hasPrefix("label_values("), query.hasSuffix(")"), let comma = query.lastIndex(of: ",") else {
            return nil
        }
        return String(query[query.index(query.startIndex, offsetBy: "label_values(".count)..<comma])
    }

    /// Replaces Grafana's template variables by concrete values; throws if one is left that the test does not know.
    static func substitute(_ expr: String, _ values: [String: String]) throws -> String {
        var out = expr
        // Longest names first, so `$__rate_interval` is not eaten by a shorter `$__rate`.
        for (name, value) in values.sorted(by: { $0.key.count > $1.key.count }) {
            out = out.replacingOccurrences(of: "${\(name)}", with: value).replacingOccurrences(
                of: "$\(name)", with: value)
        }
        if out.contains("$") { throw UnknownVariable(expr: expr) }
        return out
    }

    struct UnknownVariable: Error, CustomStringConvertible {
        let expr: String
        var description: String { "a template variable the test does not substitute is left in: \(expr)" }
    }

    /// The signal an alert compares: the operands of top-level `and` / `unless` / `or`, each without a trailing
    /// comparison with a number (`X > 0.1` → `X`). Parentheses and quoted strings are respected.
    static func alertOperands(_ expr: String) -> [String] {
        var operands: [String] = []
        var depth = 0, inString = false, current = ""
        let words = ["and", "unless", "or"]
        var i = expr.startIndex
        while i < expr.endIndex {
            let c = expr[i]
            if c == "\"" { inString.toggle() }
            if !inString {
                if c == "(" || c == "{" || c == "[" { depth += 1 }
                if c == ")" || c == "}" || c == "]" { depth -= 1 }
                if depth == 0, c.isWhitespace,
                    let word = words.first(where: {
                        expr[i...].dropFirst().hasPrefix("\($0) ") || expr[i...].dropFirst().hasPrefix("\($0)\n")
                    })
                {
                    operands.append(current)
                    current = ""
                    i = expr.index(i, offsetBy: word.count + 1)
                    // `and on (queue)` / `and ignoring (x)`: skip the matcher clause too.
                    let rest = expr[i...].drop(while: \.isWhitespace)
                    if rest.hasPrefix("on") || rest.hasPrefix("ignoring"), let close = rest.firstIndex(of: ")") {
                        i = expr.index(after: close)
                    }
                    continue
                }
            }
            current.append(c)
            i = expr.index(after: i)
        }
        operands.append(current)
        return operands.map { stripComparison($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    static func stripComparison(_ operand: String) -> String {
        guard let match = operand.range(of: #"\s*(==|!=|>=|<=|>|<)\s*-?[0-9.]+\s*$"#, options: .regularExpression)
        else { return operand }
        return String(operand[..<match.lowerBound])
    }
}

/// A Prometheus HTTP API client on loopback (`/api/v1/...`), good enough for tests.
struct PrometheusAPI: Sendable {
    let port: Int

    struct Answer: Sendable {
        let status: String  // "success" or "error"
        let error: String?
        let result: [JSONValue]  // instant-vector samples (a scalar answer becomes one element)
    }

    func get(_ path: String) throws -> JSONValue {
        let response = try httpGet(port: port, path: path)
        let body =
            response.headers.lowercased().contains("transfer-encoding: chunked")
            ? Self.dechunk(response.body) : response.body
        return try JSONValue.parse(body)
    }

    func query(_ promql: String) throws -> Answer {
        let encoded = promql.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? promql
        let json = try get("/api/v1/query?query=\(encoded)")
        let data = json["data"]
        var result = data?["result"]?.arrayValue ?? []
        if data?["resultType"]?.stringValue == "scalar", let scalar = data?["result"] { result = [scalar] }
        return Answer(status: json["status"]?.stringValue ?? "?", error: json["error"]?.stringValue, result: result)
    }

    /// The first sample's value as a number (nil while there is none).
    func number(_ promql: String) -> Double? {
        guard let answer = try? query(promql), let first = answer.result.first,
            let text = first["value"]?.arrayValue?.last?.stringValue
        else { return nil }
        return Double(text)
    }

    static func dechunk(_ body: String) -> String {
        var out = "", rest = Substring(body)
        while let lineEnd = rest.range(of: "\r\n"), let size = Int(rest[..<lineEnd.lowerBound], radix: 16), size > 0 {
            let start = lineEnd.upperBound
            let bytes = rest[start...].utf8.prefix(size)
            out += String(decoding: bytes, as: UTF8.self)
            rest = rest[rest.utf8.index(start, offsetBy: size)...].dropFirst(2)
        }
        return out
    }
}
