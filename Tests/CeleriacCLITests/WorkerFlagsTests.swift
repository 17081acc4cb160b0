import ArgumentParser
import CeleriacWorker
import Testing

@testable import CeleriacCLI

/// `celeriac worker`'s prefetch flags, parsed and validated as the command line would be (no broker involved).
@Suite struct WorkerFlagsTests {
    @Test func prefetchAdaptsFromConcurrencyByDefaultAndCanBeFixed() throws {
        let command = try WorkerCommand.parse([])
        #expect(command.prefetchMultiplier == 1)
        #expect(command.adaptivePrefetch)
        #expect(Worker.Configuration().adaptivePrefetch == Worker.AdaptivePrefetch(), "the library's default too")
        let fixed = try WorkerCommand.parse(["--no-adaptive-prefetch", "--prefetch-multiplier", "4"])
        #expect(!fixed.adaptivePrefetch)
        #expect(fixed.prefetchMultiplier == 4)
    }

    @Test func adaptivePrefetchTakesItsCeiling() throws {
        let command = try WorkerCommand.parse(["--adaptive-prefetch", "--max-prefetch-multiplier", "8"])
        #expect(command.adaptivePrefetch)
        #expect(command.maxPrefetchMultiplier == 8)
    }

    @Test(arguments: [
        ["--prefetch-multiplier", "0"], ["--max-prefetch-multiplier", "0"], ["--max-prefetch-multiplier", "-3"],
    ])
    func aMultiplierBelowOneIsRefusedWithTheFlagNamed(_ arguments: [String]) {
        #expect {
            _ = try WorkerCommand.parse(arguments)
        } throws: { error in
            WorkerCommand.message(for: error).contains(arguments[0])
        }
    }

    @Test func compactQueuesAreAListFromTheFlagOrTheEnvironment() throws {
        let flagged = try WorkerCommand.parse(["--compact-queues", "fast, bulk,,"])
        #expect(flagged.broker.compactQueues() == ["fast", "bulk"])
        // Without the flag the environment decides (empty here: no queue is compact unless listed).
        let plain = try WorkerCommand.parse([])
        #expect(plain.broker.compactQueueNames == nil)
        let call = try CallCommand.parse(["demo.add", "--compact-queues", "fast"])
        #expect(call.broker.compactQueues() == ["fast"])
    }
}
