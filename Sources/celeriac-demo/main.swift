import CeleriacCLI

// celeriac-demo: the example application. It registers the demo tasks and a demo beat schedule, and embeds
// Celeriac's commands (worker, beat, call, result, purge).
await CeleriacApp.main(CeleriacApp(name: "celeriac-demo", registry: DemoTasks.registry(), schedule: try! DemoSchedule.make()))
