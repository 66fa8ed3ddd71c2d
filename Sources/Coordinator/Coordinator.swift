import Foundation
import GRDB
import SiriusProtocol

/// How a coordinator loop ended.
/// `abandoned`: nobody was left to do the work (every local worker exited for good and no worker
/// is connected); `Coordinator.abandonReason` says why. The run stays resumable.
/// `storeFailed`: the database cannot be written and retrying will not help (`StoreHealth.failed`);
/// `Coordinator.storeFailure` says why and what to do.
enum RunOutcome: String, Sendable { case completed, cancelled, stopped, abandoned, storeFailed }

/// Operational settings of one coordinator incarnation (not part of the run's config hash).
struct CoordinatorOptions: Sendable {
    /// Join token every HELLO must carry (nil: no token required; loopback only).
    var token: String? = nil
    var heartbeatMs: Int? = nil
    var leaseTtlMs: Int? = nil
    /// Progress callback interval; nil = no progress.
    var progressEveryMs: Int? = nil
    /// Stop when this is set (SIGINT/SIGTERM, tests).
    var stop = Locked(false)
    var log: @Sendable (String) -> Void = { _ in }
    var progress: @Sendable (ProgressSnapshot) -> Void = { _ in }
    /// Why the local workers are all gone for good (nil while any is alive, or when none were
    /// spawned). Checked while no worker is connected: a non-nil answer ends the loop (`abandoned`).
    var localWorkersGone: @Sendable () -> String? = { nil }
    /// Lease nothing until this many workers have joined (`--wait-for-workers`); once leasing has
    /// started it goes on whoever leaves.
    var waitForWorkers = 0
    /// Test hook: simulates the coordinator dying between COMMIT and ACK (T5) for this many results.
    var dropAcksAfterCommit = Locked(0)
}

/// Counters readable from other threads while the loop runs.
final class CoordinatorStats: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var resultsReceived = 0
    private(set) var committed = 0
    private(set) var duplicates = 0
    private(set) var conflicts = 0
    private(set) var reassignments = 0
    private(set) var rejected = 0
    private(set) var paused = false
    /// The store's health as the loop last saw it (`ok`, `paused: disk full at …`, `failed: …`).
    private(set) var storeHealth = "ok"
    private(set) var leasesGranted = 0
    /// Microseconds from a RESULT's arrival to its ACK leaving (commit included).
    private(set) var ackLatencyUs: [Int64] = []
    let malformed = FrameStats()

    func update(_ body: (CoordinatorStats) -> Void) { lock.lock(); body(self); lock.unlock() }
    func read<T>(_ body: (CoordinatorStats) -> T) -> T { lock.lock(); defer { lock.unlock() }; return body(self) }

    fileprivate func add(received: Int = 0, committed c: Int = 0, duplicates d: Int = 0, conflicts x: Int = 0,
                         reassigned: Int = 0, rejected r: Int = 0, granted: Int = 0) {
        update { s in
            s.resultsReceived += received; s.committed += c; s.duplicates += d; s.conflicts += x
            s.reassignments += reassigned; s.rejected += r; s.leasesGranted += granted
        }
    }
    fileprivate func latency(_ us: [Int64]) { update { s in if s.ackLatencyUs.count < 2_000_000 { s.ackLatencyUs += us } } }
    fileprivate func setHealth(_ h: StoreHealth) { update { $0.paused = h != .ok; $0.storeHealth = h.description } }
}

/// Per-task progress for the live display.
struct ProgressSnapshot: Sendable {
    var perTask: [(task: String, done: Int, failed: Int, total: Int)]
    var elapsedS: Double
    var workers: Int
    var paused: Bool
}

/// The coordinator of one run (§4.3): a thin event loop on one thread that owns the ROUTER socket
/// and the store's write path, over three parts —
/// - `Scheduler`: what is pending, leased, stored or failed (pure state, tested by itself);
/// - `WorkerRegistry`: the sessions of connected workers, their credits and leases;
/// - `ResultSink`: received results waiting to be committed, and the store's health.
/// Messages come in (`handle`), results are committed in batches and only then ACKed (`flush`),
/// leases are granted to workers with credits (`dispatch`) and expire on the monotonic clock.
final class Coordinator {
    let store: Store
    let runId: String
    let config: RunConfig
    let provider: any ExampleProvider
    let options: CoordinatorOptions
    let stats = CoordinatorStats()
    private(set) var epoch = 0
    private let heartbeatMs: Int
    private let leaseTtlMs: Int

