import Foundation
import GRDB
import Testing
@testable import SiriusProtocol
@testable import sirius_coord

@Suite(.serialized, .timeLimit(.minutes(1))) struct IdentityTests {
    /// T20: a second worker (another process) claiming a live worker's id is refused; no
    /// results are misattributed.
    @Test func t20_duplicateWorkerIdRefused() async throws {
        let run = try TestRun(config: TestRun.defaultConfig(examples: 40, shardSize: 4))
        let network = InMemoryNetwork()
        let stop = Locked(false)
        var plan = ClusterPlan(workers: 0, timeoutMs: 20_000)
        plan.engine.latencyMs = 10
        let cluster = Task { await runCluster(run, plan, network: network, stop: stop) }
        try await Task.sleep(for: .milliseconds(50))
        let agent = WorkerAgent(connector: network.connector(), engine: {
            var c = FakeEngineConfig(); c.latencyMs = 10; return FakeEngine(config: c)
        }, options: workerOptions(id: "dup"))
        agent.start()
        let reply: Message? = await onThread {
            // Wait until the real "dup" is working, then impersonate it from another "process".
            Thread.sleep(forTimeInterval: 0.3)
            guard let c = try? RawClient(network, id: "dup-impostor") else { return nil }
            c.hello(id: "dup")
            return c.next(timeoutMs: 5000, where: { if case .reject = $0 { true } else if case .welcome = $0 { true } else { false } })
        }
        stop.withLock { $0 = true }
        _ = await cluster.value
        agent.kill()
        _ = await onThread { agent.waitForExit(timeoutMs: 5000) }
        guard case .reject(let r)? = reply else { Issue.record("expected REJECT, got \(String(describing: reply))"); return }
        #expect(r.reason == .duplicateWorkerId)
        #expect(try run.count("SELECT COUNT(*) FROM results WHERE run_id = ? AND worker_id <> 'dup'") == 0)
    }

    /// T22: a run whose stored configuration no longer hashes to its recorded hash is refused on
    /// resume, and nothing is written.
    @Test func t22_configDriftRefusedOnResume() async throws {
        let run = try TestRun(config: TestRun.defaultConfig(examples: 8))
        try await run.store.pool.write { db in
            try db.execute(sql: "UPDATE runs SET config_json = replace(config_json, '\"runSeed\" : 1234', '\"runSeed\" : 99') WHERE run_id = ?",
                           arguments: [run.runId])
        }
        let cmd = try ResumeCommand.parse([run.runId, "--db", run.store.path, "--workers", "0"])
        #expect { try cmd.run() } throws: { "\($0)".contains("config hash mismatch") }
        #expect(try run.count("SELECT epoch FROM runs WHERE run_id = ?") == 0)
        #expect(try run.count("SELECT COUNT(*) FROM leases WHERE run_id = ?") == 0)
    }
}
