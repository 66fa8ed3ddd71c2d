import Foundation
import GRDB
import Testing
@testable import SiriusProtocol
@testable import sirius_coord

/// Runs blocking work on a dedicated thread (never on the cooperative pool) and awaits it.
func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { cont in
        let t = Thread { cont.resume(returning: body()) }
        t.stackSize = 4 << 20
        t.start()
    }
}

struct HarnessTimeout: Error {}

/// A temporary database with one run created from `config`.
final class TestRun: @unchecked Sendable {
    let dir: URL
    let store: Store
    let runId: String
    let config: RunConfig

    init(config: RunConfig = TestRun.defaultConfig(), runId: String = "run-test") throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("sirius-coord-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        store = try Store(path: dir.appendingPathComponent("runs.sqlite").path)
        self.runId = runId
        self.config = config
        let provider = SyntheticProvider()
        try store.createRun(id: runId, config: config, tasks: config.tasks.map { try provider.load(task: $0, limit: config.limit, runSeed: config.runSeed) })
    }

    deinit { try? FileManager.default.removeItem(at: dir) }

    static func defaultConfig(examples: Int = 24, shardSize: Int = 4) -> RunConfig {
        var c = RunConfig()
        c.tasks = ["synthetic:\(examples)"]
        c.shardSize = shardSize
        c.heartbeatMs = 50
        c.leaseTtlMs = 1500
        return c
    }

    /// Per-example result hashes in canonical order and the materialised metrics: what must be
    /// identical across worker counts, faults and resumes. `hashes: false` for the nondeterministic
    /// fake engine, whose texts carry a random number after the answer (correctness and counters stay
    /// deterministic) — and then also without `identical_to_full`, which compares those texts.
    func fingerprint(hashes: Bool = true) throws -> (results: [String], metrics: [String]) {
        try store.pool.read { db in
            let r = try String.fetchAll(db, sql: """
                SELECT task || '/' || example_id || '/' || method || '=' || \(hashes ? "result_hash" : "''") || ':' || COALESCE(correct, -1)
                FROM results WHERE run_id = ? ORDER BY task, example_id, method
                """, arguments: [runId])
            let m = try String.fetchAll(db, sql: """
                SELECT task || '/' || method || '/' || metric || '=' || printf('%.12g', value) || '/' || n
                FROM run_metrics WHERE run_id = ? \(hashes ? "" : "AND metric <> 'identical_to_full'") ORDER BY task, method, metric
                """, arguments: [runId])
            return (r, m)
        }
    }

    func count(_ sql: String) throws -> Int {
        try store.pool.read { try Int.fetchOne($0, sql: sql, arguments: [runId]) ?? -1 }
    }

    /// The invariants of §5, checked after every test.
    func checkInvariants() throws {
        let ok = try store.pool.read { try String.fetchOne($0, sql: "PRAGMA integrity_check") }
        #expect(ok == "ok")
        let total = config.methods.count * (try count("SELECT SUM(n_examples) FROM tasks WHERE run_id = ?"))
        let rows = try count("SELECT COUNT(*) FROM results WHERE run_id = ?")
        let failed = try count("""
            SELECT COUNT(DISTINCT task || '/' || example_id || '/' || method) FROM example_failures f WHERE run_id = ? AND final = 1
            AND NOT EXISTS (SELECT 1 FROM results r WHERE r.run_id = f.run_id AND r.task = f.task AND r.example_id = f.example_id AND r.method = f.method)
            """)
        #expect(rows + failed == total, "every example has exactly one result or an explicit failure")
        let correct = try count("SELECT COALESCE(SUM(correct), 0) FROM results WHERE run_id = ?")
        let reported = try count("SELECT CAST(COALESCE(SUM(value), 0) AS INTEGER) FROM run_metrics WHERE run_id = ? AND metric = 'correct'")
        #expect(correct == reported, "nothing double-counted")
    }

    /// The exactly-once checks for a run on the nondeterministic fake engine: no conflicting
    /// duplicate was ever received (a re-decoded result would differ), and no example was decoded
    /// twice except those of leases that ended by a fault (`expired`: the work in flight then).
    func checkDecodedOnce(_ decodes: FakeDecodeLog, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(try count("SELECT COUNT(*) FROM result_events WHERE run_id = ? AND kind = 'duplicate_conflict'") == 0,
                sourceLocation: sourceLocation)
        let inFlight = try store.pool.read { db in
            try Set(String.fetchAll(db, sql: "SELECT items_json FROM leases WHERE run_id = ? AND state = 'expired'", arguments: [runId])
                .flatMap { try JSONDecoder().decode([ResultKey].self, from: Data($0.utf8)) })
        }
        let twice = decodes.repeated
        #expect(twice.isSubset(of: inFlight), "decoded twice outside a faulted lease: \(twice.subtracting(inFlight).map(\.description).sorted())",
                sourceLocation: sourceLocation)
        #expect(decodes.snapshot.count == config.methods.count * (try count("SELECT SUM(n_examples) FROM tasks WHERE run_id = ?")),
                "every example decoded", sourceLocation: sourceLocation)
    }
}