    private var scheduler: Scheduler
    private var workers = WorkerRegistry()
    private var sink = ResultSink()
    private var examples: [String: [String: Store.ExampleRow]] = [:]
    private var methods: [String: MethodSpec] = [:]
    private var seq: UInt64 = 0
    private var leasingStarted = false
    private let sessionId = UUID().uuidString.lowercased()
    /// The last fatal error a worker reported (FAIL fatal_config or BYE "fatal: …").
    private(set) var lastWorkerFatal: String?
    /// Set when `run` returns `abandoned`: what happened, the workers' error, and what to do.
    private(set) var abandonReason: String?
    /// Set when `run` returns `storeFailed`.
    private(set) var storeFailure: String?

    /// Loads the run's state from the store and starts a new epoch (orphaning active leases).
    init(store: Store, runId: String, provider: any ExampleProvider, options: CoordinatorOptions = CoordinatorOptions()) throws {
        guard let run = try store.run(runId) else { throw CoordinatorError("no run \(runId) in \(store.path)") }
        if run.status == .cancelled { throw CoordinatorError("run \(runId) was cancelled; start a new run") }
        self.store = store
        self.runId = runId
        self.config = run.config
        self.provider = provider
        self.options = options
        heartbeatMs = options.heartbeatMs ?? run.config.heartbeatMs
        leaseTtlMs = options.leaseTtlMs ?? run.config.leaseTtlMs
        for m in config.methods { methods[m.name] = m }
        var examples: [String: [String: Store.ExampleRow]] = [:]
        for e in try store.examples(runId) { examples[e.task, default: [:]][e.id] = e }
        self.examples = examples
        let byOrd = Dictionary(grouping: examples.values.flatMap { $0.values }, by: \.task)
            .mapValues { $0.sorted { $0.ord < $1.ord } }
        let (failureCounts, failed) = try store.failureState(runId)
        let committed = try store.committedKeys(runId)
        let shardRows = try store.shards(runId)
        let openLeases = try store.openLeases(runId)
        let nextLeaseId = try store.maxLeaseId() + 1
        epoch = try store.beginEpoch(runId)
        // Orphaned leases get a grace period of one TTL to be re-adopted (§4.3).
        scheduler = Scheduler(shards: shardRows, keysOf: { s in
            let rows = byOrd[s.task] ?? []
            return rows[s.firstOrd..<min(rows.count, s.firstOrd + s.count)].map { ResultKey(task: s.task, exampleId: $0.id, method: s.method) }
        }, committed: committed, failureCounts: failureCounts, failed: failed, openLeases: openLeases,
           nextLeaseId: nextLeaseId, maxAttempts: config.maxAttempts, graceUntil: monotonicMs() + Int64(leaseTtlMs))
    }

    var isComplete: Bool { scheduler.isComplete }

    // MARK: loop

