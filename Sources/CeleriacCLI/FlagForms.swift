import CeleriacBeat
import CeleriacCoordination
import CeleriacCore
import CeleriacWorker
import Foundation

// The command-line and file forms of settings the libraries take as values: reading flags, files and the
// environment is the CLI's job (the libraries take a `GlobalLimit`, a `RemoteControlPolicy`, a schedule's text).

extension GlobalLimit {
    /// Parses the worker's command-line forms: `--global-rate-limit NAME=RATE`, `--global-concurrency NAME=N` and
    /// `--limit-group GROUP=task1,task2`, merged per name.
    static func parse(rates: [String], concurrency: [String], groups: [String]) throws(CeleriacError)
        -> [GlobalLimit]
    {
        func split(_ text: String, _ flag: String) throws(CeleriacError) -> (String, String) {
            let parts = text.split(separator: "=", maxSplits: 1).map { String($0).trimmingSpaces }
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw .configuration("\(flag) '\(text)' must look like NAME=VALUE")
            }
            return (parts[0], parts[1])
        }
        var members: [String: Set<String>] = [:]
        for g in groups {
            let (name, list) = try split(g, "--limit-group")
            members[name] = Set(list.split(separator: ",").map { String($0).trimmingSpaces }.filter { !$0.isEmpty })
        }
        var order: [String] = []
        var rateOf: [String: String] = [:], countOf: [String: Int] = [:]
        for r in rates {
            let (name, value) = try split(r, "--global-rate-limit")
            if rateOf[name] == nil && countOf[name] == nil { order.append(name) }
            rateOf[name] = value
        }
        for c in concurrency {
            let (name, value) = try split(c, "--global-concurrency")
            guard let n = Int(value) else {
                throw .configuration("--global-concurrency '\(c)': \(value) is not a whole number")
            }
            if rateOf[name] == nil && countOf[name] == nil { order.append(name) }
            countOf[name] = n
        }
        var limits: [GlobalLimit] = []
        for name in order {
            limits.append(
                try GlobalLimit(name: name, tasks: members[name], rate: rateOf[name], concurrency: countOf[name]))
        }
        return limits
    }
}

extension RemoteControlPolicy {
    /// Parses `all`, `read-only`, `off`, or a comma-separated list of state-changing methods to allow
    /// (`revoke,rate_limit`).
    init(parsing text: String) throws(CeleriacError) {
        switch text.lowercased() {
        case "all": self = .all
        case "read-only", "readonly", "none": self = .readOnly
        case "off": self = .off
        default:
            let methods = Set(text.split(separator: ",").map { String($0).lowercased() }.filter { !$0.isEmpty })
            if let unknown = methods.subtracting(Self.stateChanging).sorted().first {
                throw .configuration(
                    "--remote-control: '\(unknown)' is not a state-changing control method; use all, read-only, off, or a list of: \(Self.stateChanging.sorted().joined(separator: ", "))"
                )
            }
            self = .allowing(methods)
        }
    }
}

extension ScheduleFile {
    /// Reads and parses the schedule file at `path` (`--schedule`).
    ///
    /// - Throws: ``ScheduleError`` when the file cannot be read, or as `ScheduleFile.parse(_:source:)` does.
    static func load(path: String) throws(ScheduleError) -> BeatSchedule {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ScheduleError(field: "--schedule", message: "cannot read \(path); check the path")
        }
        return try parse(String(decoding: data, as: UTF8.self), source: path)
    }
}

extension String {
    /// The string without leading and trailing spaces.
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
