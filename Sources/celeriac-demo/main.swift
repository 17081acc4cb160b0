import CeleriacCLI
import Foundation

// celeriac-demo: the example application. It registers the demo tasks and a demo beat schedule, and embeds
// Celeriac's commands (worker, beat, call, result, purge); `celeriac-demo canvas` sends the README's canvases.
if CommandLine.arguments.dropFirst().first == "canvas" {
    exit(await CanvasDemo.run(Array(CommandLine.arguments.dropFirst(2))))
}
// `celeriac-demo ledger`: a known workload, every result reconciled (the fault-injection harness uses it).
if CommandLine.arguments.dropFirst().first == "ledger" {
    exit(await LedgerDriver.run(Array(CommandLine.arguments.dropFirst(2))))
}
await CeleriacApp.main(
    CeleriacApp(name: "celeriac-demo", registry: DemoTasks.registry(), schedule: try! DemoSchedule.make()))
