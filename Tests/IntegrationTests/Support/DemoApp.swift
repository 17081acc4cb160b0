import Foundation
import Testing

/// The `celeriac-demo` executable the CLI tests run (built by `swift build --build-tests`, which scripts/test.sh
/// runs first).
enum DemoApp {
    static var path: String { "\(TestBroker.repoRoot)/.build/debug/celeriac-demo" }

    /// Runs `celeriac-demo ARGS` to completion off the cooperative pool; exit status 0 and the combined output.
    static func run(_ args: [String]) async -> (ok: Bool, output: String) {
        await Shell.runOffPoolWithStatus(path, args, environment: ProcessInfo.processInfo.environment)
    }

    /// True when the executable is there; otherwise records a failure that says how to build it.
    static func isBuilt() -> Bool {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            Issue.record("\(path) is missing: `swift build --build-tests` builds it (scripts/test.sh does)")
            return false
        }
        return true
    }
}
