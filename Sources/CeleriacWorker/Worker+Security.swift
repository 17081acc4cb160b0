import CeleriacBroker
import CeleriacCore
import CeleriacMessaging

extension Worker {
    /// Hostile-input settings: message signing and which remote-control commands may change this worker.
    public struct Security: Sendable, CustomStringConvertible {
        /// Sign outgoing task messages (retries, chain steps, chord joins) and verify incoming ones; nil = off.
        public var signer: MessageSigner?
        /// Remote-control methods that change state (`shutdown`, `revoke`, `rate_limit`, pool changes).
        public var remoteControl: RemoteControlPolicy

        /// The defaults are Celery's: no signing, and every remote-control command obeyed
        /// (``RemoteControlPolicy/all``).
        public init(signer: MessageSigner? = nil, remoteControl: RemoteControlPolicy = .all) {
            self.signer = signer
            self.remoteControl = remoteControl
        }

        /// For logs: the signer's key ids and whether signatures are required (never a secret) or `off`, and the
        /// remote-control policy.
        public var description: String {
            "Security(signing: \(signer.map(\.description) ?? "off"), remoteControl: \(remoteControl))"
        }
    }
}

/// Which remote-control methods a worker obeys. Inspection methods (`ping`, `stats`, `active`, `conf`, …) are
/// answered unless the policy is ``off``; state-changing ones only when allowed.
public struct RemoteControlPolicy: Sendable, Equatable, CustomStringConvertible {
    /// Methods that change the worker (Celery's control commands), including pool changes this worker may not
    /// implement yet, so that a policy written today also covers them later.
    public static let stateChanging: Set<String> = [
        "shutdown", "revoke", "terminate", "revoke_by_stamped_headers", "rate_limit", "time_limit",
        "pool_grow", "pool_shrink", "pool_restart", "autoscale", "add_consumer", "cancel_consumer",
        "enable_events", "disable_events",
    ]

    private enum Mode: Sendable, Equatable {
        case all, off
        case allow(Set<String>)
    }
    private let mode: Mode

    /// Every method (Celery's behaviour; the default).
    public static let all = RemoteControlPolicy(mode: .all)
    /// Inspection only: every state-changing method is refused.
    public static let readOnly = RemoteControlPolicy(mode: .allow([]))
    /// Nothing at all, not even `ping`.
    public static let off = RemoteControlPolicy(mode: .off)
    /// Inspection plus the given state-changing methods.
    public static func allowing(_ methods: Set<String>) -> RemoteControlPolicy {
        RemoteControlPolicy(mode: .allow(methods))
    }

    private init(mode: Mode) { self.mode = mode }

    /// Whether the worker answers remote-control `method` (Celery's name, e.g. `revoke`); a refused command gets
    /// an `error` reply and a warning in the log.
    public func allows(_ method: String) -> Bool {
        switch mode {
        case .all: true
        case .off: false
        case .allow(let allowed): !Self.stateChanging.contains(method) || allowed.contains(method)
        }
    }

    /// The policy in the `--remote-control` syntax (`all`, `off`, `read-only`, or the sorted allowed methods), so
    /// it can be passed back to `--remote-control`.
    public var description: String {
        switch mode {
        case .all: "all"
        case .off: "off"
        case .allow(let m) where m.isEmpty: "read-only"
        case .allow(let m): m.sorted().joined(separator: ",")
        }
    }
}
