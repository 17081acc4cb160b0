import CeleriacCore
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The child side of the process pool: reads requests on fd 3, runs each task from the registry, answers on fd 4.
/// Never touches the broker. Exits as soon as its request pipe closes (parent stopped it, or the parent died).
public enum PoolChild {
    /// Requests come in on this descriptor (the parent dup2s its pipe here).
    public static let requestFD: Int32 = 3
    /// Replies go out on this one.
    public static let replyFD: Int32 = 4

    final class Current: Sendable {
        let running = Mutex<(seq: Int64, task: Task<Void, Never>, cancelled: Bool)?>(nil)
        let writeLock = Mutex(())
        func send(_ reply: PoolReply) {
            let bytes = PoolFrame.encode(reply.json)
            let ok = writeLock.withLock { _ in FileDescriptors.writeAll(PoolChild.replyFD, bytes) }
            // The parent is gone: nobody can use the result.
            if !ok { _exit(0) }
        }
    }

    /// Runs the child loop; never returns.
    public static func run(registry: TaskRegistry, hostname: String, logger: Logger) async -> Never {
        // Ctrl-C and SIGQUIT go to the whole process group: the parent decides what happens to running tasks.
        signal(SIGINT, SIG_IGN)
        signal(SIGQUIT, SIG_IGN)
        signal(SIGTERM, SIG_DFL)
        let current = Current()
        current.send(.hello(version: PoolFrame.version, pid: getpid()))
        FileDescriptors.startThread {
            var decoder = PoolFrameDecoder()
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                let n = FileDescriptors.readSome(requestFD, into: &buffer)
                // EOF: the parent closed our pipe (retire, shutdown) or died. Either way: leave now.
                if n == 0 { _exit(0) }
                decoder.append(buffer[0..<n])
                while let frame = try? decoder.next() {
                    switch PoolRequest(json: frame) {
                    case .run(let seq, let message):
                        start(seq: seq, message: message, registry: registry, hostname: hostname, logger: logger, current: current)
                    case .cancel(let seq):
                        current.running.withLock { r in
                            if let running = r, running.seq == seq {
                                r?.cancelled = true
                                running.task.cancel()
                            }
                        }
                    case nil:
                        logger.error("pool child ignored a frame it does not understand", metadata: ["frame": .string(frame.jsonString)])
                    }
                }
            }
        }
        while true { try? await Task.sleep(for: .seconds(3600)) }
    }

    private static func start(seq: Int64, message: TaskMessage, registry: TaskRegistry, hostname: String, logger: Logger, current: Current) {
        current.running.withLock { r in
            let task = Task {
                let result = await execute(message, registry: registry, hostname: hostname, logger: logger,
                                           wasCancelled: { current.running.withLock { $0?.seq == seq && $0?.cancelled == true } })
                current.running.withLock { if $0?.seq == seq { $0 = nil } }
                current.send(.done(seq: seq, result: result, rss: 0))
            }
            r = (seq, task, false)
        }
    }

    /// Runs one task and maps what it throws, as the async pool would (retry requests, autoretry, cancellation).
    static func execute(_ message: TaskMessage, registry: TaskRegistry, hostname: String, logger: Logger,
                        wasCancelled: @Sendable () -> Bool) async -> PoolReply.RunResult {
        guard let task = registry[message.name] else {
            return .failure(TaskFailure(type: "NotRegistered", arguments: [.string(message.name)], module: "celery.exceptions"))
        }
        var log = logger
        log[metadataKey: "task.id"] = .string(message.id)
        log[metadataKey: "task.name"] = .string(message.name)
        let context = TaskContext(message: message, logger: log, hostname: hostname, options: task.options)
        do {
            return .success(try await task.run(message, context))
        } catch let retry as RetryRequest {
            return .retry(countdown: retry.countdown, maxRetries: retry.maxRetries, cause: retry.cause)
        } catch {
            if wasCancelled() { return .cancelled }
            if let auto = task.options.autoRetry, auto.matches(error) {
                return .retry(countdown: auto.backoff.delay(forRetries: message.retries), maxRetries: nil, cause: TaskFailure(error: error))
            }
            return .failure(TaskFailure(error: error))
        }
    }
}
