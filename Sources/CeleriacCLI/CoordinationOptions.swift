import ArgumentParser
import CeleriacCoordination

/// The worker's flags for limits shared by all workers through the broker.
struct CoordinationOptions: ParsableArguments {
    @Option(
        name: .customLong("global-rate-limit"),
        help: "NAME=RATE: at most RATE (100/s, 10/m) runs of task or group NAME across all workers. Repeatable.")
    var globalRateLimits: [String] = []

    @Option(
        name: .customLong("global-concurrency"),
        help: "NAME=N: at most N tasks of task or group NAME running across all workers. Repeatable.")
    var globalConcurrency: [String] = []

    @Option(
        name: .customLong("limit-group"),
        help: "GROUP=task1,task2: a named group for --global-rate-limit / --global-concurrency. Repeatable.")
    var limitGroups: [String] = []

    @Option(
        name: .customLong("duplicate-window"),
        help: "Completed task ids remembered to skip duplicate deliveries (0 = off).")
    var duplicateWindow: Int = 10_000

    func limits() throws -> [GlobalLimit] {
        do {
            return try GlobalLimit.parse(rates: globalRateLimits, concurrency: globalConcurrency, groups: limitGroups)
        } catch {
            throw ValidationError(error.description)
        }
    }
}
