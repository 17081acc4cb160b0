import CeleriacCLI
import CeleriacCore

struct ResizeArgs: Codable, Sendable { let url: String; let width: Int }
struct ImageRef: Codable, Sendable { let url: String }
struct TransientError: Error {}
struct StorageBusy: Error {}

enum ImageTasks {
    static let resize = TaskName<ResizeArgs, ImageRef>("images.resize", parameters: "url", "width")

    /// Your code: resizes the image at `url` and returns the new image's URL.
    static func resize(_ url: String, to width: Int) async throws -> String { "\(url)?w=\(width)" }

    static func registry() throws -> TaskRegistry {
        var registry = TaskRegistry()
        registry.register(
            resize,
            options: TaskOptions(
                maxRetries: 5,  // default 3
                autoRetry: TaskOptions.AutoRetry(backoff: .exponential(factor: 2, cap: 300)) { $0 is TransientError },
                rateLimit: try RateLimit("100/s"),  // per worker; also "10/m", "5/h"
                softTimeLimit: 60  // seconds
            )
        ) { args, context in
            guard args.width > 0 else { throw BuiltinError.valueError("width must be positive") }
            context.logger.info("resizing")  // metadata carries task.id and task.name
            do {
                return ImageRef(url: try await resize(args.url, to: args.width))
            } catch is StorageBusy {
                throw context.retry(countdown: .seconds(10))  // a new message with retries + 1, like Celery
            }
        }
        return registry
    }

    /// The executable's entry point: `worker | beat | call | result | purge | inspect | control | …`.
    /// In `main.swift`: `try await ImageTasks.main()`.
    static func main() async throws {
        await CeleriacApp.main(CeleriacApp(name: "images", registry: try registry()))
    }
}
