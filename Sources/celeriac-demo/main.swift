import CeleriacCLI
import Foundation

// celeriac-demo: the example application. It registers the demo tasks and embeds Celeriac's commands
// (worker, call, result, purge); `celeriac-demo canvas` sends the README's canvas examples.
if CommandLine.arguments.dropFirst().first == "canvas" {
    exit(await CanvasDemo.run(Array(CommandLine.arguments.dropFirst(2))))
}
await CeleriacApp.main(CeleriacApp(name: "celeriac-demo", registry: DemoTasks.registry()))
