import CeleriacCore
import Foundation
import Synchronization

/// How `celeriac call --wait` shows a task's states while it runs. On a terminal, a state whose meta has numeric
/// `current` and `total` is drawn as one progress bar redrawn in place (`\r`); any other state, and every state when
/// stdout is not a terminal, is one plain line: `PROGRESS {"current":3,"total":10}`.
final class ProgressDisplay: Sendable {
    let terminal: Bool
    private let write: @Sendable (String) -> Void
    /// A bar is on the current line (it must be ended before anything else is printed).
    private let barShown = Mutex(false)

    init(
        terminal: Bool,
        write: @escaping @Sendable (String) -> Void = { text in
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    ) {
        self.terminal = terminal
        self.write = write
    }

    /// Shows one state.
    func show(_ update: ResultMessage) {
        barShown.withLock { shown in
            if terminal, let bar = Self.bar(update) {
                write("\r" + bar + "\u{1B}[K")
                shown = true
                return
            }
            write((shown ? "\n" : "") + Self.line(update) + "\n")
            shown = false
        }
    }

    /// Ends a bar that is still on its line, so that the result prints on a line of its own.
    func end() {
        barShown.withLock { shown in
            if shown { write("\n") }
            shown = false
        }
    }

    /// `[##########··········] 5/10 PROGRESS`, or nil when the meta has no numeric `current` and `total`.
    static func bar(_ update: ResultMessage, width: Int = 30) -> String? {
        guard let current = update.result["current"]?.doubleValue, let total = update.result["total"]?.doubleValue,
            total > 0
        else { return nil }
        let fraction = min(1, max(0, current / total))
        let filled = Int((fraction * Double(width)).rounded(.down))
        let bar = String(repeating: "#", count: filled) + String(repeating: "·", count: width - filled)
        return "[\(bar)] \(number(current))/\(number(total)) \(update.status.rawValue)"
    }

    /// `STATE meta-as-JSON` (the meta left out when it is null).
    static func line(_ update: ResultMessage) -> String {
        update.result == .null ? update.status.rawValue : "\(update.status.rawValue) \(update.result.jsonString)"
    }

    private static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
