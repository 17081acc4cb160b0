import CeleriacCoordination  // GlobalLimit, sendUnique, DeadLetterQueue
import CeleriacWorker

enum GlobalLimitsExample {
    static func configuration() throws -> Worker.Configuration {
        var config = Worker.Configuration(queues: ["images", "sync"], concurrency: 8)
        config.globalLimits = [
            try GlobalLimit(name: "images.resize", rate: "100/s"),  // one task
            try GlobalLimit(name: "partner-api", tasks: ["sync.orders", "sync.stock"], rate: "10/s"),  // a group
            try GlobalLimit(name: "gpu", tasks: ["render", "encode"], concurrency: 2),  // see below
        ]
        return config
    }
}
