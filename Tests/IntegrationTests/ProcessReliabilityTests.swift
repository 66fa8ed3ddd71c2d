import Foundation
import SiriusProtocol
import Testing

/// §5 tests that need real processes and signals (fake engine, loopback only). Each is bounded in
/// time and kills whatever it started.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct ProcessReliabilityTests {
    let slow = ["SIRIUS_FAKE_LATENCY_MS": "15"]

    /// T1: `kill -9` of a worker mid-shard: its lease expires, the shard is reassigned with a
    /// skip list, metrics equal the baseline, `leases` shows attempt 2.
    @Test func t1_killWorkerMidShard() async throws {
        let base = try await BaselineCache.shared.get()
        let c = try ProcessCluster()
        defer { c.cleanup() }
        try await c.start()
        // The victim is slow (200 ms per example, shards of 4) so that after its second result it is
        // certainly inside a shard when it is killed, whatever the build's speed.
        let victim = try c.addWorker(id: "victim", env: ["SIRIUS_FAKE_LATENCY_MS": "200"])
        try c.addWorker(id: "survivor", env: slow)
        try await c.waitFor("SELECT COUNT(*) FROM results WHERE worker_id = 'victim'", atLeast: 2)
        victim.signal(SIGKILL)
        let status = await c.coordinator!.wait(seconds: 60)
        #expect(status == 0, "\(c.coordinator!.output)")
        #expect(try c.fingerprint() == base)
        #expect(try c.invariantsHold())
        #expect(try c.count("SELECT COUNT(*) FROM leases WHERE state = 'expired' AND worker_id = 'victim'") >= 1)
        #expect(try c.count("SELECT MAX(attempt) FROM leases") >= 2)
    }

    /// T3: SIGTERM: the worker finishes or abandons its example, sends BYE and exits 0; the
    /// coordinator requeues at once (no failure counted).
    @Test func t3_sigtermDrainsWorker() async throws {
        let base = try await BaselineCache.shared.get()
        let c = try ProcessCluster()
        defer { c.cleanup() }
        try await c.start()
        let leaving = try c.addWorker(id: "leaving", env: slow)
        try c.addWorker(id: "staying", env: slow)
        try await c.waitFor("SELECT COUNT(*) FROM results WHERE worker_id = 'leaving'", atLeast: 2)
        leaving.signal(SIGTERM)
        let exit = await leaving.wait(seconds: 15)
        #expect(exit == 0, "\(leaving.output)")
        let status = await c.coordinator!.wait(seconds: 60)
        #expect(status == 0)
        #expect(try c.fingerprint() == base)
        #expect(try c.invariantsHold())
        #expect(try c.count("SELECT COUNT(*) FROM example_failures") == 0)
        // It said goodbye: recorded as left (not lost), its leases handed back at once (never expired).
        #expect(try c.count("SELECT COUNT(*) FROM workers WHERE worker_id = 'leaving' AND state = 'left'") == 1)
        #expect(try c.count("SELECT COUNT(*) FROM leases WHERE worker_id = 'leaving' AND state = 'expired'") == 0)
    }

    /// T4: `kill -9` of the coordinator mid-run, then `resume`: epoch+1, the workers reconnect by
    /// themselves, re-HELLO with held leases, re-send spools; results equal the baseline.
    @Test func t4_killCoordinatorAndResume() async throws {
        let base = try await BaselineCache.shared.get()
        let c = try ProcessCluster()
        defer { c.cleanup() }
        try await c.start()
        // 150 ms per example: 72 results take about 3.6 s with 3 workers, so the kill after the 9th
        // lands mid-run with seconds to spare even on a loaded 2-core machine (at 15 ms the run
        // could finish before the kill; it did once in CI).
        for i in 1...3 { try c.addWorker(id: "w\(i)", env: ["SIRIUS_FAKE_LATENCY_MS": "150"]) }
        try await c.waitFor("SELECT COUNT(*) FROM results", atLeast: 9)
        c.coordinator!.signal(SIGKILL)
        _ = await c.coordinator!.wait(seconds: 5)
        let committedBefore = try c.count("SELECT COUNT(*) FROM results")
        let endpoint = c.endpoint
        try await c.startCoordinator(["resume", c.runId, "--db", c.db, "--workers", "0", "--bind", endpoint,
                                      "--heartbeat-ms", "100", "--lease-ttl-ms", "1500", "--quiet", "--format", "csv"])
        let status = await c.coordinator!.wait(seconds: 60)
        #expect(status == 0, "\(c.coordinator!.output)")
        #expect(try c.count("SELECT COUNT(*) FROM results") >= committedBefore)
        #expect(try c.count("SELECT epoch FROM runs") == 2)
        #expect(try c.fingerprint() == base)
        #expect(try c.invariantsHold())
    }

    /// T18 + T4 with real processes on the nondeterministic engine: 4 workers; at 40 % `kill -9` of
    /// the coordinator, then of two workers (one of them restarted later with the same id, re-sending
    /// its spool from disk, the other never back); `resume` with 3 workers. No conflicting duplicate,
    /// nothing decoded twice except the work of leases that ended by the faults, and the answers and
    /// metrics of the undisturbed run.
    @Test func t18_killCoordinatorAndResumeWithFewerWorkers() async throws {
        let base = try await BaselineCache.shared.get()
        let c = try ProcessCluster()
        defer { c.cleanup() }
        let decodeLog = c.dir.appendingPathComponent("decodes.log").path
        let env = ["SIRIUS_FAKE_LATENCY_MS": "100", "SIRIUS_FAKE_NONDET": "1", "SIRIUS_FAKE_DECODE_LOG": decodeLog]
        try await c.start()
        var workers: [String: Spawned] = [:]
        for i in 1...4 { workers["w\(i)"] = try c.addWorker(id: "w\(i)", env: env) }
        try await c.waitFor("SELECT COUNT(*) FROM results", atLeast: 72 * 4 / 10)
        c.coordinator!.signal(SIGKILL)
        _ = await c.coordinator!.wait(seconds: 5)
        // The workers go on decoding what they hold, with nobody to acknowledge it. The victim
        // (restarted later with its id) is the worker whose disk spool holds the most by then.
        try await Task.sleep(for: .milliseconds(400))
        func spoolCount(_ id: String) -> Int {
            ((try? FileManager.default.contentsOfDirectory(atPath: c.spoolDirectory(id).path)) ?? []).filter { $0.hasSuffix(".result") }.count
        }
        let victim = ["w1", "w2", "w3", "w4"].max { (spoolCount($0), $1) < (spoolCount($1), $0) }!
        let other = ["w1", "w2", "w3", "w4"].first { $0 != victim }!
        for id in [victim, other] { workers[id]!.signal(SIGKILL); _ = await workers[id]!.wait(seconds: 5) }
        let spooled = spoolCount(victim)
        let committedBefore = try c.count("SELECT COUNT(*) FROM results")
        // A TTL of 3 s: the orphaned leases wait that long for the restarted victim's HELLO even on a
        // loaded machine.
        try await c.startCoordinator(["resume", c.runId, "--db", c.db, "--workers", "0", "--bind", c.endpoint,
                                      "--heartbeat-ms", "100", "--lease-ttl-ms", "3000", "--quiet", "--format", "csv"])
        try c.addWorker(id: victim, env: env)   // same id: re-sends its spool
        let status = await c.coordinator!.wait(seconds: 90)
        #expect(status == 0, "\(c.coordinator!.output)")
        #expect(try c.count("SELECT COUNT(*) FROM results") >= committedBefore)
        #expect(try c.count("SELECT epoch FROM runs") == 2)
        #expect(try c.fingerprint(hashes: false) == withoutHashes(base))
        #expect(try c.invariantsHold())
        #expect(try c.count("SELECT COUNT(*) FROM result_events WHERE kind = 'duplicate_conflict'") == 0)
        // The restarted worker's spool was delivered (late: its old leases were gone) and emptied.
        #expect(spooled >= 1, "\(victim) held decoded, unacknowledged results when it was killed")
        #expect(try c.count("SELECT COUNT(*) FROM result_events WHERE kind = 'late_accepted' AND worker_id = '\(victim)'") >= spooled)
        #expect(try FileManager.default.contentsOfDirectory(atPath: c.spoolDirectory(victim).path).filter { $0.hasSuffix(".result") }.isEmpty)
        // Decoded twice only where a lease ended by the faults.
        let lines = try String(contentsOfFile: decodeLog, encoding: .utf8).split(separator: "\n").map(String.init)
        var decodes: [String: Int] = [:]
        for l in lines { decodes[l, default: 0] += 1 }
        #expect(decodes.count == 72)
        let faulted = try c.expiredLeaseItems()
        let twice = Set(decodes.filter { $0.value > 1 }.keys)
        #expect(twice.isSubset(of: faulted), "decoded twice outside a faulted lease: \(twice.subtracting(faulted).sorted())")
    }

    /// T10 with a real worker process: a coordinator (here a bare ROUTER socket of the test) that
    /// refuses its protocol version. The worker prints the accepted range and exits with status 3,
    /// without retrying.
    @Test func t10_refusedVersionExitsNonZero() async throws {
        let c = try ProcessCluster()
        defer { c.cleanup() }
        let endpointBox = BlockingQueue<String>()
        let helloBox = BlockingQueue<Hello>()
        let server = Thread {
            guard let s = try? ZMQServer(bind: "tcp://127.0.0.1:*") else { endpointBox.push(""); return }
            endpointBox.push(s.endpoint)
            let deadline = monotonicMs() + 20_000
            while monotonicMs() < deadline {
                guard let inbound = s.receive(timeoutMs: 100), let env = try? Framing.decode(inbound.frames),
                      case .hello(let h) = env.message else { continue }
                helloBox.push(h)
                _ = s.send(to: inbound.peer, Framing.encode(.reject(Reject(reason: .version, supported: "9.x",
                                                                            hint: "this coordinator speaks protocol 9.0")), header: Header()))
                Thread.sleep(forTimeInterval: 1)
                break
            }
            s.close()
        }
        server.start()
        c.endpoint = endpointBox.pop(timeoutMs: 10_000) ?? ""
        try #require(!c.endpoint.isEmpty)
        let worker = try c.addWorker(id: "old")
        let status = await worker.wait(seconds: 20)
        #expect(status == 3, "\(worker.output)")
        #expect(worker.output.contains("9.x"), "\(worker.output)")
        #expect(helloBox.pop(timeoutMs: 0)?.workerId == "old")
    }

    /// T11: CURVE with a pinned key and a join token (forced on loopback with --secure). A wrong
    /// token gets `REJECT auth` and exit 3; a wrong server key never completes the handshake and
    /// the worker gives up saying so (exit 5); neither gets a lease; the right worker finishes.
    @Test func t11_wrongTokenAndWrongServerKey() async throws {
        let c = try ProcessCluster()
        defer { c.cleanup() }
        let keyDir = c.dir.appendingPathComponent("keys").path
        try await c.start(extra: ["--secure", "--key-dir", keyDir])
        let line = c.coordinator!.output.split(separator: "\n").first { $0.hasPrefix("worker command:") } ?? ""
        let parts = line.split(separator: " ").map(String.init)
        // Printed as --server-key='KEY' (a Z85 key may start with '-' and holds shell characters).
        let keyArg = try #require(parts.first { $0.hasPrefix("--server-key='") })
        let serverKey = String(keyArg.dropFirst("--server-key='".count).dropLast())
        #expect(serverKey.count == 40)
        let tokenFile = try #require(parts.firstIndex(of: "--token-file").map { parts[$0 + 1] })
        let badToken = c.dir.appendingPathComponent("bad.token")
        try "not-the-token\n".write(to: badToken, atomically: true, encoding: .utf8)

        let wrongToken = try c.addWorker(id: "bad-token", extra: ["--server-key=\(serverKey)", "--token-file", badToken.path])
        #expect(await wrongToken.wait(seconds: 20) == 3)
        #expect(wrongToken.output.contains("wrong join token"))

        let otherKey = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"   // a valid Z85 key that is not the server's
        let wrongKey = try c.addWorker(id: "bad-key", extra: ["--server-key", otherKey, "--token-file", tokenFile, "--give-up-after", "3"])
        #expect(await wrongKey.wait(seconds: 20) == 5)
        #expect(wrongKey.output.contains("handshake failed"))
        #expect(try c.count("SELECT COUNT(*) FROM leases") == 0)

        try c.addWorker(id: "good", extra: ["--server-key=\(serverKey)", "--token-file", tokenFile])
        #expect(await c.coordinator!.wait(seconds: 60) == 0)
        #expect(try c.invariantsHold())
    }

    /// T16 with real processes: the example crashes its worker process every time; the local
    /// launcher respawns workers; after 3 attempts the example is declared failed.
    @Test func t16_poisonExampleKillsWorkerProcesses() async throws {
        let c = try ProcessCluster()
        defer { c.cleanup() }
        try await c.start(workers: 2, env: ["SIRIUS_FAKE_CRASH_ON": "000005"])
        let status = await c.coordinator!.wait(seconds: 90)
        #expect(status == 0, "\(c.coordinator!.output)")
        #expect(try c.count("SELECT COUNT(*) FROM example_failures WHERE final = 1") == 3)
        #expect(try c.count("SELECT COUNT(*) FROM results") == 69)
        #expect(try c.invariantsHold())
    }
}