    /// Runs until the run completes, is cancelled, or `options.stop` is set.
    func run(transport: any ServerTransport) -> RunOutcome {
        try? store.setEndpoint(runId, transport.endpoint)
        let started = monotonicMs()
        var lastHeartbeat: Int64 = 0
        var lastProgress: Int64 = 0
        var lastStatusCheck: Int64 = 0
        var lastGoneCheck: Int64 = 0
        options.log("run \(runId) epoch \(epoch): \(scheduler.committed.count)/\(scheduler.totalKeys) results committed, \(scheduler.failed.count) failed; listening on \(transport.endpoint)")
        while true {
            if options.stop.current {
                flush(transport)
                return .stopped
            }
            if let first = transport.receive(timeoutMs: 10) {
                handle(first, transport)
                var n = 0
                while n < 1024, let next = transport.receive(timeoutMs: 0) {
                    handle(next, transport)
                    n += 1
                }
            }
            flush(transport)
            if case .failed(let why) = sink.health { return stopForStore(why, transport) }
            let now = monotonicMs()
            if sink.shouldRetry(now: now) { retryCommit(transport) }
            if case .failed(let why) = sink.health { return stopForStore(why, transport) }
            let paused = !sink.canCommit
            if !paused {
                for l in scheduler.expired(at: now) {
                    options.log("lease \(l.id) of worker \(l.workerId) expired; reassigning its unfinished examples")
                    failLease(l.id, reason: "lease_expired", transport)
                }
                scheduler.releaseAwaited(now: now)
                applyEffects()
            }
            if now - lastHeartbeat >= Int64(heartbeatMs) {
                lastHeartbeat = now
                for s in workers.all {
                    send(.heartbeat(Heartbeat(state: .coordinator)), to: s.peer, transport)
                    if paused { scheduler.extend(scheduler.leases(of: s.workerId), now: now, ttlMs: leaseTtlMs) }
                }
                dropSilentWorkers(now)
            }
            if !paused { dispatch(transport) }
            if let every = options.progressEveryMs, now - lastProgress >= Int64(every) {
                lastProgress = now
                options.progress(snapshot(elapsedMs: now - started))
            }
            if scheduler.isComplete && sink.isEmpty && !paused {
                finish(transport)
                if let _ = options.progressEveryMs { options.progress(snapshot(elapsedMs: monotonicMs() - started)) }
                return .completed
            }
            if now - lastStatusCheck >= 500 {
                lastStatusCheck = now
                if (try? store.run(runId))??.status == .cancelled {
                    cancelAll(transport)
                    return .cancelled
                }
            }
            if now - lastGoneCheck >= 100, workers.isEmpty, sink.isEmpty {
                lastGoneCheck = now
                if let gone = options.localWorkersGone() {
                    abandon(gone)
                    return .abandoned
                }
            }
        }
    }

    private func header() -> Header {
        seq += 1
        return Header(runId: runId, epoch: epoch, seq: seq)
    }

    @discardableResult
    private func send(_ m: Message, to peer: Data, _ transport: any ServerTransport) -> SendStatus {
        let status = transport.send(to: peer, Framing.encode(m, header: header()))
        if status == .unreachable, let w = workers.worker(at: peer) { workerGone(w, transport, reason: "unreachable") }
        return status
    }

    /// Writes what the scheduler decided (lease and shard states, failures) and logs its notes.
    private func applyEffects() {
        for e in scheduler.takeEffects() {
            switch e {
            case .leaseState(let id, let state):
                tryWrite { try store.setLeaseState(id, state) }
            case .shardState(let shardId, let state, let failures, let split):
                if state == .pending { stats.add(reassigned: 1) }
                tryWrite { try store.setShard(runId: runId, shardId: shardId, state: state, failures: failures, split: split) }
            case .failure(let k, let attempt, let workerId, let errorClass, let message, let final):
                tryWrite { try store.recordFailure(runId: runId, key: k, attempt: attempt, workerId: workerId, errorClass: errorClass,
                                                   message: message, final: final) }
            case .log(let line):
                options.log(line)
            }
        }
    }

