import CeleriacMessaging
import CeleriacWorker

/// A producer's and a worker's configuration for the queue `fast`, which only Celeriac workers consume.
func compactConfigurations() -> (CeleriacClient.Configuration, Worker.Configuration) {
    var client = CeleriacClient.Configuration(defaultQueue: "fast")
    client.compactQueues = ["fast"]
    var worker = Worker.Configuration(queues: ["fast"])
    worker.compactQueues = ["fast"]
    return (client, worker)
}