/// Fault switches for one in-process cluster run.
struct ClusterPlan: Sendable {
    var workers = 1
    var engine = FakeEngineConfig()
    var token: String? = nil
    var workerToken: String? = nil
    /// Respawn workers that crash (the local launcher does the same).
    var respawnCrashed = true
    /// Called on the supervisor thread every few ms with the coordinator stats and the agents.
    var whileRunning: (@Sendable (CoordinatorStats, [WorkerAgent], InMemoryNetwork) -> Void)? = nil
    var timeoutMs = 60_000
    var dropAcks = 0
    var credits = 1
    /// Hears of every decode of the plan's workers.
    var decodes: FakeDecodeLog? = nil
    /// Workers keep their spools in `spoolRoot/<id>` (nil: in memory).
    var spoolRoot: URL? = nil
    /// Adjusts the options of the n-th worker spawned (1-based).
    var configure: (@Sendable (Int, inout WorkerOptions) -> Void)? = nil
}

struct ClusterOutcome: Sendable {
    var outcome: RunOutcome?
    var exits: [WorkerExit]
    var stats: CoordinatorStats?
}

func workerOptions(id: String, token: String? = nil, credits: Int = 1, spoolRoot: URL? = nil) -> WorkerOptions {
    var o = WorkerOptions()
    o.workerId = id
    o.spoolDirectory = spoolRoot?.appendingPathComponent(id)
    o.recordAcknowledged = true
    o.token = token
    o.credits = credits
    o.helloTimeoutMs = 300
    o.backoffInitialMs = 20
    o.backoffMaxMs = 200
    o.resendAfterMs = 300
    o.drainTimeoutMs = 2000
    o.giveUpAfterMs = 20_000
    return o
}

/// Runs the coordinator loop on one thread and `plan.workers` worker agents on theirs, over the
/// in-memory transport, until the run ends or the plan's timeout (then stops everything).
func runCluster(_ run: TestRun, _ plan: ClusterPlan, network: InMemoryNetwork = InMemoryNetwork(),
                stop: Locked<Bool> = Locked(false)) async -> ClusterOutcome {
    await onThread {
        var options = CoordinatorOptions()
        options.token = plan.token
        options.stop = stop
        options.dropAcksAfterCommit = Locked(plan.dropAcks)
        let coordOptions = options
        let server = network.bind()
        let outcomeBox = BlockingQueue<RunOutcome>()
        let statsBox = Locked<CoordinatorStats?>(nil)
        let coordThread = Thread {
            do {
                let c = try Coordinator(store: run.store, runId: run.runId, provider: SyntheticProvider(), options: coordOptions)
                statsBox.withLock { $0 = c.stats }
                outcomeBox.push(c.run(transport: server))
            } catch {
                Issue.record("coordinator failed to start: \(error)")
                outcomeBox.push(.stopped)
            }
            server.close()
        }
        coordThread.start()
        var engine = plan.engine
        engine.crashAction = .throwCrash
        let engineConfig = engine
        var agents: [WorkerAgent] = []
        var spawned = 0
        func spawn() -> WorkerAgent {
            spawned += 1
            let decodes = plan.decodes
            var options = workerOptions(id: "w\(spawned)", token: plan.workerToken ?? plan.token, credits: plan.credits,
                                        spoolRoot: plan.spoolRoot)
            plan.configure?(spawned, &options)
            let a = WorkerAgent(connector: network.connector(), engine: { FakeEngine(config: engineConfig, decodes: decodes) },
                                options: options)
            a.start()
            return a
        }
        for _ in 0..<plan.workers { agents.append(spawn()) }
        var exits: [WorkerExit] = []
        let deadline = monotonicMs() + Int64(plan.timeoutMs)
        var outcome: RunOutcome? = nil
        while outcome == nil {
            outcome = outcomeBox.pop(timeoutMs: 5)
            if monotonicMs() > deadline { stop.withLock { $0 = true }; outcome = outcomeBox.pop(timeoutMs: 5000); break }
            if let s = statsBox.current { plan.whileRunning?(s, agents, network) }
            for (i, a) in agents.enumerated() {
                if let e = a.waitForExit(timeoutMs: 0), case .crashed = e, plan.respawnCrashed {
                    exits.append(e)
                    agents[i] = spawn()
                }
            }
        }
        for a in agents {
            if a.waitForExit(timeoutMs: 0) == nil { a.kill() }
            if let e = a.waitForExit(timeoutMs: 5000) { exits.append(e) }
        }
        return ClusterOutcome(outcome: outcome, exits: exits, stats: statsBox.current)
    }
}

