import Foundation
import GRDB
import Testing
@testable import sirius_coord

@Suite struct ProgressDisplayTests {
    static let methods = [
        ProgressFrame.Method(name: "full", results: 20, correct: 9, answered: 18, aal: nil),
        ProgressFrame.Method(name: "griffin-0.5", results: 19, correct: 6, answered: 15, aal: nil),
        ProgressFrame.Method(name: "sirius-0.5-k10", results: 17, correct: 7, answered: 17, aal: 3.214),
        ProgressFrame.Method(name: "cats-0.5-thresholds", results: 12345, correct: 6789, answered: 12001, aal: 10.5),
    ]
    static let humaneval = ProgressFrame.Task(name: "humaneval", done: 37, failed: 2, total: 164, rate: 1.5, methods: methods)
    static let gsm8k = ProgressFrame.Task(name: "gsm8k-cot", done: 12_345, failed: 0, total: 52_760, rate: nil, methods: methods)

    @Test func terminalLinesNeverExceedTheWidth() {
        for tasks in [[Self.humaneval], [Self.humaneval, Self.gsm8k]] {
            let frame = ProgressFrame(elapsedS: 3725, workers: 12, paused: true, tasks: tasks)
            for width in 40...200 {
                let lines = ProgressDisplay.terminalLines(frame, width: width)
                #expect(lines.count == 1 + tasks.count, "a status line and one line per task")
                for line in lines {
                    #expect(line.count <= width, "width \(width): \(line.count) columns: \(line)")
                    #expect(!line.contains("\n") && !line.contains(ProgressDisplay.escape))
                }
                for (line, t) in zip(lines.dropFirst(), tasks) {
                    #expect(line.contains(" \(t.done)/\(t.total)"), "width \(width): the count survives: \(line)")
                }
            }
        }
    }

    @Test func narrowerTerminalsDropDetailBeforeCutting() {
        let frame = ProgressFrame(elapsedS: 1, workers: 1, paused: false, tasks: [Self.humaneval])
        let wide = ProgressDisplay.terminalLines(frame, width: 200)[1]
        #expect(wide.contains("ans 18/20") && wide.contains("AAL 3.21") && wide.contains("ETA"))
        #expect(!wide.contains("…"))
        let medium = ProgressDisplay.terminalLines(frame, width: 100)[1]
        #expect(medium == "humaneval 37/164 | full 45.0% | griffin-0.5 31.6% | sirius-0.5-k10 41.2% | cats-0.5-thresholds 55.0%")
        let narrow = ProgressDisplay.terminalLines(frame, width: 80)[1]
        #expect(narrow == "humaneval 37/164 | full 45% | griff… 32% | siriu… 41% | cats-… 55%")
        let tiny = ProgressDisplay.terminalLines(frame, width: 40)[1]
        #expect(tiny == "humanev… 37/164 | full 45% | griff… 32%…")
    }

