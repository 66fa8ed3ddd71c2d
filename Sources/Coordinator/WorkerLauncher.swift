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
    let log: @Sendable (String) -> Void

    init(executable: URL, arguments: [String], respawnBudget: Int, log: @escaping @Sendable (String) -> Void) {
        self.executable = executable
        self.arguments = arguments
        self.respawnBudget = respawnBudget
        self.log = log
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

    private func spawn() throws {
        let p = Process()
        p.executableURL = executable
        p.arguments = arguments
        p.terminationHandler = { [weak self] proc in self?.exited(proc) }
        try p.run()
        lock.lock(); processes.append(p); lock.unlock()
    }

    private func exited(_ p: Process) {
        lock.lock()
        processes.removeAll { $0 === p }
        let respawn = !stopping && (p.terminationReason == .uncaughtSignal || (p.terminationStatus != 0 && p.terminationStatus != 3 && p.terminationStatus != 4)) && respawnBudget > 0
        if respawn { respawnBudget -= 1 }
        lock.unlock()
        log("worker pid \(p.processIdentifier) exited (\(p.terminationReason == .uncaughtSignal ? "signal" : "status") \(p.terminationStatus))\(respawn ? "; respawning" : "")")
        if respawn { try? spawn() }
    }

    var pids: [Int32] { lock.lock(); defer { lock.unlock() }; return processes.map(\.processIdentifier) }

    /// SIGTERM (drain), then SIGKILL after `graceMs`.
    func stopAll(graceMs: Int = 3000) {
        lock.lock(); stopping = true; let ps = processes; lock.unlock()
        for p in ps where p.isRunning { p.terminate() }
        let deadline = monotonicMs() + Int64(graceMs)
        while monotonicMs() < deadline, ps.contains(where: \.isRunning) { Thread.sleep(forTimeInterval: 0.02) }
        for p in ps where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        for p in ps { p.waitUntilExit() }
    }
}
