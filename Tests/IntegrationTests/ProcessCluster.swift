import Foundation
import GRDB
import Testing

/// Real `sirius-coord` and `sirius-worker` processes on loopback, for the process-level
/// reliability tests (kill -9, SIGTERM, coordinator crash + resume, authentication).
/// Executables are found next to the test bundle (the build products directory).
enum Binaries {
    static var dir: URL {
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var url = URL(fileURLWithPath: me).deletingLastPathComponent()
        // Inside an .xctest bundle on macOS the executable sits deeper; walk up to the products dir.
        while !FileManager.default.fileExists(atPath: url.appendingPathComponent("sirius-coord").path), url.pathComponents.count > 1 {
            url.deleteLastPathComponent()
        }
        return url
    }
    static var coord: URL { dir.appendingPathComponent("sirius-coord") }
    static var worker: URL { dir.appendingPathComponent("sirius-worker") }
    static var available: Bool {
        FileManager.default.isExecutableFile(atPath: coord.path) && FileManager.default.isExecutableFile(atPath: worker.path)
    }
}

/// A spawned process whose output is collected into a file (no pipe to fill up).
final class Spawned: @unchecked Sendable {
    let process = Process()
    let logURL: URL

    init(_ exe: URL, _ args: [String], env: [String: String] = [:], log: URL) throws {
        logURL = log
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let h = try FileHandle(forWritingTo: log)
        process.executableURL = exe
        process.arguments = args
        process.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        process.standardOutput = h
        process.standardError = h
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var output: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    func signal(_ s: Int32) { if process.isRunning { kill(pid, s) } }

    /// Waits (polling, off the cooperative pool's hot path) up to `seconds`; kills on timeout.
    @discardableResult
    func wait(seconds: Double) async -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return process.terminationStatus
    }

    func stop() {
        if process.isRunning { kill(pid, SIGKILL); process.waitUntilExit() }
    }
}

/// One temporary directory with a run database, a coordinator and workers.
final class ProcessCluster: @unchecked Sendable {
    let dir: URL
    let db: String
    let runId: String
    var coordinator: Spawned?
    var workers: [Spawned] = []
    var endpoint = ""
    private var logs = 0

