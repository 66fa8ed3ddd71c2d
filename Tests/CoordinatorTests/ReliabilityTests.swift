import Foundation
import GRDB
import Testing
@testable import SiriusProtocol
@testable import sirius_coord

/// The reliability list of distributed-design.md §5, in process: the real coordinator loop, real
/// worker agents and the fake engine over the in-memory transport.
@Suite(.serialized, .timeLimit(.minutes(3))) struct ReliabilityTests {

    /// T17: 1, 3 and 8 workers give identical per-example results and metrics.
    @Test func t17_workerCountDoesNotChangeResults() async throws {
        let config = TestRun.defaultConfig(examples: 30, shardSize: 4)
        let base = try await baseline(config)
        #expect(base.results.count == 90)
        for n in [3, 8] {
            let run = try TestRun(config: config)
            let out = await runCluster(run, ClusterPlan(workers: n))
            #expect(out.outcome == .completed)
            let fp = try run.fingerprint()
            #expect(fp.results == base.results, "\(n) workers")
            #expect(fp.metrics == base.metrics, "\(n) workers")
            try run.checkInvariants()
        }
    }

    /// T18: stop the coordinator part-way with 8 workers, resume with 3: identical to baseline.
    @Test func t18_resumeWithDifferentWorkerCount() async throws {
        var config = TestRun.defaultConfig(examples: 30, shardSize: 3)
        config.heartbeatMs = 50
        let base = try await baseline(config)
        let run = try TestRun(config: config)
        let stop = Locked(false)
        var plan = ClusterPlan(workers: 8)
        plan.engine.latencyMs = 3
        let total = 90
        plan.whileRunning = { stats, _, _ in
            if stats.read({ $0.committed }) >= total * 4 / 10 { stop.withLock { $0 = true } }
        }
        let first = await runCluster(run, plan, stop: stop)
        #expect(first.outcome == .stopped)
        let partial = try run.count("SELECT COUNT(*) FROM results WHERE run_id = ?")
        #expect(partial >= total * 4 / 10 && partial < total)
        let second = await runCluster(run, ClusterPlan(workers: 3))
        #expect(second.outcome == .completed)
        #expect(try run.count("SELECT epoch FROM runs WHERE run_id = ?") == 2)
        let fp = try run.fingerprint()
        #expect(fp.results == base.results)
        #expect(fp.metrics == base.metrics)
        try run.checkInvariants()
    }

    /// T1 (in process): a worker dies without a word mid-shard; its lease expires and only the
    /// missing examples are re-decoded elsewhere.
    @Test func t1_workerKilledMidShard() async throws {
        let config = TestRun.defaultConfig(examples: 24, shardSize: 8)
        let base = try await baseline(config)
        let run = try TestRun(config: config)
        var plan = ClusterPlan(workers: 2)
        plan.engine.latencyMs = 5
        let killed = Locked(false)
        plan.whileRunning = { stats, agents, _ in
            if !killed.current, stats.read({ $0.committed }) >= 5 { killed.withLock { $0 = true }; agents[0].kill() }
        }
        plan.respawnCrashed = false
        let out = await runCluster(run, plan)
        #expect(out.outcome == .completed)
        #expect(try run.fingerprint() == base)
        #expect(try run.count("SELECT COUNT(*) FROM leases WHERE run_id = ? AND state = 'expired'") >= 1)
        #expect(try run.count("SELECT MAX(attempt) FROM leases WHERE run_id = ?") >= 2)
        try run.checkInvariants()
    }

    /// T3 (in process): a drained worker finishes its example, sends BYE, and its lease is
    /// requeued at once (no TTL wait, so no failure is counted).
    @Test func t3_gracefulDrain() async throws {
        let config = TestRun.defaultConfig(examples: 24, shardSize: 8)
        let base = try await baseline(config)
        let run = try TestRun(config: config)
        var plan = ClusterPlan(workers: 2)
        plan.engine.latencyMs = 5
        let drained = Locked(false)
        plan.whileRunning = { stats, agents, _ in
            if !drained.current, stats.read({ $0.committed }) >= 5 { drained.withLock { $0 = true }; agents[0].requestDrain() }
        }
        let out = await runCluster(run, plan)
        #expect(out.outcome == .completed)
        #expect(out.exits.contains(.drained))
        #expect(try run.fingerprint() == base)
        #expect(try run.count("SELECT COUNT(*) FROM example_failures WHERE run_id = ?") == 0)
        try run.checkInvariants()
    }

    /// T4 (in process): the coordinator dies mid-run and a new incarnation (epoch+1) takes over
    /// the same address; the running workers reconnect, re-HELLO with held leases, re-send spools.
    @Test func t4_coordinatorRestartWithLiveWorkers() async throws {
        let config = TestRun.defaultConfig(examples: 24, shardSize: 4)
        let base = try await baseline(config)
        let run = try TestRun(config: config)
        let network = InMemoryNetwork()
        // Long-lived workers that outlive the first coordinator.
        let agents = (1...3).map { i in
            WorkerAgent(connector: network.connector(), engine: {
                var c = FakeEngineConfig(); c.latencyMs = 5; return FakeEngine(config: c)
            }, options: workerOptions(id: "live\(i)"))
        }
        let stop = Locked(false)
        let firstDone = Task {
            await runCluster(run, ClusterPlan(workers: 0, whileRunning: { stats, _, _ in
                if stats.read({ $0.committed }) >= 20 { stop.withLock { $0 = true } }
            }), network: network, stop: stop)
        }
        try await Task.sleep(for: .milliseconds(50))
        for a in agents { a.start() }
        let first = await firstDone.value
        #expect(first.outcome == .stopped)
        let before = try run.count("SELECT COUNT(*) FROM results WHERE run_id = ?")
        let second = await runCluster(run, ClusterPlan(workers: 0), network: network)
        #expect(second.outcome == .completed)
        #expect(try run.count("SELECT COUNT(*) FROM results WHERE run_id = ?") >= before)
        #expect(try run.count("SELECT epoch FROM runs WHERE run_id = ?") == 2)
        for a in agents { a.kill() }
        for a in agents { _ = await onThread { a.waitForExit(timeoutMs: 5000) } }
        #expect(try run.fingerprint() == base)
        try run.checkInvariants()
    }

    /// T5: the coordinator commits but the ACK is lost; the worker re-sends, the duplicate is
    /// recognised (`duplicate_same`), counts are unchanged.
    @Test func t5_lostAcksAreHarmless() async throws {
        let config = TestRun.defaultConfig(examples: 16, shardSize: 4)
        let base = try await baseline(config)
        let run = try TestRun(config: config)
        var plan = ClusterPlan(workers: 2)
        plan.engine.latencyMs = 30
        plan.dropAcks = 5
        let out = await runCluster(run, plan)
        #expect(out.outcome == .completed)
        #expect(try run.fingerprint() == base)
        #expect(try run.count("SELECT COUNT(*) FROM result_events WHERE run_id = ? AND kind = 'duplicate_same'") >= 1)
        try run.checkInvariants()
    }

    /// T6: a replayed RESULT is ignored and ACKed again; a conflicting one is kept out and
    /// recorded (T7's bookkeeping).
    @Test func t6_replayedResult() async throws {
        let config = TestRun.defaultConfig(examples: 4, shardSize: 4)
        let run = try TestRun(config: config)
        let network = InMemoryNetwork()
        let stop = Locked(false)
        let cluster = Task { await runCluster(run, ClusterPlan(workers: 0, timeoutMs: 30_000), network: network, stop: stop) }
        try await Task.sleep(for: .milliseconds(50))
        let ok: Bool = await onThread {
            guard let c = try? RawClient(network, id: "raw") else { return false }
            c.hello(id: "raw")
            guard case .welcome = c.next(where: { if case .welcome = $0 { true } else { false } }) else { return false }
            c.send(.ready(Ready(credits: 1)))
            guard case .assign(let a)? = c.next(where: { if case .assign = $0 { true } else { false } }) else { return false }
            let engine = FakeEngine()
            let item = a.items[0]
            guard let outcome = try? engine.run(item) else { return false }
            let msg = ResultMessage(leaseId: a.leaseId, attempt: a.attempt, key: item.key, engine: "fake", device: "cpu", outcome: outcome)
            c.send(.result(msg))
            c.send(.result(msg))
            var acks = 0   // acknowledged keys (one ACK message may carry both)
            while acks < 2, case .ack(let a)? = c.next(timeoutMs: 5000, where: { if case .ack = $0 { true } else { false } }) { acks += a.keys.count }
            var conflicting = outcome
            conflicting.text += " (different)"
            c.send(.result(ResultMessage(leaseId: a.leaseId, attempt: a.attempt, key: item.key, engine: "fake", device: "cpu", outcome: conflicting)))
            guard case .ack? = c.next(where: { if case .ack = $0 { true } else { false } }) else { return false }
            return acks == 2
        }
        stop.withLock { $0 = true }
        _ = await cluster.value
        #expect(ok)
        #expect(try run.count("SELECT COUNT(*) FROM results WHERE run_id = ?") == 1)
        #expect(try run.count("SELECT COUNT(*) FROM result_events WHERE run_id = ? AND kind = 'duplicate_same'") == 1)
        #expect(try run.count("SELECT COUNT(*) FROM result_events WHERE run_id = ? AND kind = 'duplicate_conflict'") == 1)
    }

    /// T9: malformed and oversized messages are counted and dropped; the coordinator stays up and
    /// the run's results equal the baseline.
    @Test func t9_malformedMessages() async throws {
        let config = TestRun.defaultConfig(examples: 12, shardSize: 4)
        let base = try await baseline(config)
        let run = try TestRun(config: config)
        let network = InMemoryNetwork()
        var plan = ClusterPlan(workers: 0)
        let sent = Locked(false)
        plan.whileRunning = { _, _, net in
            guard !sent.current, let c = try? RawClient(net, id: "garbage") else { return }
            sent.withLock { $0 = true }
            let good = Framing.encode(.ready(Ready(credits: 1)), header: Header())
            c.sendRaw([])
            c.sendRaw([Data(), Data(), Data(), Data()])
            c.sendRaw([Data("NOPE".utf8), good[1], good[2], good[3]])
            c.sendRaw([good[0], good[1], Data("FROB".utf8), good[3]])
            c.sendRaw([good[0], good[1], good[2], Data("{nope".utf8)])
            c.sendRaw([good[0], good[1], Data("RESULT".utf8), Data(#"{"header":{"runId":"","epoch":0,"seq":1},"body":{"leaseId":"x"}}"#.utf8)])
            c.sendRaw([good[0], good[1], good[2], Data(count: SiriusProtocol.maxMessageBytes + 1)])
            // A well-formed RESULT for an example that does not exist, from an unknown peer.
            c.sendRaw(Framing.encode(.result(ResultMessage(leaseId: 1, attempt: 1, key: ResultKey(task: "nope", exampleId: "1", method: "full"),
                                                           engine: "fake", device: "cpu", outcome: ExampleOutcome(text: "", promptTokens: 0, generatedTokens: 0, stopReason: "eos"))),
                                     header: Header()))
        }
        let stop = Locked(false)
        let cluster = Task { await runCluster(run, plan, network: network, stop: stop) }
        // Workers join after the garbage has been sent.
        try await Task.sleep(for: .milliseconds(200))
        let agents = (1...2).map { WorkerAgent(connector: network.connector(), engine: { FakeEngine() }, options: workerOptions(id: "ok\($0)")) }
        for a in agents { a.start() }
        let out = await cluster.value
        for a in agents { a.kill(); _ = await onThread { a.waitForExit(timeoutMs: 5000) } }
        #expect(out.outcome == .completed)
        #expect((out.stats?.malformed.total ?? 0) >= 7)
        #expect(try run.fingerprint() == base)
        try run.checkInvariants()
    }

    /// T10: a worker speaking an older major is refused with the accepted range; no lease.
    @Test func t10_oldProtocolVersionRefused() async throws {
        let run = try TestRun(config: TestRun.defaultConfig(examples: 4))
        let network = InMemoryNetwork()
        let stop = Locked(false)
        let cluster = Task { await runCluster(run, ClusterPlan(workers: 0, timeoutMs: 20_000), network: network, stop: stop) }
        try await Task.sleep(for: .milliseconds(50))
        let reply: Message? = await onThread {
            guard let c = try? RawClient(network, id: "old") else { return nil }
            c.hello(id: "old", version: ProtocolVersion(major: 0, minor: 3))
            return c.next(timeoutMs: 5000)
        }
        stop.withLock { $0 = true }
        _ = await cluster.value
        guard case .reject(let r)? = reply else { Issue.record("expected REJECT, got \(String(describing: reply))"); return }
        #expect(r.reason == .version)
        #expect(r.supported == "2.x")
        #expect(try run.count("SELECT COUNT(*) FROM leases WHERE run_id = ?") == 0)
    }

    /// T11 (token): a worker with a wrong join token is refused and told why; no lease.
    @Test func t11_wrongJoinTokenRefused() async throws {
        let run = try TestRun(config: TestRun.defaultConfig(examples: 8))
        var plan = ClusterPlan(workers: 1, token: "right-token", workerToken: "wrong-token", timeoutMs: 3000)
        plan.respawnCrashed = false
        let out = await runCluster(run, plan)
        #expect(out.outcome == .stopped)
        guard case .rejected(let r)? = out.exits.first else { Issue.record("expected a rejection, got \(out.exits)"); return }
        #expect(r.reason == .auth)
        #expect(r.hint.contains("token"))
        #expect(try run.count("SELECT COUNT(*) FROM leases WHERE run_id = ?") == 0)
        // The right token works.
        let ok = await runCluster(run, ClusterPlan(workers: 1, token: "right-token"))
        #expect(ok.outcome == .completed)
    }

    /// T16: an example that crashes its worker every time is declared failed after maxAttempts;
    /// the other examples of its shard are unaffected; no infinite loop.
    @Test func t16_poisonExample() async throws {
        let config = TestRun.defaultConfig(examples: 16, shardSize: 4)
        let base = try await baseline(config)
        let run = try TestRun(config: config)
        var plan = ClusterPlan(workers: 2)
        plan.engine.crashOn = ["000005"]
        let out = await runCluster(run, plan)
        #expect(out.outcome == .completed)
        #expect(out.exits.contains { if case .crashed = $0 { true } else { false } })
        let failed = try run.count("SELECT COUNT(*) FROM example_failures WHERE run_id = ? AND final = 1")
        #expect(failed == config.methods.count)   // example 000005 under each method
        let fp = try run.fingerprint()
        let others = base.results.filter { !$0.contains("/000005/") }
        #expect(fp.results == others)
        let report = try Metrics.compute(store: run.store, runId: run.runId)
        #expect(report.tasks[0].methods.allSatisfy { $0.failed == 1 && $0.results == 15 })
        try run.checkInvariants()
    }

    /// T16 variant: an engine error (no crash) on one example: FAIL, retried, then declared failed.
    @Test func t16_failingExample() async throws {
        let run = try TestRun(config: TestRun.defaultConfig(examples: 8, shardSize: 4))
        var plan = ClusterPlan(workers: 1)
        plan.engine.failOn = ["000002"]
        let out = await runCluster(run, plan)
        #expect(out.outcome == .completed)
        #expect(try run.count("SELECT COUNT(*) FROM example_failures WHERE run_id = ? AND final = 1") == 3)
        try run.checkInvariants()
    }

    /// T19: one decode blocks the engine thread for 3 × the lease TTL; heartbeats keep flowing
    /// from the I/O thread, so the lease never expires and nothing is decoded twice.
    @Test func t19_decodeLongerThanLease() async throws {
        var config = TestRun.defaultConfig(examples: 8, shardSize: 4)
        config.leaseTtlMs = 300
        let base = try await baseline(config)
        let run = try TestRun(config: config)
        var plan = ClusterPlan(workers: 2)
        plan.engine.hangMs = ["000003": 900]
        let out = await runCluster(run, plan)
        #expect(out.outcome == .completed)
        #expect(try run.fingerprint() == base)
        #expect(try run.count("SELECT COUNT(*) FROM leases WHERE run_id = ? AND state = 'expired'") == 0)
        #expect(try run.count("SELECT COUNT(*) FROM result_events WHERE run_id = ?") == 0)
        try run.checkInvariants()
    }

    /// T14: SQLITE_FULL (a real one, from `max_page_count`): no ACK, run paused, workers keep
    /// their spools; once space is available the run resumes and equals the baseline.
    @Test func t14_diskFull() async throws {
        let config = TestRun.defaultConfig(examples: 40, shardSize: 4)
        let base = try await baseline(config)
        let run = try TestRun(config: config)
        try await run.store.pool.writeWithoutTransaction { db in
            let pages = try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0
            try db.execute(sql: "PRAGMA max_page_count = \(pages + 1)")
        }
        var plan = ClusterPlan(workers: 2)
        plan.engine.latencyMs = 1
        let sawPause = Locked(false)
        plan.whileRunning = { stats, _, _ in
            if stats.read({ $0.paused }) && !sawPause.current {
                sawPause.withLock { $0 = true }
                Thread.sleep(forTimeInterval: 0.2)
                try? run.store.pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA max_page_count = 1073741823") }
            }
        }
        let out = await runCluster(run, plan)
        #expect(sawPause.current)
        #expect(out.outcome == .completed)
        #expect(try run.fingerprint() == base)
        try run.checkInvariants()
    }

    /// T23: cancel from another process (a status change in the database): leases cancelled,
    /// run `cancelled`, partial results kept.
    @Test func t23_cancel() async throws {
        let run = try TestRun(config: TestRun.defaultConfig(examples: 40, shardSize: 4))
        var plan = ClusterPlan(workers: 2)
        plan.engine.latencyMs = 25
        plan.whileRunning = { stats, _, _ in
            if stats.read({ $0.committed }) >= 10 { try? run.store.setStatus(run.runId, "cancelled") }
        }
        let out = await runCluster(run, plan)
        #expect(out.outcome == .cancelled)
        #expect(try run.count("SELECT COUNT(*) FROM leases WHERE run_id = ? AND state = 'active'") == 0)
        #expect(try run.count("SELECT COUNT(*) FROM results WHERE run_id = ?") >= 10)
    }
}
