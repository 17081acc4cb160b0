import CeleriacBroker
import CeleriacCore
import CeleriacMessaging
import Synchronization

/// What to do when a unique key is already held by a queued or running task.
public enum OnDuplicate: Sendable {
    /// Throw ``UniqueTaskError/duplicate(key:existingID:)``.
    case refuse
    /// Send nothing and return the id of the task that holds the key.
    case returnExisting
}

/// The outcome of `CeleriacClient.sendUnique(_:args:kwargs:key:ttl:onDuplicate:options:)`.
public enum UniqueSend: Sendable {
    /// The task was sent; it holds the key until it finishes.
    case sent(AsyncResult)
    /// Nothing was sent: `existingID` holds the key (its result goes to whoever sent it).
    case duplicate(existingID: String)

    /// The id of the task that holds the key: the one just sent, or the existing holder.
    public var id: String {
        switch self {
        case .sent(let r): r.id
        case .duplicate(let id): id
        }
    }
}

/// Why `CeleriacClient.sendUnique(_:args:kwargs:key:ttl:onDuplicate:options:)` sent nothing.
public enum UniqueTaskError: Error, CustomStringConvertible, Sendable {
    case duplicate(key: String, existingID: String)
    case invalidTTL(Duration)

    /// What happened and what to do: send again later or use `.returnExisting`, or pick a TTL in range.
    public var description: String {
        switch self {
        case .duplicate(let key, let id):
            "unique key '\(key)' is held by task \(id), queued or running; send again after it finished, or pass onDuplicate: .returnExisting to get its id"
        case .invalidTTL(let ttl):
            "unique TTL \(ttl) must be between 1 ms and 23 h (the lock queue's own expiry is one day)"
        }
    }
}

extension CeleriacClient {
    /// Sends a task unless another task with the same unique key is queued or running.
    ///
    /// The lock is a message in `celeriac.unique.<key>`, taken before the task is published and released by the worker
    /// when the task finishes (not on a retry) or is dead-lettered; `ttl` is the backstop for a task message that
    /// never reaches a worker (purged queue). Costs one declare and one confirmed publish before the task's own
    /// publish (the index entry for `celeriac locks list` rides in the task's batch).
    ///
    /// - Parameters:
    ///   - name: the task name, e.g. `reports.build`.
    ///   - args: positional arguments.
    ///   - kwargs: keyword arguments.
    ///   - key: the uniqueness key, e.g. `"report:\(customer)"`.
    ///   - ttl: longest life of the lock (default one hour).
    ///   - onDuplicate: `.refuse` (throw) or `.returnExisting` (return the holder's id).
    ///   - options: the send's options (queue, countdown, …), as for `send`.
    /// - Throws: ``UniqueTaskError/duplicate(key:existingID:)`` with `.refuse`; `CeleriacError.broker(operation:underlying:)`.
    public func sendUnique(
        _ name: String, args: [JSONValue] = [], kwargs: JSONObject = [:], key: String, ttl: Duration = .seconds(3600),
        onDuplicate: OnDuplicate = .refuse, options: SendOptions = SendOptions()
    ) async throws -> UniqueSend {
        let ms = Int(seconds(ttl) * 1000)
        guard ms >= 1, ms <= CoordinationTopology.maxUniqueTTLMilliseconds else {
            throw UniqueTaskError.invalidTTL(ttl)
        }
        var options = options
        let id = options.taskID ?? TaskMessage.newID()
        options.taskID = id
        options.headers[CoordinationTopology.uniqueKeyHeader] = .string(key)
        // A lock that expired between the refusal and the peek leaves nothing to read, and so does a lock another
        // process is peeking at this very moment (it is unacked there): try again, bounded, with a little jitter.
        for attempt in 0..<8 {
            if attempt > 0 { try await Task.sleep(for: .milliseconds(Int.random(in: 5...(10 * attempt)))) }
            let acquired: Bool
            do {
                acquired = try await UniqueLock.acquire(
                    key: key, taskID: id, task: name, ttlMilliseconds: ms, on: publisher)
            } catch {
                throw CeleriacError.broker(operation: "take unique lock '\(key)'", underlying: error.description)
            }
            if acquired {
                do {
                    if !UniqueIndex.declared(on: publisher) {
                        try await publisher.declare(CoordinationTopology.uniqueIndexSpec)
                        UniqueIndex.markDeclared(on: publisher)
                    }
                } catch {
                    throw CeleriacError.broker(
                        operation: "declare '\(CoordinationTopology.uniqueIndex)'", underlying: error.description)
                }
                let index = UniqueLock.indexEntry(key: key, taskID: id, task: name, ttlMilliseconds: ms)
                do {
                    return .sent(
                        try await send(name, args: args, kwargs: kwargs, options: options, companions: [index]))
                } catch {
                    // Not sent: give the key back so the caller can try again.
                    _ = try? await UniqueLock.release(key: key, taskID: id, on: publisher)
                    throw error
                }
            }
            let holder: UniqueLock.Holder?
            do {
                holder = try await UniqueLock.peekSerialized(key: key, on: publisher)
            } catch {
                throw CeleriacError.broker(operation: "read unique lock '\(key)'", underlying: error.description)
            }
            guard let holder else { continue }
            switch onDuplicate {
            case .refuse: throw UniqueTaskError.duplicate(key: key, existingID: holder.taskID)
            case .returnExisting: return .duplicate(existingID: holder.taskID)
            }
        }
        throw CeleriacError.broker(
            operation: "take unique lock '\(key)'", underlying: "the lock changed hands eight times in a row; try again"
        )
    }

    /// Typed form of ``sendUnique(_:args:kwargs:key:ttl:onDuplicate:options:)``.
    public func delayUnique<Input, Output>(
        _ task: TaskName<Input, Output>, _ input: Input, key: String, ttl: Duration = .seconds(3600),
        onDuplicate: OnDuplicate = .refuse, options: SendOptions = SendOptions()
    ) async throws -> UniqueSend {
        let (args, kwargs) = try CeleriacClient.arguments(of: task, input)
        return try await sendUnique(
            task.name, args: args, kwargs: kwargs, key: key, ttl: ttl, onDuplicate: onDuplicate, options: options)
    }
}

/// Connections that declared the lock index already (the transport re-declares it after a reconnect).
enum UniqueIndex {
    private static let connections = Mutex<Set<ObjectIdentifier>>([])
    static func declared(on c: any BrokerConnection) -> Bool {
        connections.withLock { $0.contains(ObjectIdentifier(c as AnyObject)) }
    }
    static func markDeclared(on c: any BrokerConnection) {
        connections.withLock { _ = $0.insert(ObjectIdentifier(c as AnyObject)) }
    }
}