    init(runId: String = "itest") throws {
        // Missing binaries fail the test with the fix, never skip it.
        guard Binaries.available else {
            throw ClusterError("sirius-coord and sirius-worker are not built next to the tests (\(Binaries.dir.path)); run `swift build --build-tests` first")
        }
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("sirius-itest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        db = dir.appendingPathComponent("runs.sqlite").path
        self.runId = runId
    }

    func cleanup() {
        for w in workers { w.stop() }
        coordinator?.stop()
        try? FileManager.default.removeItem(at: dir)
    }

    private func nextLog(_ name: String) -> URL {
        logs += 1
        return dir.appendingPathComponent("\(logs)-\(name).log")
    }

    static let runArgs = ["--engine", "fake", "--task", "synthetic:24", "--shard-size", "4", "--heartbeat-ms", "100",
                          "--lease-ttl-ms", "1500", "--quiet", "--format", "csv"]

    /// Starts a coordinator (`start` or `resume`) and waits for its endpoint line.
    func startCoordinator(_ args: [String], env: [String: String] = [:]) async throws {
        let c = try Spawned(Binaries.coord, args, env: env, log: nextLog("coord"))
        coordinator = c
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let line = c.output.split(separator: "\n").first(where: { $0.contains("coordinator at ") }) {
                endpoint = String(line.split(separator: " ").last!)
                return
            }
            if !c.process.isRunning { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ClusterError("coordinator did not come up:\n\(c.output)")
    }

    func start(workers: Int = 0, extra: [String] = [], env: [String: String] = [:]) async throws {
        try await startCoordinator(["start", "--db", db, "--run-id", runId, "--workers", "\(workers)"] + ProcessCluster.runArgs + extra, env: env)
    }

    @discardableResult
    func addWorker(id: String, extra: [String] = [], env: [String: String] = [:]) throws -> Spawned {
        // Spools under this cluster's directory (`--id` turns the disk spool on): a worker restarted
        // with the same id re-sends, and nothing leaks into ~/.cache or another test.
        let w = try Spawned(Binaries.worker, ["join", "--coordinator", endpoint, "--engine", "fake", "--id", id,
                                              "--spool-dir", spoolDirectory(id).path] + extra,
                            env: env, log: nextLog("worker-\(id)"))
        workers.append(w)
        return w
    }

    /// Where worker `id` keeps its unacknowledged results.
    func spoolDirectory(_ id: String) -> URL { dir.appendingPathComponent("spool-\(id)") }

    func count(_ sql: String) throws -> Int {
        let q = try DatabaseQueue(path: db)
        return try q.read { try Int.fetchOne($0, sql: sql) ?? -1 }
    }

    func waitFor(_ sql: String, atLeast n: Int, seconds: Double = 30) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (try? count(sql)) ?? 0 >= n { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ClusterError("timed out waiting for \(sql) ≥ \(n)")
    }

    /// Result hashes and deterministic metrics: what must equal the baseline. `hashes: false` for the
    /// nondeterministic fake engine (its texts differ per decode; answers and counters do not).
    func fingerprint(hashes: Bool = true) throws -> [String] {
        let q = try DatabaseQueue(path: db)
        return try q.read { d in
            try String.fetchAll(d, sql: """
                SELECT task || '/' || example_id || '/' || method || '=' || \(hashes ? "result_hash" : "''") || ':' || COALESCE(correct, -1)
                FROM results ORDER BY task, example_id, method
                """) +
            String.fetchAll(d, sql: "SELECT task || '/' || method || '/' || metric || '=' || printf('%.12g', value) FROM run_metrics \(hashes ? "" : "WHERE metric <> 'identical_to_full'") ORDER BY 1")
        }
    }

    /// `task/example/method` of every item of a lease that ended by a fault (expired).
    func expiredLeaseItems() throws -> Set<String> {
        struct Key: Decodable { var task: String; var exampleId: String; var method: String }
        let q = try DatabaseQueue(path: db)
        return try q.read { d in
            try Set(String.fetchAll(d, sql: "SELECT items_json FROM leases WHERE state = 'expired'").flatMap {
                try JSONDecoder().decode([Key].self, from: Data($0.utf8)).map { "\($0.task)/\($0.exampleId)/\($0.method)" }
            })
        }
    }

    func invariantsHold() throws -> Bool {
        let q = try DatabaseQueue(path: db)
        return try q.read { d in
            let ok = try String.fetchOne(d, sql: "PRAGMA integrity_check") == "ok"
            let total = (try Int.fetchOne(d, sql: "SELECT SUM(n_examples) FROM tasks") ?? 0) * 3
            let rows = try Int.fetchOne(d, sql: "SELECT COUNT(*) FROM results") ?? 0
            let failed = try Int.fetchOne(d, sql: """
                SELECT COUNT(DISTINCT task || '/' || example_id || '/' || method) FROM example_failures f WHERE final = 1 AND NOT EXISTS
                (SELECT 1 FROM results r WHERE r.task = f.task AND r.example_id = f.example_id AND r.method = f.method)
                """) ?? 0
            return ok && rows + failed == total
        }
    }
}

struct ClusterError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// The undisturbed run (one worker), computed once per test process.
actor BaselineCache {
    static let shared = BaselineCache()
    private var value: [String]?
    func get() async throws -> [String] {
        if let value { return value }
        let c = try ProcessCluster(runId: "baseline")
        defer { c.cleanup() }
        try await c.start(workers: 1)
        let status = await c.coordinator!.wait(seconds: 60)
        guard status == 0 else { throw ClusterError("baseline failed (\(String(describing: status))):\n\(c.coordinator!.output)") }
        let fp = try c.fingerprint()
        value = fp
        return fp
    }
}

/// Fingerprint rows with the result hash left out (`key=hash:correct` → `key=:correct`) and without
/// `identical_to_full` (it compares texts, which the nondeterministic engine varies), as
/// `fingerprint(hashes: false)` writes them; other metric rows are unchanged.
func withoutHashes(_ rows: [String]) -> [String] {
    rows.filter { !$0.contains("/identical_to_full=") }.map { r in
        guard let eq = r.lastIndex(of: "="), let colon = r[eq...].firstIndex(of: ":") else { return r }
        return String(r[...eq]) + String(r[colon...])
    }
}
