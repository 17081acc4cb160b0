import CeleriacBeat
import CeleriacCore
import Foundation
import Testing

@Suite struct StateFileTests {
    func tempPath() -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("beat-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent("state.json").path
    }

    @Test func saveThenLoadRoundTripsAndLeavesNoTemporaryFile() throws {
        let file = StateFile(path: tempPath())
        #expect(file.load() == .missing)
        let state = BeatState(lastSent: ["a": 1_795_910_400, "b": 1_795_910_402.5])
        try file.save(state)
        guard case .loaded(let back) = file.load() else { Issue.record("not loaded"); return }
        #expect(back.lastSent == state.lastSent)
        #expect(!FileManager.default.fileExists(atPath: file.path + ".tmp"))
    }

    @Test func aTornTemporaryFileFromACrashDoesNotAffectTheState() throws {
        let file = StateFile(path: tempPath())
        try file.save(BeatState(lastSent: ["a": 10]))
        // A crash in the middle of a write leaves a partial PATH.tmp; PATH is still the previous complete state.
        try Data(#"{"lastSent":{"a":2"#.utf8).write(to: URL(fileURLWithPath: file.path + ".tmp"))
        #expect(file.load() == .loaded(BeatState(lastSent: ["a": 10])))
        try file.save(BeatState(lastSent: ["a": 20]))
        #expect(file.load() == .loaded(BeatState(lastSent: ["a": 20])))
    }

    @Test func aCorruptFileIsMovedAsideAndReported() throws {
        let file = StateFile(path: tempPath())
        try Data("not json {".utf8).write(to: URL(fileURLWithPath: file.path))
        guard case .corrupt(let aside, let reason) = file.load() else {
            Issue.record("corrupt file not reported"); return
        }
        #expect(!reason.isEmpty)
        #expect(FileManager.default.contents(atPath: aside) == Data("not json {".utf8))
        #expect(!FileManager.default.fileExists(atPath: file.path))
        #expect(file.load() == .missing)
    }

    @Test func savingIntoAMissingDirectoryFailsWithAHint() {
        let file = StateFile(path: "/nonexistent-dir-\(UUID().uuidString)/state.json")
        #expect {
            try file.save(BeatState())
        } throws: { error in
            "\(error)".contains("--state")
        }
    }
}

@Suite struct ScheduleFileTests {
    let example = """
        # demo schedule
        timezone: Europe/Berlin
        entries:
          add-every-2s:
            task: demo.add
            every: 2s
            args: [1, 2]
            queue: celery
            priority: 5
            expires: 10
          nightly:
            task: demo.echo
            cron: "0 3 * * mon-fri"   # weekdays
            kwargs: {value: "it's 3 o'clock", n: [1, 2.5, true, null]}
            catch_up: all
            catch_up_limit: 5
          first-monday:
            task: demo.noop
            crontab:
              minute: 0
              hour: 9
              day_of_week: mon
              day_of_month: 1-7
            timezone: America/New_York
            catch_up: skip
          launch:
            task: demo.noop
            at: "2026-12-01T09:00:00+01:00"
        """