    private func handle(_ inbound: Inbound, _ transport: any ServerTransport) {
        let env: Envelope
        do {
            env = try Framing.decode(inbound.frames)
        } catch {
            stats.malformed.record(error)
            if case .incompatibleVersion(let v) = error {
                stats.add(rejected: 1)
                options.log("refused a peer speaking protocol \(v)")
                // Answer in our own version: the peer's decoder will report the mismatch itself.
                send(.reject(Reject(reason: .version, supported: SiriusProtocol.acceptedDescription,
                                    hint: "this coordinator speaks protocol \(SiriusProtocol.version); upgrade or downgrade sirius-worker to a build speaking \(SiriusProtocol.acceptedDescription)")),
                     to: inbound.peer, transport)
            } else {
                options.log("dropped malformed message: \(error)")
            }
            return
        }
        if case .hello(let h) = env.message {
            flush(transport)
            hello(h, version: env.version, peer: inbound.peer, transport)
            return
        }
        guard let workerId = workers.worker(at: inbound.peer) else {
            send(.heartbeat(Heartbeat(state: .helloRequired)), to: inbound.peer, transport)
            return
        }
        let now = monotonicMs()
        workers.heard(from: workerId, now: now)
        scheduler.extend(scheduler.leases(of: workerId), now: now, ttlMs: leaseTtlMs)
        if case .result(let r) = env.message {
            stats.add(received: 1)
            sink.receive(.init(peer: inbound.peer, workerId: workerId, message: r, receivedUs: monotonicUs()))
            return
        }
        flush(transport)
        switch env.message {
        case .ready(let r):
            workers.addCredits(r.credits, to: workerId)
        case .heartbeat:
            break
        case .shardDone(let d):
            if scheduler.lease(d.leaseId)?.workerId == workerId { scheduler.close(d.leaseId, requeueRemaining: true) }
        case .fail(let f):
            fail(f, workerId: workerId)
        case .bye(let b):
            options.log("worker \(workerId) left: \(b.reason)")
            if b.reason.hasPrefix("fatal: ") { lastWorkerFatal = String(b.reason.dropFirst("fatal: ".count)) }
            workerGone(workerId, transport, reason: "bye")
        default:
            stats.malformed.record("unexpected_type")
        }
        applyEffects()
    }

    private func hello(_ h: Hello, version: ProtocolVersion, peer: Data, _ transport: any ServerTransport) {
        func reject(_ reason: RejectReason, _ hint: String) {
            stats.add(rejected: 1)
            options.log("refused worker \(h.workerId) (\(reason.rawValue)): \(hint)")
            send(.reject(Reject(reason: reason, supported: SiriusProtocol.acceptedDescription, hint: hint)), to: peer, transport)
        }
        if let token = options.token, !constantTimeEqual(h.token ?? "", token) {
            return reject(.auth, h.token == nil ? "this coordinator requires a join token (--token-file)" : "wrong join token")
        }
        if !h.engines.contains(config.engine) {
            return reject(.engineUnsupported, "run \(runId) needs engine \(config.engine); this worker offers \(h.engines.joined(separator: ","))")
        }
        if let n = h.numerics, n != config.numerics {
            return reject(.numericsMismatch, "run \(runId) decodes with \(config.numerics) numerics; this worker runs \(n) (start it with --numerics \(config.numerics))")
        }
        let now = monotonicMs()
        if let old = workers.session(h.workerId), old.hello.pid != h.pid || old.hello.hostname != h.hostname,
           now - old.lastSeen < Int64(2 * heartbeatMs) {
            return reject(.duplicateWorkerId, "worker id \(h.workerId) is in use by \(old.hello.hostname) pid \(old.hello.pid)")
        }
        // Results it decoded and has not had acknowledged (a restart re-sends its spool): wait for
        // them instead of leasing them again.
        scheduler.awaitSpooled((h.spooled ?? []).filter { $0.runId == runId && $0.configHash == config.configHash }.map(\.key),
                               until: now + Int64(leaseTtlMs))
        // A reconnect (same id): keep the leases it still holds, requeue the ones it lost.
        let session = WorkerRegistry.Session(workerId: h.workerId, peer: peer, hello: h, lastSeen: now)
        let held = Set(h.heldLeases)
        for id in scheduler.leases(of: h.workerId) where !held.contains(id) {
            scheduler.close(id, requeueRemaining: true, state: .expired)
        }
        var cancels: [Int64] = []
        for id in h.heldLeases {
            if !scheduler.readopt(id, by: h.workerId, now: now, ttlMs: leaseTtlMs) { cancels.append(id) }
        }
        workers.admit(session)
        applyEffects()
        tryWrite { try store.upsertWorker(h, proto: version, state: .connected) }
        send(.welcome(Welcome(sessionId: sessionId, epoch: epoch, minor: min(version.minor, SiriusProtocol.version.minor),
                              heartbeatMs: heartbeatMs, leaseTtlMs: leaseTtlMs, loadTtlMs: config.loadTtlMs,
                              maxResultBytes: SiriusProtocol.maxMessageBytes, shardSize: config.shardSize,
                              configHash: config.configHash)), to: peer, transport)
        for id in cancels { send(.cancel(Cancel(leaseId: id, reason: "expired_reassigned")), to: peer, transport) }
        if !sink.canCommit { send(.pause(Notice(reason: "coordinator store full")), to: peer, transport) }
        options.log("worker \(h.workerId) joined from \(h.hostname) pid \(h.pid) (re-adopted \(h.heldLeases.count - cancels.count) leases)")
    }

