import Foundation
import SiriusProtocol

/// Spawns and supervises local `sirius-worker join` processes with Foundation `Process`
/// (measured-here.md §4: never mixed with swift-subprocess). A worker that dies abnormally is
/// respawned (a poison example kills its worker each time; the coordinator's attempt limit ends
/// that), up to a budget.
final class WorkerLauncher: @unchecked Sendable {
    let executable: URL
    let arguments: [String]
    private let lock = NSLock()
    private var processes: [Process] = []
    private var stopping = false
    private var respawnBudget: Int
    private var launched = 0
    private var respawnsPending = 0
    private var lastExit: (status: Int32, signalled: Bool)?
    let log: @Sendable (String) -> Void
    /// Where the workers' output goes, a whole line (with its newline) at a time; nil: the workers
    /// inherit this process's standard output and error. Set when the live progress is drawn in
    /// place, so that it can write the workers' lines above itself instead of drawing over them.
    let output: (@Sendable (String) -> Void)?

    init(executable: URL, arguments: [String], respawnBudget: Int, log: @escaping @Sendable (String) -> Void,
         output: (@Sendable (String) -> Void)? = nil) {
        self.executable = executable
        self.arguments = arguments
        self.respawnBudget = respawnBudget
        self.log = log
        self.output = output
    }

    /// `sirius-worker` next to this executable, or `$SIRIUS_WORKER`.
    static func defaultWorkerPath() -> URL {
        if let p = ProcessInfo.processInfo.environment["SIRIUS_WORKER"] { return URL(fileURLWithPath: p) }
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("sirius-worker")
    }

    func launch(count: Int) throws {
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw CoordinatorError("cannot spawn workers: \(executable.path) is not an executable (build sirius-worker, or set SIRIUS_WORKER)")
        }
        for _ in 0..<count { try spawn() }
    }

    private func spawn(respawn: Bool = false) throws {
        let p = Process()
        p.executableURL = executable
        p.arguments = arguments
        p.terminationHandler = { [weak self] proc in self?.exited(proc) }
        if let output {
            let pipe = Pipe()
            p.standardOutput = pipe
            p.standardError = pipe
            let pending = Locked(Data())
            pipe.fileHandleForReading.readabilityHandler = { handle in
                let data = handle.availableData
                if data.isEmpty { handle.readabilityHandler = nil } // end of file: the worker has exited
                // Whole lines go out as they come; at the end of the file, what is left (with a newline).
                let lines = pending.withLock { buffered -> Data? in
                    buffered.append(data)
                    let end = data.isEmpty ? buffered.endIndex : (buffered.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? buffered.startIndex)
                    guard end > buffered.startIndex else { return nil }
                    var lines = Data(buffered[buffered.startIndex..<end])
                    buffered = Data(buffered[end...])
                    if lines.last != UInt8(ascii: "\n") { lines.append(UInt8(ascii: "\n")) }
                    return lines
                }
                if let lines { output(String(decoding: lines, as: UTF8.self)) }
            }
        }
        // Listed before it runs: a worker that exits at once must not stay listed as running.
        lock.lock(); processes.append(p); launched += 1; if respawn { respawnsPending -= 1 }; lock.unlock()
        do { try p.run() } catch {
            lock.lock(); processes.removeAll { $0 === p }; launched -= 1; lock.unlock()
            throw error
        }
    }

    private func exited(_ p: Process) {
        lock.lock()
        processes.removeAll { $0 === p }
        let signalled = p.terminationReason == .uncaughtSignal
        lastExit = (p.terminationStatus, signalled)
        // 3 (rejected) and 4 (fatal configuration error) would fail the same way again.
        let respawn = !stopping && (signalled || (p.terminationStatus != 0 && p.terminationStatus != 3 && p.terminationStatus != 4)) && respawnBudget > 0
        if respawn { respawnBudget -= 1; respawnsPending += 1 }
        lock.unlock()
        log("worker pid \(p.processIdentifier) exited (\(signalled ? "signal" : "status") \(p.terminationStatus))\(respawn ? "; respawning" : "")")
        if respawn {
            do { try spawn(respawn: true) } catch { log("cannot respawn a worker: \(error)") }
        }
    }

    /// Why no local worker is left, once every spawned worker has exited for good (none running,
    /// none being respawned); nil while one is running or before the first launch, and after `stopAll`.
    var goneReason: String? {
        lock.lock(); defer { lock.unlock() }
        guard launched > 0, processes.isEmpty, respawnsPending == 0, !stopping, let last = lastExit else { return nil }
        let how: String
        switch (last.signalled, last.status) {
        case (true, let s): how = "killed by signal \(s)"
        case (false, 4): how = "status 4: fatal configuration error"
        case (false, 3): how = "status 3: refused by this coordinator"
        case (false, let s): how = "status \(s)"
        }
        let budget = respawnBudget == 0 ? "; respawn budget spent" : ""
        return "every local worker has exited (\(launched) started, the last with \(how)\(budget))"
    }

    var pids: [Int32] { lock.lock(); defer { lock.unlock() }; return processes.map(\.processIdentifier) }

    /// SIGTERM (drain), then SIGKILL after `graceMs`.
    func stopAll(graceMs: Int = 3000) {
        lock.lock(); stopping = true; let ps = processes.filter { $0.processIdentifier != 0 }; lock.unlock()
        for p in ps where p.isRunning { p.terminate() }
        let deadline = monotonicMs() + Int64(graceMs)
        while monotonicMs() < deadline, ps.contains(where: \.isRunning) { Thread.sleep(forTimeInterval: 0.02) }
        for p in ps where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        for p in ps { p.waitUntilExit() }
    }
}
