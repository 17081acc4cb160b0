import CeleriacCLI

// celeriac-demo: the example application. It registers the demo tasks and embeds Celeriac's commands
// (worker, call, result, purge).
await CeleriacApp.main(CeleriacApp(name: "celeriac-demo", registry: DemoTasks.registry()))