    // MARK: results

    /// Commits the buffered results in one transaction, then ACKs them (never the other way round).
    private func flush(_ transport: any ServerTransport) {
        guard !sink.isEmpty, sink.canCommit else { return }
        commitBatch(transport)
    }

    private func commitBatch(_ transport: any ServerTransport) {
        // Results for unknown examples (a confused or hostile peer) are dropped, never stored.
        let known: (ResultSink.Received) -> Bool = { [examples, methods] r in
            examples[r.message.key.task]?[r.message.key.exampleId] != nil && methods[r.message.key.method] != nil
        }
        let before = sink.batch.count
        sink.keep(where: known)
        if sink.batch.count != before { stats.malformed.record("unknown_example") }
        let scored = sink.batch.map { p -> Store.Scored in
            let ex = examples[p.message.key.task]?[p.message.key.exampleId]
            let (extracted, correct) = provider.score(task: p.message.key.task, output: p.message.outcome.text,
                                                      reference: ex?.reference ?? "", exampleJSON: ex?.exampleJSON)
            let lease = scheduler.lease(p.message.leaseId)
            return Store.Scored(message: p.message, workerId: p.workerId, extracted: extracted, correct: correct,
                                late: lease == nil || lease?.workerId != p.workerId)
        }
        let outcomes: [Store.CommitOutcome]
        do {
            outcomes = try store.commit(runId: runId, scored)
        } catch {
            storeRefused(error, transport)
            return
        }
        var acks: [Data: [ResultKey]] = [:]
        var touchedLeases: [Int64] = []
        var ins = 0, dup = 0, conf = 0
        for (p, o) in zip(sink.batch, outcomes) {
            switch o {
            case .inserted: ins += 1; scheduler.stored(p.message.key)
            case .duplicateSame: dup += 1
            case .duplicateConflict: conf += 1
            }
            acks[p.peer, default: []].append(p.message.key)
            touchedLeases.append(p.message.leaseId)
        }
        stats.add(committed: ins, duplicates: dup, conflicts: conf)
        let drop = options.dropAcksAfterCommit.withLock { v -> Bool in
            if v > 0 { v -= 1; return true }
            return false
        }
        if !drop {
            for (peer, keys) in acks { send(.ack(Ack(keys: keys)), to: peer, transport) }
            let now = monotonicUs()
            stats.latency(sink.batch.map { now - $0.receivedUs })
        }
        sink.clear()
        for id in scheduler.leasesFinished(by: touchedLeases) { scheduler.close(id, requeueRemaining: false) }
        applyEffects()
    }

    /// The store refused a write: pause (no ACK; workers keep their results) and retry with
    /// back-off, or fail the run when retrying cannot help.
    private func storeRefused(_ error: any Error, _ transport: any ServerTransport) {
        let before = sink.commitFailed(error, path: store.path, now: monotonicMs())
        stats.setHealth(sink.health)
        guard before == .ok else { return }
        switch sink.health {
        case .paused(let why):
            options.log(why == .diskFull(path: store.path)
                ? "disk full at \(store.path): pausing the run; results stay in worker spools until space is freed"
                : "store error: \(error); pausing the run and retrying")
            // Best effort: with the disk full this write may fail too; the log line above stays.
            tryWrite { try store.setStatus(runId, .paused, note: why.description) }
            let notice = why == .diskFull(path: store.path) ? "disk full at coordinator" : "store error"
            for s in workers.all { send(.pause(Notice(reason: notice)), to: s.peer, transport) }
        case .failed(let why):
            options.log("the run database cannot be written: \(why)")
        case .ok:
            break
        }
    }