    @Test func contentOfAHandMadeFrame() {
        let frame = ProgressFrame(elapsedS: 65, workers: 2, paused: false, tasks: [
            ProgressFrame.Task(name: "humaneval", done: 37, failed: 2, total: 164, rate: 1.5, methods: Array(Self.methods.prefix(3)))
        ])
        #expect(ProgressDisplay.terminalLines(frame, width: 200) == [
            "[1m05s] 2 workers",
            "humaneval 37/164 (2 failed) 1.5/s ETA 1m25s | full 45.0% ans 18/20 | griffin-0.5 31.6% ans 15/19 | sirius-0.5-k10 41.2% ans 17/17 AAL 3.21",
        ])
        #expect(ProgressDisplay.logLine(frame) ==
            "[  65.0s] 2 workers | humaneval 37/164 (2 failed) 1.5/s ETA 85s · full 45.0% answered 18/20 · griffin-0.5 31.6% answered 15/19 · sirius-0.5-k10 41.2% answered 17/17 AAL 3.21")
        var paused = frame
        paused.paused = true
        paused.tasks[0].rate = nil
        #expect(ProgressDisplay.terminalLines(paused, width: 200)[0] == "[1m05s] 2 workers PAUSED (store full)")
        #expect(ProgressDisplay.terminalLines(paused, width: 200)[1].hasPrefix("humaneval 37/164 (2 failed) -/s ETA ? | "))
        var finished = frame
        finished.tasks[0].done = 164
        #expect(ProgressDisplay.terminalLines(finished, width: 200)[1].hasPrefix("humaneval 164/164 (2 failed) done | full 45.0% ans 18/20 | "))
        #expect(ProgressDisplay.logLine(paused).hasPrefix("[  65.0s] 2 workers PAUSED (store full) | humaneval 37/164 (2 failed) 0.0/s ETA ? · "))
    }

    @Test func redrawMovesUpOverThePreviousFrame() {
        let e = ProgressDisplay.escape
        #expect(ProgressDisplay.redraw(previous: 0, lines: ["a", "b"]) == "\r\(e)2Ka\n\r\(e)2Kb\n\(e)J")
        #expect(ProgressDisplay.redraw(previous: 3, lines: ["a"]) == "\(e)3A\r\(e)2Ka\n\(e)J")
        #expect(ProgressDisplay.erase(previous: 2) == "\(e)2A\r\(e)J")
        #expect(ProgressDisplay.erase(previous: 0) == "")
    }

    @Test func ratesStartWhenATaskStartsMoving() {
        var rates = ProgressRates()
        #expect(rates.rate(task: "a", done: 0, elapsedS: 2) == nil)
        #expect(rates.rate(task: "a", done: 0, elapsedS: 4) == nil)
        #expect(rates.rate(task: "a", done: 10, elapsedS: 6) == 5)
        #expect(rates.rate(task: "a", done: 20, elapsedS: 8) == 5)
        #expect(rates.rate(task: "a", done: 20, elapsedS: 12) == 2.5, "a stall lowers the rate")
        #expect(rates.rate(task: "b", done: 7, elapsedS: 12) == nil, "a resumed task starts from what it had")
        #expect(rates.rate(task: "b", done: 9, elapsedS: 14) == 1)
    }

    /// The printer on a pipe (not a terminal) writes one plain line per frame, with the counts of the
    /// run's stored results; log text passes through untouched.
    @Test func aPipeGetsPlainLinesWithTheStoredCounts() async throws {
        let run = try TestRun(config: TestRun.defaultConfig(examples: 8, shardSize: 4))
        let out = await runCluster(run, ClusterPlan(workers: 1))
        #expect(out.outcome == .completed)
        // Three results of the first method lose their answer: answered must follow the column.
        let method = run.config.methods[0].name
        try await run.store.pool.write { db in
            try db.execute(sql: """
                UPDATE results SET extracted_answer = NULL WHERE rowid IN (
                  SELECT rowid FROM results WHERE run_id = ? AND method = ? ORDER BY example_id LIMIT 3)
                """, arguments: [run.runId, method])
        }
        let report = try Metrics.compute(store: run.store, runId: run.runId)
        let task = report.tasks[0]

        let pipe = Pipe()
        let printer = ProgressPrinter(store: run.store, runId: run.runId, fd: pipe.fileHandleForWriting.fileDescriptor)
        #expect(printer.mode == ProgressPrinter.Mode.log)
        let total = task.n * run.config.methods.count
        printer.print(ProgressSnapshot(perTask: [(task: task.task, done: total, failed: 0, total: total)], elapsedS: 4, workers: 1, paused: false))
        printer.log("sirius-coord: a log line\n")
        try pipe.fileHandleForWriting.close()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)

        #expect(!text.contains("\u{1B}"), "no escape codes off a terminal: \(text.debugDescription)")
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 3 && lines[2].isEmpty, "two whole lines: \(text.debugDescription)")
        #expect(lines[1] == "sirius-coord: a log line")
        let line = String(lines[0])
        #expect(line.hasPrefix("[   4.0s] 1 workers | \(task.task) \(total)/\(total) "), "\(line)")
        for m in task.methods {
            let answered = try run.count("SELECT COUNT(*) FROM results WHERE run_id = ? AND method = '\(m.method)' AND extracted_answer IS NOT NULL")
            #expect(answered == (m.method == method ? m.results - 3 : m.results))
            #expect(line.contains("· \(m.method) \(ProgressDisplay.percent(m.accuracyCompleted)) answered \(answered)/\(m.results)"), "\(m.method): \(line)")
        }
    }

    /// The printer on a pseudo-terminal draws in place, fitted to the terminal's width (TIOCGWINSZ).
    @Test func aTerminalGetsAFrameRedrawnInPlace() throws {
        // posix_openpt and friends are not in Swift's Glibc module: /dev/ptmx and its ioctls directly.
        // TIOCSPTLCK = _IOW('T', 0x31, int), TIOCGPTN = _IOR('T', 0x30, unsigned int) (function-like
        // macros, which Swift does not import), in the generic encoding of x86-64 and arm64.
        let master = open("/dev/ptmx", O_RDWR | O_NOCTTY)
        var unlock: Int32 = 0
        var number: UInt32 = 0
        guard master >= 0, ioctl(master, 0x4004_5431, &unlock) == 0, ioctl(master, 0x8004_5430, &number) == 0 else {
            Issue.record("cannot open a pseudo-terminal (errno \(errno)); this test needs /dev/ptmx and /dev/pts")
            return
        }
        defer { close(master) }
        let slave = open("/dev/pts/\(number)", O_RDWR | O_NOCTTY)
        try #require(slave >= 0, "cannot open /dev/pts/\(number) (errno \(errno))")
        defer { close(slave) }
        var size = winsize(ws_row: 24, ws_col: 50, ws_xpixel: 0, ws_ypixel: 0)
        #expect(ioctl(slave, UInt(TIOCSWINSZ), &size) == 0)
        #expect(ProgressPrinter.columns(slave) == 50)

        let run = try TestRun(config: TestRun.defaultConfig(examples: 4, shardSize: 4))
        let printer = ProgressPrinter(store: run.store, runId: run.runId, fd: slave)
        #expect(printer.mode == ProgressPrinter.Mode.terminal)
        let snapshot = ProgressSnapshot(perTask: [(task: "synthetic:4", done: 1, failed: 0, total: 8)], elapsedS: 2, workers: 1, paused: false)
        printer.print(snapshot)
        printer.print(snapshot)
        printer.log("sirius-coord: hello\n")

        let flags = fcntl(master, F_GETFL)
        _ = fcntl(master, F_SETFL, flags | O_NONBLOCK)
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(master, &buffer, buffer.count)
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        let e = ProgressDisplay.escape
        // The terminal turns "\n" into "\r\n". First frame: two lines; the second moves up over them;
        // the log line erases the frame, is written, and the frame is drawn again below it.
        let frame = "\r\(e)2K[2s] 1 worker\r\n\r\(e)2Ksynthetic:4 1/8 -/s ETA ?\r\n\(e)J"
        #expect(text == frame + "\(e)2A" + frame + "\(e)2A\r\(e)Jsirius-coord: hello\r\n" + frame, "\(text.debugDescription)")
    }
}