/// Baseline: the same run with one worker and no faults.
func baseline(_ config: RunConfig) async throws -> (results: [String], metrics: [String]) {
    let run = try TestRun(config: config)
    let out = await runCluster(run, ClusterPlan(workers: 1))
    #expect(out.outcome == .completed)
    return try run.fingerprint()
}

/// Fingerprint rows (`key=hash:correct`) with the hash left out, as `fingerprint(hashes: false)` writes them.
func withoutHashes(_ rows: [String]) -> [String] {
    rows.map { r in
        guard let eq = r.lastIndex(of: "="), let colon = r[eq...].firstIndex(of: ":") else { return r }
        return String(r[...eq]) + String(r[colon...])
    }
}

/// Metric rows without `identical_to_full`, as `fingerprint(hashes: false)` writes them: on the
/// nondeterministic fake engine no two texts are identical.
func withoutIdentity(_ rows: [String]) -> [String] {
    rows.filter { !$0.contains("/identical_to_full=") }
}

/// A hand-driven worker for replay, malformed-input and version tests.
final class RawClient {
    let transport: any ClientTransport
    var seq: UInt64 = 0
    init(_ network: InMemoryNetwork, id: String) throws {
        transport = try network.connector().connect(identity: id, waker: InMemoryWaker())
    }
    func send(_ m: Message, version: ProtocolVersion = SiriusProtocol.version) {
        seq += 1
        transport.send(Framing.encode(Envelope(version: version, header: Header(seq: seq), message: m)))
    }
    func sendRaw(_ frames: [Data]) { transport.send(frames) }
    /// Next decodable message matching `pred`, skipping heartbeats.
    func next(timeoutMs: Int = 10_000, where pred: (Message) -> Bool = { _ in true }) -> Message? {
        let deadline = monotonicMs() + Int64(timeoutMs)
        while monotonicMs() < deadline {
            if let f = transport.receive(timeoutMs: 50), let env = try? Framing.decode(f), pred(env.message) { return env.message }
        }
        return nil
    }
    func hello(id: String, token: String? = nil, version: ProtocolVersion = SiriusProtocol.version) {
        send(.hello(Hello(workerId: id, hostname: "test", pid: 1, build: "test", engines: ["fake"], device: "cpu",
                          maxCredits: 1, token: token, heldLeases: [], spoolCount: 0)), version: version)
    }
}

/// VmHWM of this process, KiB (0 where /proc is absent).
func peakRSSKiB() -> Int {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return 0 }
    return Int(line.split(separator: " ").dropFirst().first { Int($0) != nil } ?? "") ?? 0
}

/// A coordinator serving a run on a real ZeroMQ socket on loopback, on its own thread (the thread
/// owns socket and loop, as in `serve`).
struct ZMQCoordinator: Sendable {
    let endpoint: String
    let stats: CoordinatorStats
    /// Receives the loop's outcome when it ends.
    let outcome: BlockingQueue<RunOutcome>

    static func start(_ run: TestRun, log: (@Sendable (String) -> Void)? = nil) async throws -> ZMQCoordinator {
        let endpointBox = BlockingQueue<String>()
        let statsBox = BlockingQueue<CoordinatorStats>()
        let outcome = BlockingQueue<RunOutcome>()
        let loop = Thread {
            do {
                let server = try ZMQServer(bind: "tcp://127.0.0.1:*")
                var options = CoordinatorOptions()
                if let log { options.log = log }
                let coordinator = try Coordinator(store: run.store, runId: run.runId, provider: SyntheticProvider(), options: options)
                endpointBox.push(server.endpoint)
                statsBox.push(coordinator.stats)
                outcome.push(coordinator.run(transport: server))
                server.close()
            } catch {
                Issue.record("coordinator failed to start: \(error)")
                endpointBox.push("")
            }
        }
        loop.start()
        let endpoint: String = await onThread { endpointBox.pop(timeoutMs: 10_000) ?? "" }
        try #require(!endpoint.isEmpty)
        let stats = try #require(await onThread { statsBox.pop(timeoutMs: 10_000) })
        return ZMQCoordinator(endpoint: endpoint, stats: stats, outcome: outcome)
    }
}
