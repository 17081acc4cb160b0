import CeleriacCore
import CeleriacMessaging

struct Pages: Codable, Sendable { let pages: Int }

enum Reports {
    static let render = TaskName<Pages, Int>("reports.render", parameters: "pages")

    static func register(in registry: inout TaskRegistry) {
        registry.register(render) { args, context in
            for page in 1...args.pages {
                try await context.sleep(for: .milliseconds(200))  // render one page
                context.reportProgress(current: page, total: args.pages)  // PROGRESS {"current", "total"}
            }
            return args.pages
        }
    }

    /// Sends the task and prints each state until its result arrives.
    static func renderAndFollow(_ pages: Int, client: CeleriacClient) async throws -> Int {
        let handle = try await client.delay(render, Pages(pages: pages))
        for await update in await handle.updates() where update.status == .progress {
            print("page", update.result["current"]?.intValue ?? 0, "of", update.result["total"]?.intValue ?? 0)
        }
        return try await handle.get(timeout: .seconds(5))  // the sequence ended with the final result
    }
}
