import CeleriacAMQP
import CeleriacCLI
import CeleriacCanvas
import CeleriacCore
import CeleriacMessaging
import Foundation

/// `celeriac-demo canvas [--broker URL] [--queue NAME]`: sends the README's canonical canvases to running workers and prints
/// their results (the quick start runs it).
enum CanvasDemo {
    static func run(_ arguments: [String]) async -> Int32 {
        let flag = arguments.firstIndex(of: "--broker").flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil }
        let broker = CLIEnvironment.broker(flag)
        var queue = "celery"
        if let i = arguments.firstIndex(of: "--queue"), i + 1 < arguments.count { queue = arguments[i + 1] }
        do {
            let client = CeleriacClient(
                configuration: .init(defaultQueue: queue, connectionName: "celeriac-demo-canvas"),
                broker: try AMQPBroker(broker))
            try await client.start()
            defer { Task { await client.close() } }
            let add = DemoTasks.add, mul = DemoTasks.mul, xsum = DemoTasks.xsum

            let chained = try await client.apply(add.s(2, 2) | mul.s(4) | mul.s(5)).get()
            print("chain    add(2,2) | mul(4) | mul(5)            = \(chained)")
            let squares = try await client.apply(group { for i in 1...10 { mul.s(i, i) } }).get()
            print("group    [mul(i,i) for i in 1...10]             = \(squares)")
            let total = try await client.apply(chord(group { for i in 0..<100 { add.s(i, i) } }, xsum.s())).get()
            print("chord    xsum([add(i,i) for i in 0..<100])       = \(total)")
            let nested = try await client.apply(
                add.s(1, 1)
                    | group(steps: {
                        add.s(10) | mul.s(2); mul.s(3)
                    }) | xsum.s()
            ).get()
            print("nested   add(1,1) | group(add(10)|mul(2), mul(3)) | xsum = \(nested)")
            // Recorded, so `celeriac-demo graph ROOT_ID` can draw it (README "Workflow graphs").
            let failing = try await client.applyRecorded(
                chord(
                    group {
                        add.s(1, 1); DemoTasks.fail.s("on purpose").erased.typed(Int.self)
                    }, xsum.s()))
            do {
                _ = try await failing.result.get()
            } catch {
                print("failing chord member → \(error)")
            }
            print("draw it: celeriac-demo graph \(failing.rootID) --format mermaid")
            return 0
        } catch {
            FileHandle.standardError.write(Data("celeriac-demo canvas: \(error)\n".utf8))
            return 1
        }
    }
}

extension Signature {
    /// Re-types a signature whose task returns JSON (here: a task that only ever fails).
    func typed<T>(_: T.Type) -> Signature<T> { Signature<T>(node: node) }
}
