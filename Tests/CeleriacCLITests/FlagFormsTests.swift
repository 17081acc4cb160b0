import CeleriacBeat
import CeleriacCoordination
import CeleriacCore
import CeleriacWorker
import Foundation
import Synchronization
import Testing

@testable import CeleriacCLI

/// The command-line and file forms the CLI reads (`FlagForms.swift`): global limits, the remote-control policy,
/// the schedule file.
@Suite struct FlagFormsTests {
    @Test func parsesRatesConcurrencyAndGroups() throws {
        let limits = try GlobalLimit.parse(
            rates: ["demo.add=10/s", "gpu=2/m"], concurrency: ["gpu=2"], groups: ["gpu=render, encode"])
        #expect(limits.count == 2)
        let add = try #require(limits.first { $0.name == "demo.add" })
        #expect(add.tasks == ["demo.add"])
        #expect(add.rate?.perSecond == 10)
        #expect(add.burst == 1)
        #expect(add.concurrency == nil)
        let gpu = try #require(limits.first { $0.name == "gpu" })
        let members: Set<String> = ["render", "encode"]
        #expect(gpu.tasks == members)
        #expect(gpu.concurrency == 2)
        #expect(gpu.rate?.text == "2/m")
    }

    @Test func rejectsMalformedFlags() {
        #expect(throws: CeleriacError.self) { try GlobalLimit.parse(rates: ["demo.add"], concurrency: [], groups: []) }
        #expect(throws: CeleriacError.self) { try GlobalLimit.parse(rates: [], concurrency: ["x=two"], groups: []) }
        #expect(throws: CeleriacError.self) { try GlobalLimit.parse(rates: [], concurrency: ["x=0"], groups: []) }
        #expect(throws: CeleriacError.self) { try GlobalLimit.parse(rates: ["x=0/s"], concurrency: [], groups: []) }
    }

    @Test func remoteControlPoliciesParse() throws {
        #expect(try RemoteControlPolicy(parsing: "all") == .all)
        #expect(try RemoteControlPolicy(parsing: "read-only") == .readOnly)
        let revokeOnly = try RemoteControlPolicy(parsing: "revoke,rate_limit")
        #expect(revokeOnly.allows("revoke") && revokeOnly.allows("rate_limit") && revokeOnly.allows("stats"))
        #expect(!revokeOnly.allows("shutdown") && !revokeOnly.allows("pool_grow"))
        #expect(!RemoteControlPolicy.off.allows("ping"))
        #expect(throws: CeleriacError.self) { try RemoteControlPolicy(parsing: "ping") }
    }

    @Test func aScheduleFileIsReadOrItsPathNamedInTheError() throws {
        let path = "/tmp/celeriac-flagforms-\(UInt32.random(in: 0...UInt32.max)).yaml"
        try "entries:\n  tick:\n    task: demo.add\n    every: 10s\n    args: [1, 2]\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let schedule = try ScheduleFile.load(path: path)
        #expect(schedule.entries.map(\.name) == ["tick"])
        #expect {
            _ = try ScheduleFile.load(path: path + ".missing")
        } throws: { error in
            "\(error)".contains(".missing") && "\(error)".contains("--schedule")
        }
    }
}

/// How `celeriac call --wait` shows states (`ProgressDisplay`): a bar on a terminal, lines otherwise.
@Suite struct ProgressDisplayTests {
    final class Output: Sendable {
        let text = Mutex("")
        func write(_ s: String) { text.withLock { $0 += s } }
    }

    func update(_ state: TaskState, _ meta: JSONValue) -> ResultMessage { .state("id", state, meta: meta) }

    @Test func aTerminalGetsOneBarRedrawnInPlaceThenTheResultOnItsOwnLine() {
        let out = Output()
        let display = ProgressDisplay(terminal: true, write: { out.write($0) })
        display.show(update(.progress, ["current": 1, "total": 4]))
        display.show(update(.progress, ["current": 2, "total": 4]))
        display.end()
        let text = out.text.withLock { $0 }
        #expect(text.hasPrefix("\r[#######"))
        #expect(text.contains("] 1/4 PROGRESS") && text.contains("] 2/4 PROGRESS"))
        #expect(!text.dropLast().contains("\n"), "redrawn with \\r, one newline at the end")
        #expect(text.hasSuffix("\n"))
    }

    @Test func aStateWithoutCurrentAndTotalIsALineEvenOnATerminal() {
        let out = Output()
        let display = ProgressDisplay(terminal: true, write: { out.write($0) })
        display.show(update(.progress, ["current": 1, "total": 2]))
        display.show(update(TaskState("UPLOADING"), ["file": "a.csv"]))
        display.end()
        #expect(out.text.withLock { $0 }.hasSuffix("\nUPLOADING {\"file\":\"a.csv\"}\n"))
    }

    @Test func notATerminalGetsPlainLines() {
        let out = Output()
        let display = ProgressDisplay(terminal: false, write: { out.write($0) })
        display.show(update(.started, ["pid": 7, "hostname": "w@h"]))
        display.show(update(.progress, ["current": 3, "total": 10]))
        display.end()
        #expect(
            out.text.withLock { $0 }
                == "STARTED {\"pid\":7,\"hostname\":\"w@h\"}\nPROGRESS {\"current\":3,\"total\":10}\n")
    }

    @Test func theBarClampsAndPrintsFractionsAsTheyAre() {
        #expect(
            ProgressDisplay.bar(update(.progress, ["current": 12, "total": 10]), width: 10)
                == "[##########] 12/10 PROGRESS")
        #expect(
            ProgressDisplay.bar(update(.progress, ["current": 0.5, "total": 2]), width: 4) == "[#···] 0.5/2 PROGRESS")
        #expect(ProgressDisplay.bar(update(.progress, ["current": 1, "total": 0])) == nil)
        #expect(ProgressDisplay.bar(update(.progress, "halfway")) == nil)
    }
}
