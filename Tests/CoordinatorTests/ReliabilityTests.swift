import Foundation
import GRDB
import SiriusMethod
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

    /// T18: stop the coordinator part-way with 8 workers, resume with 3: identical to baseline, on
    /// the nondeterministic engine (nothing decoded twice but the work in flight at the stop).
    @Test func t18_resumeWithDifferentWorkerCount() async throws {
        var config = TestRun.defaultConfig(examples: 30, shardSize: 3)
        config.heartbeatMs = 50
        let base = try await baseline(config)
        let run = try TestRun(config: config)
        let stop = Locked(false)
        let decodes = FakeDecodeLog()
        var plan = ClusterPlan(workers: 8)
        plan.engine.latencyMs = 3
        plan.engine.nondeterministic = true
        plan.decodes = decodes
        let total = 90
        plan.whileRunning = { stats, _, _ in
            if stats.read({ $0.committed }) >= total * 4 / 10 { stop.withLock { $0 = true } }
        }
        let first = await runCluster(run, plan, stop: stop)
        #expect(first.outcome == .stopped)
        let partial = try run.count("SELECT COUNT(*) FROM results WHERE run_id = ?")
        #expect(partial >= total * 4 / 10 && partial < total)
        var resumed = ClusterPlan(workers: 3)
        resumed.engine.nondeterministic = true
        resumed.decodes = decodes
        let second = await runCluster(run, resumed)
        #expect(second.outcome == .completed)
        #expect(try run.count("SELECT epoch FROM runs WHERE run_id = ?") == 2)
        let fp = try run.fingerprint(hashes: false)
        #expect(fp.results == withoutHashes(base.results))
        #expect(fp.metrics == withoutIdentity(base.metrics))
        try run.checkInvariants()
        try run.checkDecodedOnce(decodes)
    }

    /// T1 (in process): a worker dies without a word mid-shard; its lease expires and only the
    /// missing examples are re-decoded elsewhere.
    @Test func t1_workerKilledMidShard() async throws {
        let config = TestRun.defaultConfig(examples: 24, shardSize: 8)
        let base = try await baseline(config)
        let run = try TestRun(config: config)
        let decodes = FakeDecodeLog()
        var plan = ClusterPlan(workers: 2)
        plan.engine.latencyMs = 5
        plan.engine.nondeterministic = true
        plan.decodes = decodes
        let killed = Locked(false)
        plan.whileRunning = { stats, agents, _ in
            if !killed.current, stats.read({ $0.committed }) >= 5 { killed.withLock { $0 = true }; agents[0].kill() }
        }
        plan.respawnCrashed = false
        let out = await runCluster(run, plan)
        #expect(out.outcome == .completed)
        #expect(try run.fingerprint(hashes: false).results == withoutHashes(base.results))
        #expect(try run.fingerprint(hashes: false).metrics == withoutIdentity(base.metrics))
        try run.checkDecodedOnce(decodes)
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
        let decodes = FakeDecodeLog()
        // Long-lived workers that outlive the first coordinator (nondeterministic: a result decoded
        // twice would show as a conflict).
        let agents = (1...3).map { i in
            WorkerAgent(connector: network.connector(), engine: {
                var c = FakeEngineConfig(); c.latencyMs = 5; c.nondeterministic = true; return FakeEngine(config: c, decodes: decodes)
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
        #expect(try run.fingerprint(hashes: false).results == withoutHashes(base.results))
        #expect(try run.fingerprint(hashes: false).metrics == withoutIdentity(base.metrics))
        try run.checkInvariants()
        try run.checkDecodedOnce(decodes)
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

    /// A worker stopped (SIGSTOP) past its lease TTL while it holds a lease, then resumed: its lease
    /// expired and went to the other worker; what it sends afterwards is late — accepted if the
    /// example is still missing, ignored otherwise — and never a second row.
    private func frozenWorkerRun(nondeterministic: Bool) async throws -> (TestRun, ClusterOutcome, base: (results: [String], metrics: [String])) {
        var config = TestRun.defaultConfig(examples: 16, shardSize: 4)
        config.leaseTtlMs = 400
        let base = try await baseline(config)
        let run = try TestRun(config: config)
        var plan = ClusterPlan(workers: 2)
        plan.engine.latencyMs = 40
        plan.engine.nondeterministic = nondeterministic
        // The first worker stops (4 × the TTL) right after sending its first result, while its engine
        // decodes the other three examples of that lease: they go out late.
        plan.configure = { n, o in if n == 1 { o.freezeAfterResults = (count: 1, ms: 1600) } }
        let out = await runCluster(run, plan)
        return (run, out, base)
    }

    /// T8: a late result from an expired lease (the worker frozen past its TTL): `late_accepted` or
    /// `late_ignored`, never two rows; results equal the baseline.
    @Test func t8_lateResultFromExpiredLease() async throws {
        let (run, out, base) = try await frozenWorkerRun(nondeterministic: false)
        #expect(out.outcome == .completed)
        #expect(try run.count("SELECT COUNT(*) FROM leases WHERE run_id = ? AND worker_id = 'w1' AND state = 'expired'") >= 1)
        #expect(try run.count("SELECT COUNT(*) FROM result_events WHERE run_id = ? AND kind IN ('late_accepted', 'late_ignored')") >= 1)
        #expect(try run.count("SELECT COUNT(*) FROM result_events WHERE run_id = ? AND kind = 'duplicate_conflict'") == 0)
        #expect(try run.fingerprint() == base)
        try run.checkInvariants()
    }

    /// T7: the same with the nondeterministic engine: the late copies differ from the stored rows —
    /// the first write is kept, `duplicate_conflict` recorded, and the report says so.
    @Test func t7_conflictingDuplicateIsRecordedFirstWriteKept() async throws {
        let (run, out, base) = try await frozenWorkerRun(nondeterministic: true)
        #expect(out.outcome == .completed)
        let conflicts = try run.count("SELECT COUNT(DISTINCT task || '/' || example_id || '/' || method) FROM result_events WHERE run_id = ? AND kind = 'duplicate_conflict'")
        #expect(conflicts >= 1)
        // The stored row is the first one received: for every conflict its hash is not the event's.
        #expect(try run.count("""
            SELECT COUNT(*) FROM result_events e JOIN results r USING (run_id, task, example_id, method)
            WHERE e.run_id = ? AND e.kind = 'duplicate_conflict' AND e.result_hash = r.result_hash
            """) == 0)
        #expect(try run.fingerprint(hashes: false).results == withoutHashes(base.results))
        let report = try Metrics.compute(store: run.store, runId: run.runId)
        #expect(ReportRenderer.render(report, .md, config: run.config).contains("Non-determinism observed: \(conflicts) examples"))
        try run.checkInvariants()
    }

    /// A worker killed after decoding loses nothing: its results are in its spool on disk; restarted
    /// with the same id it re-sends them and the coordinator does not lease them again meanwhile.
    /// The coordinator is down while the workers decode (nothing can be acknowledged), then the
    /// workers are killed, a new coordinator incarnation starts and the workers restart.
    @Test func spool_workerKilledAfterDecodingLosesNothing() async throws {
        let config = TestRun.defaultConfig(examples: 16, shardSize: 4)
        let base = try await baseline(config)
        let run = try TestRun(config: config)
        let network = InMemoryNetwork()
        let decodes = FakeDecodeLog()
        let spools = run.dir.appendingPathComponent("spools")
        func agent(_ i: Int) -> WorkerAgent {
            var o = workerOptions(id: "spool\(i)", spoolRoot: spools)
            o.credits = 2
            return WorkerAgent(connector: network.connector(), engine: {
                var c = FakeEngineConfig(); c.latencyMs = 20; c.nondeterministic = true; return FakeEngine(config: c, decodes: decodes)
            }, options: o)
        }
        let first = (1...2).map(agent)
        let stop = Locked(false)
        let firstRun = Task {
            await runCluster(run, ClusterPlan(workers: 0, whileRunning: { stats, _, _ in
                if stats.read({ $0.leasesGranted }) >= 4 { stop.withLock { $0 = true } }
            }), network: network, stop: stop)
        }
        try await Task.sleep(for: .milliseconds(50))
        for a in first { a.start() }
        #expect(await firstRun.value.outcome == .stopped)
        // The workers finish the leases they hold with nobody to acknowledge them (normally; on a
        // loaded machine one may still be decoding, or have paused itself), then are killed.
        let leased = try run.count("SELECT SUM(n_items) FROM leases WHERE run_id = ?")
        _ = await onThread {
            let deadline = monotonicMs() + 10_000
            while decodes.snapshot.count < leased && monotonicMs() < deadline { Thread.sleep(forTimeInterval: 0.02) }
            return true
        }
        for a in first { a.kill(); _ = await onThread { a.waitForExit(timeoutMs: 5000) } }
        let spooled = Set(try (1...2).flatMap { try ResultSpool(directory: spools.appendingPathComponent("spool\($0)")).entries.map(\.message.key) })
        let committedBefore = try run.count("SELECT COUNT(*) FROM results WHERE run_id = ?")
        #expect(spooled.count >= 1, "decoded \(decodes.snapshot.count) of \(leased) leased, stored \(committedBefore)")
        // Restarted with the same ids: the spools go out first; nothing is decoded twice.
        let second = (1...2).map(agent)
        let secondRun = Task { await runCluster(run, ClusterPlan(workers: 0), network: network) }
        try await Task.sleep(for: .milliseconds(50))
        for a in second { a.start() }
        #expect(await secondRun.value.outcome == .completed)
        for a in second { a.kill(); _ = await onThread { a.waitForExit(timeoutMs: 5000) } }
        // What was on disk went in as it was (late: the leases it was decoded under were gone) and was
        // never decoded again; only an example in flight at the kill may have been.
        #expect(decodes.repeated.isDisjoint(with: spooled), "spooled and decoded again: \(decodes.repeated.intersection(spooled).map(\.description).sorted())")
        #expect(try run.count("SELECT COUNT(*) FROM result_events WHERE run_id = ? AND kind = 'late_accepted'") == spooled.count)
        #expect(try FileManager.default.subpathsOfDirectory(atPath: spools.path).filter { $0.hasSuffix(".result") }.isEmpty,
                "acknowledged results leave the spool")
        #expect(try run.fingerprint(hashes: false).results == withoutHashes(base.results))
        try run.checkInvariants()
        try run.checkDecodedOnce(decodes)
    }

    /// T2: a worker dies while its engine is still loading the model: its lease expires and is
    /// reassigned, nothing of it is stored. A load longer than the TTL without a kill expires nothing
    /// (heartbeats come from the I/O thread while the engine loads).
    @Test func t2_killedWhileLoadingVersusSlowLoad() async throws {
        var config = TestRun.defaultConfig(examples: 8, shardSize: 4)
        config.leaseTtlMs = 600
        let base = try await baseline(config)

        let slow = try TestRun(config: config)
        var slowPlan = ClusterPlan(workers: 1)
        slowPlan.engine.loadMs = 2000
        #expect(await runCluster(slow, slowPlan).outcome == .completed)
        #expect(try slow.count("SELECT COUNT(*) FROM leases WHERE run_id = ? AND state = 'expired'") == 0, "no false expiry while loading")
        #expect(try slow.fingerprint() == base)

        let killed = try TestRun(config: config)
        let network = InMemoryNetwork()
        let loading = WorkerAgent(connector: network.connector(), engine: {
            var c = FakeEngineConfig(); c.loadMs = 60_000; return FakeEngine(config: c)
        }, options: workerOptions(id: "loading"))
        let stop = Locked(false)
        let cluster = Task { await runCluster(killed, ClusterPlan(workers: 0), network: network, stop: stop) }
        try await Task.sleep(for: .milliseconds(50))
        loading.start()
        let leased: Bool = await onThread {
            let deadline = monotonicMs() + 10_000
            while monotonicMs() < deadline {
                if (try? killed.count("SELECT COUNT(*) FROM leases WHERE run_id = ? AND worker_id = 'loading'")) ?? 0 >= 1 { return true }
                Thread.sleep(forTimeInterval: 0.01)
            }
            return false
        }
        #expect(leased)
        loading.kill()   // still in its 60 s load
        let rescuer = WorkerAgent(connector: network.connector(), engine: { FakeEngine() }, options: workerOptions(id: "rescuer"))
        rescuer.start()
        let out = await cluster.value
        rescuer.kill(); _ = await onThread { rescuer.waitForExit(timeoutMs: 5000) }
        #expect(out.outcome == .completed)
        #expect(try killed.count("SELECT COUNT(*) FROM leases WHERE run_id = ? AND worker_id = 'loading' AND state = 'expired'") >= 1)
        #expect(try killed.count("SELECT COUNT(*) FROM results WHERE run_id = ? AND worker_id = 'loading'") == 0)
        #expect(try killed.fingerprint() == base)
        try killed.checkInvariants()
    }

    /// T15: a reader holding a read transaction on the database (as the `sqlite3` CLI would) for the
    /// whole run: the coordinator's writes proceed (WAL), nothing is lost, the run equals the baseline.
    @Test func t15_readerHoldsTheDatabase() async throws {
        let config = TestRun.defaultConfig(examples: 16, shardSize: 4)
        let base = try await baseline(config)
        let run = try TestRun(config: config)
        let reader = try DatabaseQueue(path: run.store.path)
        let held = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        let readerThread = Thread {
            try? reader.read { db in
                _ = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM results")   // the snapshot starts here
                held.signal()
                done.wait()
            }
        }
        readerThread.start()
        held.wait()
        var plan = ClusterPlan(workers: 2)
        plan.engine.latencyMs = 2
        let out = await runCluster(run, plan)
        done.signal()
        #expect(out.outcome == .completed)
        #expect(out.stats?.read { $0.paused } == false)
        #expect(try run.fingerprint() == base)
        try run.checkInvariants()
    }

    /// T24: the coordinator restarts while every worker is down: the leases of the dead incarnation
    /// expire after their grace period and new workers finish the run.
    @Test func t24_restartWhileWorkersAreDown() async throws {
        let config = TestRun.defaultConfig(examples: 16, shardSize: 4)
        let base = try await baseline(config)
        let run = try TestRun(config: config)
        let stop = Locked(false)
        var first = ClusterPlan(workers: 3)
        first.engine.latencyMs = 10
        first.whileRunning = { stats, _, _ in if stats.read({ $0.committed }) >= 10 { stop.withLock { $0 = true } } }
        #expect(await runCluster(run, first, stop: stop).outcome == .stopped)   // its workers die with it
        let open = try run.count("SELECT COUNT(*) FROM leases WHERE run_id = ? AND state = 'active'")
        let second = await runCluster(run, ClusterPlan(workers: 2))
        #expect(second.outcome == .completed)
        #expect(open >= 1, "the first incarnation left leases behind")
        #expect(try run.count("SELECT COUNT(*) FROM leases WHERE run_id = ? AND state = 'active'") == 0)
        #expect(try run.fingerprint() == base)
        try run.checkInvariants()
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
        // A TTL of 20 heartbeats: a loaded machine delaying a beat by a few hundred ms cannot expire it.
        config.leaseTtlMs = 1000
        let base = try await baseline(config)
        let run = try TestRun(config: config)
        var plan = ClusterPlan(workers: 2)
        plan.engine.hangMs = ["000003": 3000]
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
        let decodes = FakeDecodeLog()
        var plan = ClusterPlan(workers: 2)
        plan.engine.latencyMs = 1
        plan.engine.nondeterministic = true
        plan.decodes = decodes
        let sawPause = Locked(false)
        let pauseNote = Locked<String?>(nil)
        let unstoredAcks = Locked<[String]>([])
        plan.whileRunning = { stats, agents, _ in
            if stats.read({ $0.paused }) && !sawPause.current {
                sawPause.withLock { $0 = true }
                pauseNote.withLock { n in do { n = try run.store.pool.read { try String.fetchOne($0, sql: "SELECT status || ': ' || COALESCE(status_note, '') FROM runs WHERE run_id = ?", arguments: [run.runId]) } } catch { n = "read failed: \(error)" } }
                // While paused: every result a worker was told is stored, is stored.
                let stored = (try? run.store.committedKeys(run.runId)) ?? []
                let acked = agents.flatMap { $0.acknowledged.map(\.key) }
                unstoredAcks.withLock { $0 = acked.filter { !stored.contains($0) }.map(\.description) }
                Thread.sleep(forTimeInterval: 0.2)
                try? run.store.pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA max_page_count = 1073741823") }
            }
        }
        let out = await runCluster(run, plan)
        #expect(sawPause.current)
        #expect(pauseNote.current?.hasPrefix("paused: disk full at ") == true, "the run says why it paused: \(pauseNote.current ?? "nil")")
        #expect(unstoredAcks.current.isEmpty, "acknowledged but not stored: \(unstoredAcks.current)")
        #expect(out.outcome == .completed)
        #expect(try run.fingerprint(hashes: false).results == withoutHashes(base.results))
        #expect(try run.fingerprint(hashes: false).metrics == withoutIdentity(base.metrics))
        #expect(decodes.repeated.isEmpty, "no worker fault: nothing decoded twice")
        try run.checkInvariants()
        try run.checkDecodedOnce(decodes)
    }

    /// A database that cannot be written at all (here read-only, as after a remount): the run stops
    /// with `storeFailed` instead of retrying forever, the workers are told, committed results stay;
    /// once the database is writable again, `resume` completes the run = baseline.
    @Test func unwritableDatabaseFailsTheRunResumably() async throws {
        let config = TestRun.defaultConfig(examples: 16, shardSize: 4)
        let base = try await baseline(config)
        let run = try TestRun(config: config)
        var plan = ClusterPlan(workers: 2)
        plan.engine.latencyMs = 5
        let broken = Locked(false)
        plan.whileRunning = { stats, _, _ in
            if !broken.current, stats.read({ $0.committed }) >= 5 {
                broken.withLock { $0 = true }
                try? run.store.pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA query_only = 1") }
            }
        }
        let out = await runCluster(run, plan)
        #expect(out.outcome == .storeFailed)
        #expect(out.stats?.read { $0.storeHealth.hasPrefix("failed: ") && $0.storeHealth.contains("read-only") } == true,
                "\(out.stats?.read { $0.storeHealth } ?? "nil")")
        #expect(out.exits.contains { if case .shutdown(let r) = $0 { r.contains("database") } else { false } })
        try await run.store.pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA query_only = 0") }
        let stored = try run.count("SELECT COUNT(*) FROM results WHERE run_id = ?")
        #expect(stored >= 5)
        #expect(await runCluster(run, ClusterPlan(workers: 2)).outcome == .completed)
        #expect(try run.fingerprint() == base)
        try run.checkInvariants()
    }

    /// Leases by free slots: a worker that decodes 8 at once (HELLO batch size) holds two shards of
    /// 4 and gets a third only when one of its examples is done; a batch-1 worker holds one lease.
    @Test func leasesFollowEachWorkersBatchSize() async throws {
        let config = TestRun.defaultConfig(examples: 24, shardSize: 4)
        let base = try await baseline(config)
        let run = try TestRun(config: config)
        var plan = ClusterPlan(workers: 2)
        plan.engine.latencyMs = 15
        plan.configure = { n, o in if n == 1 { o.batchSize = 8; o.credits = 10 } else { o.credits = 10 } }
        let most = Locked<[String: Int]>([:])
        plan.whileRunning = { _, _, _ in
            let rows = (try? run.store.pool.read { db in
                try Row.fetchAll(db, sql: """
                    SELECT l.worker_id AS w, COUNT(*) AS n FROM leases l, json_each(l.items_json) j
                    WHERE l.run_id = ? AND l.state = 'active' AND NOT EXISTS (SELECT 1 FROM results r WHERE r.run_id = l.run_id
                      AND r.task = json_extract(j.value, '$.task') AND r.example_id = json_extract(j.value, '$.exampleId')
                      AND r.method = json_extract(j.value, '$.method'))
                    GROUP BY l.worker_id
                    """, arguments: [run.runId])
            }) ?? []
            most.withLock { m in for r in rows { m[r["w"], default: 0] = max(m[r["w"], default: 0], r["n"]) } }
        }
        let out = await runCluster(run, plan)
        #expect(out.outcome == .completed)
        let m = most.current
        #expect((m["w1"] ?? 0) > 4 && (m["w1"] ?? 0) <= 8 + 4 - 1, "batch-8 worker's unfinished examples at most: \(m)")
        #expect((m["w2"] ?? 0) >= 1 && (m["w2"] ?? 0) <= 4, "batch-1 worker holds one shard: \(m)")
        #expect(try run.fingerprint() == base)
        try run.checkInvariants()
    }

    /// T25: the wall clock jumps an hour forward, then two hours back, in the middle of a run. Leases
    /// live on the monotonic clock: none expires, nothing is decoded twice, results = baseline.
    @Test func t25_wallClockJumps() async throws {
        let config = TestRun.defaultConfig(examples: 16, shardSize: 4)
        let base = try await baseline(config)
        let run = try TestRun(config: config)
        let decodes = FakeDecodeLog()
        var plan = ClusterPlan(workers: 2)
        plan.engine.latencyMs = 10
        plan.decodes = decodes
        plan.whileRunning = { stats, _, _ in
            let n = stats.read { $0.committed }
            if n >= 10 && n < 25 { Store.wallClockOffsetMs.withLock { $0 = 3_600_000 } }
            if n >= 25 { Store.wallClockOffsetMs.withLock { $0 = -3_600_000 } }
        }
        let out = await runCluster(run, plan)
        Store.wallClockOffsetMs.withLock { $0 = 0 }
        #expect(out.outcome == .completed)
        #expect(try run.count("SELECT COUNT(*) FROM leases WHERE run_id = ? AND state = 'expired'") == 0)
        #expect(decodes.repeated.isEmpty)
        // The jumps are visible in the record, and only there.
        let span = try run.count("SELECT MAX(committed_at) - MIN(committed_at) FROM results WHERE run_id = ?")
        #expect(span > 3_000_000, "committed_at spans the jumps: \(span) ms")
        #expect(try run.fingerprint() == base)
        try run.checkInvariants()
    }

    /// T21, reduced to what a CI run affords: 20,000 examples at 0 ms on 8 workers with credits of
    /// 4. No silent drops (every result committed exactly once: counts and invariants), no
    /// duplicates, and the coordinator's memory bounded (this process's peak RSS grows by < 400 MiB).
    @Test(.timeLimit(.minutes(3))) func t21_floodOfTinyExamples() async throws {
        var config = TestRun.defaultConfig(examples: 20_000, shardSize: 50)
        config.methods = [MethodSpec.full]
        let run = try TestRun(config: config)
        let before = peakRSSKiB()
        var plan = ClusterPlan(workers: 8)
        plan.credits = 4
        plan.timeoutMs = 150_000
        let out = await runCluster(run, plan)
        #expect(out.outcome == .completed)
        #expect(try run.count("SELECT COUNT(*) FROM results WHERE run_id = ?") == 20_000)
        #expect(try run.count("SELECT COUNT(*) FROM result_events WHERE run_id = ?") == 0)
        #expect(out.stats?.read { $0.committed } == 20_000)
        let grown = (peakRSSKiB() - before) / 1024
        #expect(grown < 400, "peak RSS grew by \(grown) MiB")
        try run.checkInvariants()
    }

    /// T23: cancel from another process (a status change in the database): leases cancelled,
    /// run `cancelled`, partial results kept.
    @Test func t23_cancel() async throws {
        let run = try TestRun(config: TestRun.defaultConfig(examples: 40, shardSize: 4))
        var plan = ClusterPlan(workers: 2)
        plan.engine.latencyMs = 25
        plan.whileRunning = { stats, _, _ in
            if stats.read({ $0.committed }) >= 10 { try? run.store.setStatus(run.runId, .cancelled) }
        }
        let out = await runCluster(run, plan)
        #expect(out.outcome == .cancelled)
        #expect(try run.count("SELECT COUNT(*) FROM leases WHERE run_id = ? AND state = 'active'") == 0)
        #expect(try run.count("SELECT COUNT(*) FROM results WHERE run_id = ?") >= 10)
    }
}
