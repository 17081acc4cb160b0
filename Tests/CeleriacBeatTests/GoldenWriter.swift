import CeleriacCore
import Foundation
import Testing

@testable import CeleriacBeat

@Test func writeGoldenTreesWithMiniYAML() throws {
    guard ProcessInfo.processInfo.environment["CELERIAC_WRITE_GOLDEN"] != nil else { return }
    let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")
    for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) where name.hasSuffix(".yaml") {
        let text = try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
        let tree = try MiniYAML.parse(text)
        let out = dir.appendingPathComponent(String(name.dropLast(5)) + ".json")
        try (tree.jsonString + "\n").write(to: out, atomically: true, encoding: .utf8)
    }
}
