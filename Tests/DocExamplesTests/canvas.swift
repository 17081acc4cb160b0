import CeleriacAMQP
import CeleriacCanvas
import CeleriacCore
import CeleriacMessaging

struct Pair: Codable, Sendable, Arguments2 {
    let x: Int; let y: Int; init(_ x: Int, _ y: Int) { self.x = x; self.y = y }
}
struct Numbers: Codable, Sendable, Arguments1 { let numbers: [Int]; init(_ n: [Int]) { numbers = n } }

enum CanvasExample {
    static let add = TaskName<Pair, Int>("demo.add", parameters: "x", "y")
    static let mul = TaskName<Pair, Int>("demo.mul", parameters: "x", "y")
    static let xsum = TaskName<Numbers, Int>("demo.xsum", parameters: "numbers")

    static func run() async throws {
        let client = CeleriacClient(broker: try AMQPBroker("amqp://guest:guest@127.0.0.1:5682/%2F"))
        try await client.start()

        // mul(add(2, 2), 4) = 16
        let sixteen = try await client.apply(add.s(2, 2) | mul.s(4)).get()

        // Groups and chords accept loops and conditionals; results come back in member order.
        let squares = try await client.apply(group { for i in 0..<100 { mul.s(i, i) } }).get()  // [Int]
        let total = try await client.apply(chord(group { for i in 0..<1000 { add.s(i, i) } }, xsum.s())).get()

        // Nesting to any depth: a chain containing a group of chains, a chord of chords, a chord inside a chain.
        let fanOut = group(steps: {
            add.s(10) | mul.s(2); mul.s(3)
        })  // Step<Int, [Int]>
        let nested = try await client.apply(add.s(1, 1) | fanOut | xsum.s()).get()  // (2+10)*2 + 2*3 = 30

        print(sixteen, squares.count, total, nested)  // 16 100 999000 30
        await client.close()
    }
}
