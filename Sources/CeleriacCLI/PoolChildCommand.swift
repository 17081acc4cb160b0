import ArgumentParser
import CeleriacPool
import Logging

/// `pool-child` (hidden): a process-pool child. The worker starts its own executable in this mode with the
/// request pipe on fd 3 and the reply pipe on fd 4; it is not meant to be run by hand.
public struct PoolChildCommand: AsyncParsableCommand {
    /// `pool-child`, hidden from `--help`.
    public static let configuration = CommandConfiguration(
        commandName: "pool-child", abstract: "Process-pool child (started by the worker).",
        shouldDisplay: false)
    @Option(name: .customLong("hostname")) var hostname: String = "celeriac@localhost"
    @Option(name: .customLong("loglevel")) var loglevel: String = "info"

    /// Required by ArgumentParser; the values come from parsing the command line.
    public init() {}

    /// Serves the worker's task requests (``PoolChild/run(registry:hostname:logger:)``; cancels arrive on fd 5) until
    /// the request pipe closes. Needs the app (``CeleriacApp/main(_:arguments:)``) to find the tasks.
    public func run() async throws {
        let app = try requireApp()
        var logger = Logger(label: "celeriac.pool.child")
        logger.logLevel = Logger.Level(rawValue: loglevel.lowercased()) ?? .info
        await PoolChild.run(registry: app.registry, hostname: hostname, logger: logger)
    }
}
