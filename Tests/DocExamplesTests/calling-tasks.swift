import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging

struct SumArgs: Codable, Sendable { let x: Int; let y: Int }

enum CallingExample {
    static let add = TaskName<SumArgs, Int>("demo.add", parameters: "x", "y")

    static func run() async throws {
        let broker = try AMQPBroker("amqp://guest:guest@127.0.0.1:5682/%2F")
        let client = CeleriacClient(configuration: .init(defaultQueue: "celery"), broker: broker)
        try await client.start()  // connects, declares the reply queue, starts the result consumer

        // Typed: the input is sent as positional args in parameter order; the output decodes to Int.
        let handle = try await client.delay(add, SumArgs(x: 2, y: 3))
        print(try await handle.get(timeout: .seconds(30)))  // 5

        // By name with JSON arguments, like Celery's send_task.
        let result = try await client.send(
            "demo.add", args: [2, 3], kwargs: [:],
            options: SendOptions(queue: "celery", countdown: 10))
        do {
            let sum = try await result.get(timeout: .seconds(30))  // JSONValue, here .int(5)
            print(sum.jsonString)
        } catch .taskFailed(_, _, let failure) {  // get(timeout:) throws(CeleriacError)
            print(failure.type, failure.message, failure.traceback ?? "")
        } catch .resultTimeout(let id, _) {
            print("no result yet for", id)  // the task may still run
        } catch {
            print(error)  // .taskRevoked(id:reason:), .resultNotAvailable(id:reason:), …
        }
        await client.close()
    }
}
