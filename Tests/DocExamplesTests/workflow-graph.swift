import CeleriacCanvas
import CeleriacCore
import CeleriacMessaging

struct GraphPair: Codable, Sendable, Arguments2 {
    let x: Int; let y: Int; init(_ x: Int, _ y: Int) { self.x = x; self.y = y }
}
struct GraphNumbers: Codable, Sendable, Arguments1 { let numbers: [Int]; init(_ n: [Int]) { numbers = n } }
struct GraphMessage: Codable, Sendable, Arguments1 { let message: String; init(_ m: String) { message = m } }

enum GraphExample {
    static let add = TaskName<GraphPair, Int>("demo.add", parameters: "x", "y")
    static let mul = TaskName<GraphPair, Int>("demo.mul", parameters: "x", "y")
    static let xsum = TaskName<GraphNumbers, Int>("demo.xsum", parameters: "numbers")
    static let fail = TaskName<GraphMessage, Int>("demo.fail", parameters: "message")

    /// Sends a recorded chord and returns its root id (the id of its first task) for `graph ROOT_ID`.
    static func record(_ client: CeleriacClient) async throws -> String {
        let workflow = try await client.applyRecorded(
            chord(
                group {
                    add.s(1, 1) | mul.s(2); add.s(2, 2) | fail.si("boom")
                }, xsum.s()))
        return workflow.rootID
    }
}
