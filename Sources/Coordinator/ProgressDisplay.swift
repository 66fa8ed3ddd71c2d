import Foundation

// The live progress of a run, as values, and how it is laid out: pure functions of a frame (and a
// terminal width), so the layout is unit-tested. `ProgressPrinter` gathers the frames and writes them.

/// One moment of a run's progress: per task, the finished (example, method) pairs and per method
/// the running scores of the results stored so far.
struct ProgressFrame: Sendable, Equatable {
    struct Method: Sendable, Equatable {
        var name: String
        /// Results stored for this task and method.
        var results: Int
        var correct: Int
        /// Results with an extracted answer (`extracted_answer IS NOT NULL`).
        var answered: Int
        /// Σ advanced tokens / Σ periods over the stored results; nil for methods without periods.
        var aal: Double?
        /// correct / results: the report's "accuracy (completed)".
        var accuracy: Double { results > 0 ? Double(correct) / Double(results) : 0 }
    }

    struct Task: Sendable, Equatable {
        var name: String
        /// (example, method) pairs finished — stored or failed for good — of `total`.
        var done: Int
        var failed: Int
        var total: Int
        /// Pairs finished per second since the task started moving; nil before it has.
        var rate: Double?
        /// The methods with at least one stored result, in the run's order.
        var methods: [Method]
        /// Seconds left at `rate`.
        var etaS: Double? {
            guard let rate, rate > 0 else { return nil }
            return Double(max(0, total - done)) / rate
        }
    }

    var elapsedS: Double
    var workers: Int
    /// The store cannot take results (disk full): nothing is leased until it can.
    var paused: Bool
    var tasks: [Task]
}

/// Per-task rates: pairs finished since the last frame in which the task had not moved yet, over the
/// time since then. A task that starts late (tasks are served in turn) is not charged for its wait.
struct ProgressRates: Sendable {
    private var start: [String: (elapsedS: Double, done: Int)] = [:]

    mutating func rate(task: String, done: Int, elapsedS: Double) -> Double? {
        guard let s = start[task], done != s.done else {
            start[task] = (elapsedS, done) // not moving yet: its start moves with the clock
            return nil
        }
        let seconds = elapsedS - s.elapsedS
        return seconds > 0 ? Double(done - s.done) / seconds : nil
    }
}

enum ProgressDisplay {
    /// The periodic log line written when the output is not a terminal (a file, a pipe, CI's log):
    /// the format the coordinator always printed, with each method's answered count added.
    static func logLine(_ frame: ProgressFrame) -> String {
        var line = String(format: "[%6.1fs] %d workers", frame.elapsedS, frame.workers)
        if frame.paused { line += " PAUSED (store full)" }
        for t in frame.tasks {
            line += " | \(t.name) \(t.done)/\(t.total)"
            if t.failed > 0 { line += " (\(t.failed) failed)" }
            line += String(format: " %.1f/s ETA %@", t.rate ?? 0, t.etaS.map { String(format: "%.0fs", $0) } ?? "?")
            for m in t.methods {
                line += " · \(m.name) \(percent(m.accuracy)) answered \(m.answered)/\(m.results)"
                if let aal = m.aal { line += String(format: " AAL %.2f", aal) }
            }
        }
        return line
    }

    /// The lines drawn in place on a terminal: a status line, then one line per task. No line is
    /// longer than `width` columns: a line that does not fit drops its labels, then its rate and the
    /// methods' answered counts and AAL, then abbreviates names, and is cut with "…" as a last resort.
    static func terminalLines(_ frame: ProgressFrame, width: Int) -> [String] {
        var status = "[" + duration(frame.elapsedS) + "] \(frame.workers) worker" + (frame.workers == 1 ? "" : "s")
        if frame.paused { status += " PAUSED (store full)" }
        return [fit(status, width)] + frame.tasks.map { taskLine($0, width: width) }
    }

    /// How much of a task line is shown, fullest first.
    private static let levels: [(task: Int, method: Int)] = [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2), (2, 3), (3, 3)]

    static func taskLine(_ t: ProgressFrame.Task, width: Int) -> String {
        var line = ""
        for level in levels {
            line = ([taskPart(t, level.task)] + t.methods.map { methodPart($0, level.method) }).joined(separator: " | ")
            if line.count <= width { return line }
        }
        return fit(line, width)
    }

    private static func taskPart(_ t: ProgressFrame.Task, _ level: Int) -> String {
        let eta = t.etaS.map(duration) ?? "?"
        let finished = t.total > 0 && t.done >= t.total
        switch level {
        case _ where finished && level <= 1:
            return "\(t.name) \(t.done)/\(t.total)" + (t.failed > 0 ? " (\(t.failed) failed)" : "") + " done"
        case 0:
            let rate = t.rate.map { String(format: "%.1f/s", $0) } ?? "-/s"
            return "\(t.name) \(t.done)/\(t.total)" + (t.failed > 0 ? " (\(t.failed) failed)" : "") + " \(rate) ETA \(eta)"
        case 1:
            return "\(t.name) \(t.done)/\(t.total)" + (t.failed > 0 ? " \(t.failed)f" : "") + " ETA \(eta)"
        case 2:
            return "\(t.name) \(t.done)/\(t.total)"
        default:
            return "\(abbreviate(t.name, 8)) \(t.done)/\(t.total)"
        }
    }

    private static func methodPart(_ m: ProgressFrame.Method, _ level: Int) -> String {
        switch level {
        case 0:
            return "\(m.name) \(percent(m.accuracy)) ans \(m.answered)/\(m.results)" + (m.aal.map { String(format: " AAL %.2f", $0) } ?? "")
        case 1:
            return "\(m.name) \(percent(m.accuracy)) ans \(m.answered)" + (m.aal.map { String(format: " AAL %.1f", $0) } ?? "")
        case 2:
            return "\(m.name) \(percent(m.accuracy))"
        default:
            return "\(abbreviate(m.name, 6)) " + String(format: "%.0f%%", m.accuracy * 100)
        }
    }

    static func percent(_ x: Double) -> String { String(format: "%.1f%%", x * 100) }

    /// "42s", "3m05s", "2h07m".
    static func duration(_ seconds: Double) -> String {
        let s = Int(max(0, seconds).rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60)
    }

    /// `name` in at most `n` characters, cut with "…".
    static func abbreviate(_ name: String, _ n: Int) -> String {
        name.count <= n ? name : String(name.prefix(max(0, n - 1))) + "…"
    }

    /// `line` in at most `width` characters, cut with "…".
    static func fit(_ line: String, _ width: Int) -> String {
        if line.count <= width { return line }
        return width <= 0 ? "" : String(line.prefix(width - 1)) + "…"
    }

    // ANSI sequences of the in-place redraw (as cargo and tqdm draw): the cursor sits at the start of
    // the line below the frame, so whatever is printed after the last frame goes below it.
    static let escape = "\u{1B}["

    /// Replaces the `previous` lines drawn last time (the cursor just below them) by `lines`.
    static func redraw(previous: Int, lines: [String]) -> String {
        var out = previous > 0 ? "\(escape)\(previous)A" : ""             // up to the frame's first line
        for line in lines { out += "\r\(escape)2K" + line + "\n" }          // clear each line, write it
        return out + "\(escape)J"                                           // clear what a longer frame left below
    }

    /// Erases the `previous` lines drawn last time, leaving the cursor where the first one was.
    static func erase(previous: Int) -> String {
        previous > 0 ? "\(escape)\(previous)A\r\(escape)J" : ""
    }
}
