import Foundation
import Testing

/// The DSL's promise, checked with the compiler itself: snippets that must not type-check (each with the
/// diagnostic expected) and one that must. Each runs `swiftc -typecheck` against the modules of this build.
@Suite struct TypeCheckTests {
    static let prelude = """
        import CeleriacCore
        import CeleriacCanvas
        struct Pair: Codable, Sendable, Arguments2 { let x: Int; let y: Int; init(_ x: Int, _ y: Int) { self.x = x; self.y = y } }
        struct Numbers: Codable, Sendable, Arguments1 { let numbers: [Int]; init(_ n: [Int]) { numbers = n } }
        struct Text: Codable, Sendable, Arguments1 { let text: String; init(_ t: String) { text = t } }
        let add = TaskName<Pair, Int>("t.add", parameters: "x", "y")
        let xsum = TaskName<Numbers, Int>("t.xsum", parameters: "numbers")
        let shout = TaskName<Text, String>("t.shout", parameters: "text")

        """

    static let mustNotCompile: [(name: String, code: String, diagnostic: String)] = [
        (
            "chain operator: Int into [Int]", "let c = add.s(1, 2) | xsum.s()",
            "cannot convert value of type 'Signature<Int>' to expected argument type 'Signature<[Int]>'"
        ),
        (
            "chain builder: Int into [Int]", "let c = chain {\n    add.s(1, 2)\n    xsum.s()\n}",
            "cannot convert value of type 'Step<[Int], Int>' to expected argument type 'Step<Int, Int>'"
        ),
        (
            "chord body must take the header's list", "let c = chord(group { add.s(1, 1) }, add.s(1))",
            "cannot convert value of type 'Step<Int, Int>' to expected argument type 'Step<[Int], Int>'"
        ),
        (
            "argument of the wrong type", "let c = add.s(\"one\", 2)",
            "cannot convert value of type 'String' to expected argument type 'Int'"
        ),
        (
            "String result into an Int step", "let c = shout.s(\"hi\") | add.s(1)",
            "cannot convert value of type 'Signature<String>' to expected argument type 'Signature<Int>'"
        ),
    ]

    static let mustCompile = """
        let flag = Bool.random()
        let pipeline: Signature<Int> = chain {
            add.s(1, 2)
            add.s(3)
            add.si(0, 0)
        }
        let fanned: Signature<[Int]> = group {
            for i in 0..<10 { add.s(i, i) }
            if flag { add.s(100, 0) } else { add.s(0, 100) }
        }
        let summed: Signature<Int> = chord(fanned, xsum.s(), deadline: .seconds(30))
        let nested: Signature<Int> = pipeline | chord(group(steps: { add.s(1); add.s(2) | add.s(3) }), xsum.s())
        let ofChords: Signature<[Int]> = group { summed; nested }
        let linked = add.s(1, 1).link(add.s(1)).linkError(shout.s())
        _ = (ofChords, linked)
        """

    func typecheck(_ code: String) throws -> (ok: Bool, output: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "celeriac-typecheck-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("main.swift")
        try (Self.prelude + code + "\n").write(to: file, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["swiftc", "-typecheck", "-I", Self.modulesDirectory, file.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus == 0, String(decoding: data, as: UTF8.self))
    }

    /// `.build/debug/Modules` of the checkout these tests were built from.
    static var modulesDirectory: String {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { break }
        }
        return url.appendingPathComponent(".build/debug/Modules").path
    }

    @Test func wellTypedCanvasesCompile() throws {
        let (ok, output) = try typecheck(Self.mustCompile)
        #expect(ok, "\(output)")
    }

    @Test(arguments: mustNotCompile.map(\.name))
    func illTypedCanvasIsRejected(_ name: String) throws {
        let snippet = try #require(Self.mustNotCompile.first { $0.name == name })
        let (ok, output) = try typecheck(snippet.code)
        #expect(!ok, "\(name) compiled but must not")
        #expect(output.contains(snippet.diagnostic), "\(name): expected «\(snippet.diagnostic)» in:\n\(output)")
    }
}