    /// Paused and the retry time has come: commit what is waiting; once that works (or nothing was
    /// waiting: the next commit tests the store), the run resumes.
    private func retryCommit(_ transport: any ServerTransport) {
        if !sink.isEmpty {
            commitBatch(transport)
            guard sink.isEmpty else { return }   // refused again: the sink has set the next retry
        }
        guard case .paused = sink.health else { return }
        sink.recovered()
        stats.setHealth(.ok)
        options.log("store writable again: resuming")
        tryWrite { try store.setStatus(runId, .running) }
        for s in workers.all { send(.resume(Notice(reason: "store writable")), to: s.peer, transport) }
    }

    /// The store failed for good: workers are told to stop, the run is left as it is (resumable once
    /// the database is fixed).
    private func stopForStore(_ why: String, _ transport: any ServerTransport) -> RunOutcome {
        storeFailure = why
        for s in workers.all { send(.shutdown(Notice(reason: "coordinator database failed: \(why)")), to: s.peer, transport) }
        Thread.sleep(forTimeInterval: 0.05)
        return .storeFailed
    }

    // MARK: leases

    /// Leases pending work to workers by free slots: a worker gets another lease while the examples
    /// it holds unfinished are fewer than its batch size (so a batch-8 worker keeps 8 in flight plus
    /// at most one shard's worth queued, a batch-1 worker one lease), within the credits it asked for.
    private func dispatch(_ transport: any ServerTransport) {
        if !leasingStarted {
            guard workers.count >= options.waitForWorkers else { return }
            leasingStarted = true
        }
        let hasFreeSlot: (WorkerRegistry.Session) -> Bool = { s in
            self.scheduler.unfinished(of: s.workerId) < WorkerRegistry.slots(s)
        }
        while scheduler.hasPendingWork,
              let wid = workers.nextForLease(hasFreeSlot: hasFreeSlot, leasesHeld: { self.scheduler.leases(of: $0).count }) {
            guard let g = scheduler.grant(to: wid, now: monotonicMs(), ttlMs: leaseTtlMs) else { return }
            let l = g.lease
            do {
                try store.grantLease(runId: runId, leaseId: l.id, shardId: l.shardId, workerId: wid, attempt: l.attempt,
                                     epoch: epoch, expiresAt: Store.now() + Int64(leaseTtlMs), items: l.items)
            } catch {
                scheduler.revoke(g)
                storeRefused(error, transport)
                return
            }
            workers.spendCredit(of: wid)
            stats.add(granted: 1)
            let requests = l.items.map { k -> ExampleRequest in
                let e = examples[k.task]![k.exampleId]!
                return ExampleRequest(task: k.task, exampleId: k.exampleId, input: e.input, method: methods[k.method]!,
                                      seed: exampleSeed(runSeed: config.runSeed, task: k.task, exampleId: k.exampleId),
                                      defaultMaxNewTokens: config.maxNewTokens, timingSample: e.ord < config.timingSample ? true : nil)
            }
            send(.assign(Assign(leaseId: l.id, shardId: l.shardId, attempt: l.attempt, expiresInMs: leaseTtlMs,
                                engine: config.engine, model: config.model, configHash: config.configHash,
                                runSeed: config.runSeed, items: requests, skip: g.skip)),
                 to: workers.session(wid)?.peer ?? Data(), transport)
        }
    }

    /// A lease that ended without finishing (expiry, worker death): counts against its examples,
    /// and the worker (if still connected) is told to drop it.
    private func failLease(_ id: Int64, reason: String, _ transport: any ServerTransport) {
        guard let l = scheduler.lease(id) else { return }
        scheduler.fail(id, reason: reason)
        if let peer = workers.session(l.workerId)?.peer {
            _ = transport.send(to: peer, Framing.encode(.cancel(Cancel(leaseId: id, reason: "expired_reassigned")), header: header()))
        }
    }

    private func fail(_ f: Fail, workerId: String) {
        if f.errorClass == .fatalConfig { lastWorkerFatal = f.message }
        if let k = f.key {
            scheduler.countFailure(k, attempt: scheduler.lease(f.leaseId)?.attempt ?? 0, workerId: workerId,
                                   errorClass: f.errorClass.rawValue, message: f.message)
        } else if scheduler.lease(f.leaseId)?.workerId == workerId {
            options.log("worker \(workerId) cannot run lease \(f.leaseId): \(f.message)")
            scheduler.close(f.leaseId, requeueRemaining: true, state: .cancelled)
        }
    }