    @Test func theDocumentedExampleLoads() throws {
        let s = try ScheduleFile.parse(example)
        #expect(s.entries.map(\.name) == ["add-every-2s", "nightly", "first-monday", "launch"])
        let add = try #require(s["add-every-2s"])
        #expect(
            add.schedule == .every(2) && add.args == [1, 2] && add.queue == "celery" && add.priority == 5
                && add.expires == 10)
        #expect(add.catchUp == .once)
        let nightly = try #require(s["nightly"])
        #expect(nightly.schedule == .crontab(try Crontab("0 3 * * mon-fri"), zone: zone("Europe/Berlin")))
        #expect(nightly.kwargs["value"] == "it's 3 o'clock")
        #expect(nightly.kwargs["n"] == [1, 2.5, true, nil])
        #expect(nightly.catchUp == .all(limit: 5))
        let monday = try #require(s["first-monday"])
        #expect(monday.schedule.zone.identifier == "America/New_York")
        #expect(monday.catchUp == .skip)
        #expect(s["launch"]?.schedule == .at(instant("2026-12-01T08:00:00Z")))
    }

    func error(_ yaml: String) -> ScheduleError? {
        do throws(ScheduleError) { _ = try ScheduleFile.parse(yaml); return nil } catch { return error }
    }

    @Test func errorsNameTheEntryAndTheField() {
        let cases: [(String, String?, String)] = [
            ("entries:\n  a:\n    task: t\n    cron: \"61 * * * *\"\n", "a", "minute"),
            ("entries:\n  a:\n    task: t\n    every: 5\n    timezone: Mars/Olympus\n", "a", "timezone"),
            ("entries:\n  a:\n    every: 5\n", "a", "task"),
            ("entries:\n  a:\n    task: t\n", "a", "every"),
            ("entries:\n  a:\n    task: t\n    every: 5\n    cron: \"* * * * *\"\n", "a", "cron"),
            ("entries:\n  a:\n    task: t\n    every: -1\n", "a", "every"),
            ("entries:\n  a:\n    task: t\n    every: 5\n    catch_up: sometimes\n", "a", "catch_up"),
            ("entries:\n  a:\n    task: t\n    every: 5\n    priority: 12\n", "a", "priority"),
            ("entries:\n  a:\n    task: t\n    every: 5\n    colour: red\n", "a", "colour"),
            ("entries:\n  a:\n    task: t\n    crontab: {minute: 0, day_of_week: caturday}\n", "a", "day_of_week"),
            ("entries:\n  a:\n    task: t\n    cron: \"0 0 31 2 *\"\n", "a", "crontab"),
            ("entries:\n  a:\n    task: t\n    at: tomorrow\n", "a", "at"),
        ]
        for (yaml, entry, field) in cases {
            let e = error(yaml)
            #expect(e?.entry == entry && e?.field == field, "\(yaml) -> \(String(describing: e))")
        }
    }

    @Test func yamlSyntaxErrorsNameTheLine() {
        let e = error("entries:\n  a:\n    task: [1, 2\n")
        #expect(e?.field == "yaml" && e?.message.contains("line 3") == true, "\(String(describing: e))")
        let tabs = error("entries:\n\ta:\n")
        #expect(tabs?.message.contains("tabs") == true)
    }

    /// Every schedule the repository ships (the docs' examples, the documented example of `ScheduleFile`, the
    /// test's example) reads to the same tree with Yams as with the parser it replaced, whose trees are kept in
    /// `Golden/*.json`; and so to the same schedule.
    @Test func yamsReadsEveryShippedScheduleAsTheOldParserDid() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yaml") }
        #expect(names.count >= 4)
        for name in names {
            let yaml = try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
            let golden = try String(
                contentsOf: dir.appendingPathComponent(String(name.dropLast(5)) + ".json"), encoding: .utf8)
            #expect(try ScheduleYAML.parse(yaml) == JSONValue.parse(Array(golden.utf8)), "\(name)")
            if name != "sequences-and-quoting.yaml" { _ = try ScheduleFile.parse(yaml, source: name) }
        }
    }

    @Test func theWholeOfYAMLWorksAndScalarsFollowTheCoreSchema() throws {
        let v = try ScheduleYAML.parse(
            """
            defaults: &defaults
              queue: reports
              priority: 5
            entries:
              nightly:
                <<: *defaults
                task: reports.nightly
                note: |
                  two lines
                  of text
              flags: [on, no, yes, 1:30, 2026-12-01, "true", true, 0x1f, 1e3, ~]
            """)
        #expect(v["entries"]?["nightly"]?["note"] == "two lines\nof text\n")
        #expect(v["entries"]?["flags"] == ["on", "no", "yes", "1:30", "2026-12-01", "true", true, 31, 1000.0, nil])
        #expect(v["defaults"]?["priority"] == 5)
    }

    @Test func anAnchoredEntryIsReusedByAnAlias() throws {
        let s = try ScheduleFile.parse(
            """
            entries:
              a: &tick
                task: demo.add
                every: 10s
                args: [1, 2]
              b: *tick
            """)
        #expect(s.entries.map(\.name) == ["a", "b"])
        #expect(s["b"]?.args == [1, 2])
    }

}
