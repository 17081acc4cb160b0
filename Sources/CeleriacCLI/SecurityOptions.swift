import ArgumentParser
import CeleriacAMQP
import CeleriacCore
import CeleriacMessaging
import CeleriacWorker
import Foundation

extension CLIEnvironment {
    /// Path of the signing key file (`ID=SECRET` lines), for worker, call and beat.
    public static let signingKeysFile = "CELERIAC_SIGNING_KEYS_FILE"
}

/// `--signing-keys-file` / `--accept-unsigned`: shared by every command that sends or runs tasks.
public struct SigningOptions: ParsableArguments {
    @Option(
        name: .customLong("signing-keys-file"),
        help:
            "Sign task messages (and, on a worker, require valid signatures) with the keys in this file: one ID=SECRET per line, the first one signs (env CELERIAC_SIGNING_KEYS_FILE)."
    )
    var signingKeysFile: String?

    @Flag(
        name: .customLong("accept-unsigned"),
        help: "With signing keys: still accept unsigned messages (while rolling signing out); signed ones are verified."
    )
    var acceptUnsigned = false

    /// Required by ArgumentParser; the values come from parsing the command line.
    public init() {}

    /// The signer, or nil when no key file is configured. Errors name the file and line, never a secret.
    func signer() throws -> MessageSigner? {
        guard let path = signingKeysFile ?? CLIEnvironment.value(CLIEnvironment.signingKeysFile), !path.isEmpty else {
            if acceptUnsigned {
                throw CLIError(
                    description: "--accept-unsigned needs --signing-keys-file (or CELERIAC_SIGNING_KEYS_FILE)")
            }
            return nil
        }
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw CLIError(
                description:
                    "cannot read the signing key file '\(path)': \((error as NSError).localizedDescription). Create it with lines ID=SECRET (e.g. `echo \"k1=$(openssl rand -hex 32)\" > \(path); chmod 600 \(path)`)"
            )
        }
        do { return try MessageSigner(keyFileText: text, requireSignature: !acceptUnsigned) } catch {
            throw CLIError(description: "\(error.description) ('\(path)')")
        }
    }
}

/// Worker-only limits and remote-control policy.
public struct WorkerHardeningOptions: ParsableArguments {
    @Option(
        name: .customLong("max-args"),
        help: "Most positional (and most keyword) arguments a message may carry; more are dead-lettered.")
    var maxArgs: Int = 1024

    @Option(name: .customLong("max-headers"), help: "Most AMQP headers a message may carry; more are dead-lettered.")
    var maxHeaders: Int = 256

    @Option(
        name: .customLong("max-json-depth"),
        help: "Deepest JSON (and header) nesting accepted; deeper messages are dead-lettered.")
    var maxJSONDepth: Int = 64

    @Option(
        name: .customLong("remote-control"),
        help:
            "Remote-control commands obeyed: all (default, as Celery), read-only (no shutdown/revoke/rate_limit/pool changes), off, or a comma-separated list of state-changing commands to allow (e.g. revoke)."
    )
    var remoteControl: String = "all"

    /// Required by ArgumentParser; the values come from parsing the command line.
    public init() {}

    /// Checks the limits (at least 1; `--max-json-depth` in 2...10000) and parses `--remote-control`; a bad value exits
    /// with a usage error (status 64).
    public func validate() throws {
        guard maxArgs >= 1 else { throw ValidationError("--max-args must be at least 1") }
        guard maxHeaders >= 1 else { throw ValidationError("--max-headers must be at least 1") }
        guard (2...10_000).contains(maxJSONDepth) else {
            throw ValidationError("--max-json-depth must be in 2...10000")
        }
        do { _ = try RemoteControlPolicy(parsing: remoteControl) } catch { throw ValidationError(error.description) }
    }

    /// Applies these options and the signing options to a worker configuration.
    func apply(to config: inout Worker.Configuration, signing: SigningOptions) throws {
        config.limits.maxArgs = maxArgs
        config.limits.maxHeaders = maxHeaders
        config.limits.maxDepth = maxJSONDepth
        do { config.security.remoteControl = try RemoteControlPolicy(parsing: remoteControl) } catch {
            throw CLIError(description: error.description)
        }
        config.security.signer = try signing.signer()
    }
}