    /// A worker's session ends. After BYE its leases are handed back at once (no failure counted).
    /// When its connection is gone ("unreachable") the leases keep their TTL, as for a silent worker:
    /// a connection blip that libzmq heals in milliseconds, followed by a HELLO naming the held leases,
    /// costs nothing; a dead worker's leases expire and count their failures then.
    private func workerGone(_ workerId: String, _ transport: any ServerTransport, reason: String) {
        guard workers.remove(workerId) != nil else { return }
        tryWrite { try store.setWorkerState(workerId, reason == "bye" ? .left : .lost) }
        guard reason == "bye" else { return }
        for id in scheduler.leases(of: workerId) { scheduler.close(id, requeueRemaining: true, state: .cancelled) }
        applyEffects()
    }

    private func dropSilentWorkers(_ now: Int64) {
        for s in workers.silent(now: now, limitMs: max(leaseTtlMs, 4 * heartbeatMs)) {
            workers.remove(s.workerId)
            tryWrite { try store.setWorkerState(s.workerId, .silent) }
            // Its leases expire on their own timers.
        }
    }

    // MARK: end of run

    private func finish(_ transport: any ServerTransport) {
        tryWrite {
            let report = try Metrics.compute(store: store, runId: runId)
            try store.saveMetrics(runId: runId, report.deterministicRows)
            try store.setStatus(runId, .completed)
        }
        for s in workers.all {
            send(.shutdown(Notice(reason: "run \(runId) completed")), to: s.peer, transport)
            tryWrite { try store.setWorkerState(s.workerId, .left) }
        }
        Thread.sleep(forTimeInterval: 0.05)
        options.log("run \(runId) completed: \(scheduler.committed.count) results, \(scheduler.failed.count) failed")
    }

    private func cancelAll(_ transport: any ServerTransport) {
        for id in scheduler.leases.keys.sorted() {
            if let l = scheduler.lease(id), let peer = workers.session(l.workerId)?.peer {
                send(.cancel(Cancel(leaseId: id, reason: "run_cancelled")), to: peer, transport)
            }
        }
        scheduler.releaseAll(state: .cancelled)
        applyEffects()
        for s in workers.all {
            send(.shutdown(Notice(reason: "run \(runId) cancelled")), to: s.peer, transport)
            tryWrite { try store.setWorkerState(s.workerId, .left) }
        }
        Thread.sleep(forTimeInterval: 0.05)
        options.log("run \(runId) cancelled; partial results kept")
    }

    /// Nobody is left to work: unfinished leases are released (not counted as failures, so the run
    /// resumes cleanly) and the reason is kept for the caller.
    private func abandon(_ gone: String) {
        scheduler.releaseAll(state: .cancelled)
        applyEffects()
        let open = scheduler.totalKeys - scheduler.committed.count - scheduler.failed.count
        var reason = "\(gone); no worker is connected, \(open) of \(scheduler.totalKeys) results still to do."
        if let f = lastWorkerFatal { reason += "\nworker error: \(f)" }
        abandonReason = reason
        tryWrite { try store.setStatus(runId, .running, note: "stopped: no workers left\(lastWorkerFatal.map { " (\($0))" } ?? "")") }
        options.log("run \(runId): \(reason)")
    }

    private func snapshot(elapsedMs: Int64) -> ProgressSnapshot {
        ProgressSnapshot(perTask: scheduler.progress(), elapsedS: Double(elapsedMs) / 1000, workers: workers.count, paused: !sink.canCommit)
    }

    private func tryWrite(_ body: () throws -> Void) {
        do { try body() } catch { options.log("store write failed: \(error)") }
    }
}

/// Compares secrets without an early exit on the first differing byte.
func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    var diff = UInt8(x.count == y.count ? 0 : 1)
    for i in 0..<max(x.count, y.count) { diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0) }
    return diff == 0
}
