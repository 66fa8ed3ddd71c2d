import Foundation
import GRDB
import SiriusMethod

/// Live progress of a served run on standard error (every 2 s). On a terminal the frame —
/// a status line and one line per task, fitted to the terminal's width — is redrawn in place, and
/// the coordinator's log lines are written above it; otherwise each frame is one plain log line.
/// The layout is `ProgressDisplay`'s.
final class ProgressPrinter: @unchecked Sendable { // every mutable field is guarded by `lock`
    enum Mode: Equatable { case terminal, log }

    let store: Store
    let runId: String
    let mode: Mode
    private let fd: Int32
    private let output: FileHandle
    /// The run's method names in its order, and its tasks' names are the snapshot's.
    private let methodOrder: [String]
    private let lock = NSLock()
    private var rates = ProgressRates()
    /// Lines of the frame on screen now, the cursor on the line below them (terminal mode).
    private var drawn = 0
    private var lastLines: [String] = []

    /// `fd` is where the progress goes (standard error); it is drawn in place when `fd` is a terminal.
    init(store: Store, runId: String, fd: Int32 = STDERR_FILENO) {
        self.store = store
        self.runId = runId
        self.fd = fd
        self.output = FileHandle(fileDescriptor: fd, closeOnDealloc: false)
        self.mode = isatty(fd) == 1 ? .terminal : .log
        self.methodOrder = (try? store.run(runId))?.config.methods.map(\.name) ?? []
    }

    func print(_ snapshot: ProgressSnapshot) {
        let scores = (try? methodScores()) ?? [:]
        lock.lock(); defer { lock.unlock() }
        let frame = ProgressFrame(
            elapsedS: snapshot.elapsedS, workers: snapshot.workers, paused: snapshot.paused,
            tasks: snapshot.perTask.map { t in
                let done = t.done + t.failed
                return ProgressFrame.Task(
                    name: t.task, done: done, failed: t.failed, total: t.total,
                    rate: rates.rate(task: t.task, done: done, elapsedS: snapshot.elapsedS),
                    methods: order(scores[t.task] ?? [:]))
            })
        switch mode {
        case .log:
            write(ProgressDisplay.logLine(frame) + "\n")
        case .terminal:
            // One column spare: a line as wide as the terminal makes some terminals wrap early.
            let lines = ProgressDisplay.terminalLines(frame, width: Self.columns(fd) - 1)
            write(ProgressDisplay.redraw(previous: drawn, lines: lines))
            drawn = lines.count
            lastLines = lines
        }
    }

    /// Writes `text` (whole lines): on a terminal above the progress frame, which is drawn again below it.
    func log(_ text: String) {
        lock.lock(); defer { lock.unlock() }
        guard mode == .terminal, drawn > 0 else { write(text); return }
        write(ProgressDisplay.erase(previous: drawn) + text + ProgressDisplay.redraw(previous: 0, lines: lastLines))
    }

    /// The run is over: the last frame stays on screen, and what is printed next (the report) goes
    /// below it — every frame ends with a newline, so the cursor is already on the line below.
    func finish() {
        lock.lock(); defer { lock.unlock() }
        drawn = 0
        lastLines = []
    }

    private func write(_ text: String) { output.write(Data(text.utf8)) }

    private func order(_ byMethod: [String: ProgressFrame.Method]) -> [ProgressFrame.Method] {
        let known = methodOrder.compactMap { byMethod[$0] }
        let other = byMethod.keys.filter { !methodOrder.contains($0) }.sorted().compactMap { byMethod[$0] }
        return (known + other).filter { $0.results > 0 }
    }

    /// Per task and method: results, correct, answered, AAL — one grouped query over the run's results.
    private func methodScores() throws -> [String: [String: ProgressFrame.Method]] {
        try store.pool.read { db in
            var out: [String: [String: ProgressFrame.Method]] = [:]
            for r in try Row.fetchAll(db, sql: """
                SELECT task, method, COUNT(*), COALESCE(SUM(correct), 0), COALESCE(SUM(extracted_answer IS NOT NULL), 0),
                       COALESCE(SUM(advanced_tokens), 0), COALESCE(SUM(periods), 0)
                FROM results WHERE run_id = ? GROUP BY task, method
                """, arguments: [runId]) {
                let task: String = r[0], method: String = r[1]
                out[task, default: [:]][method] = ProgressFrame.Method(
                    name: method, results: r[2], correct: r[3], answered: r[4],
                    aal: DecodeCounters.aal(advancedTokens: r[5], periods: r[6]))
            }
            return out
        }
    }

    /// The terminal's width: TIOCGWINSZ on `fd`, else `$COLUMNS`, else 80.
    static func columns(_ fd: Int32) -> Int {
        var size = winsize()
        if ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        if let columns = ProcessInfo.processInfo.environment["COLUMNS"].flatMap({ Int($0) }), columns > 0 { return columns }
        return 80
    }
}
