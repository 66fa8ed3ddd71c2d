import Foundation
import GRDB
import SiriusProtocol

/// How a coordinator loop ended.
/// `abandoned`: nobody was left to do the work (every local worker exited for good and no worker
/// is connected); `Coordinator.abandonReason` says why. The run stays resumable.
enum RunOutcome: String, Sendable { case completed, cancelled, stopped, abandoned }

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
    fileprivate func setPaused(_ p: Bool) { update { $0.paused = p } }
}

/// Per-task progress for the live display.
struct ProgressSnapshot: Sendable {
    var perTask: [(task: String, done: Int, failed: Int, total: Int)]
    var elapsedS: Double
    var workers: Int
    var paused: Bool
}

/// The scheduler (§4.3): one thread owns the ROUTER socket, the lease table and the store's
/// write path. Results are committed in batches, then ACKed (§4.4); leases expire on the
/// monotonic clock; a shard failing twice is split into single examples; an example failing
/// `maxAttempts` times is declared failed.
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

    private struct ShardEntry {
        var row: Store.ShardRow
        var keys: [ResultKey]
        var failures: Int
        var split: Bool
        var attempts: Int
    }

    private enum Unit { case shard(Int), single(Int, ResultKey) }

    private struct LeaseEntry {
        var id: Int64
        var shardId: Int
        var workerId: String
        var items: [ResultKey]
        var attempt: Int
        var expiresAt: Int64
    }

    private struct Session {
        var workerId: String
        var peer: Data
        var hello: Hello
        var credits = 0
        var lastSeen: Int64
        var leases: Set<Int64> = []
    }

    private struct PendingResult {
        var peer: Data
        var workerId: String
        var message: ResultMessage
        var receivedUs: Int64
    }

    private var shards: [Int: ShardEntry] = [:]
    private var pending: [Unit] = []
    private var leases: [Int64: LeaseEntry] = [:]
    private var sessions: [String: Session] = [:]
    private var peerToWorker: [Data: String] = [:]
    private var committed: Set<ResultKey> = []
    private var failed: Set<ResultKey> = []
    private var failureCounts: [ResultKey: Int] = [:]
    /// Results a reconnecting worker said it holds decoded (HELLO `spooled`), with the time by which
    /// they must arrive: not leased again until then (after it, leased as usual).
    private var awaitingSpool: [ResultKey: Int64] = [:]
    private var shardOf: [ResultKey: Int] = [:]
    private var examples: [String: [String: Store.ExampleRow]] = [:]
    private var methods: [String: MethodSpec] = [:]
    private var totalKeys = 0
    private var keysPerTask: [String: Int] = [:]
    private var nextLeaseId: Int64 = 0
    private var seq: UInt64 = 0
    private var batch: [PendingResult] = []
    private var paused = false
    private var retrying = false
    private var retryAtMs: Int64 = 0
    private var retryBackoffMs: Int64 = 100
    private let sessionId = UUID().uuidString.lowercased()
    /// The last fatal error a worker reported (FAIL fatal_config or BYE "fatal: …").
    private(set) var lastWorkerFatal: String?
    /// Set when `run` returns `abandoned`: what happened, the workers' error, and what to do.
    private(set) var abandonReason: String?

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
        for e in try store.examples(runId) { examples[e.task, default: [:]][e.id] = e }
        let byOrd = Dictionary(grouping: examples.values.flatMap { $0.values }, by: \.task)
            .mapValues { $0.sorted { $0.ord < $1.ord } }
        committed = try store.committedKeys(runId)
        (failureCounts, failed) = try store.failureState(runId)
        for s in try store.shards(runId) {
            let rows = byOrd[s.task] ?? []
            let keys = rows[s.firstOrd..<min(rows.count, s.firstOrd + s.count)].map {
                ResultKey(task: s.task, exampleId: $0.id, method: s.method)
            }
            shards[s.shardId] = ShardEntry(row: s, keys: keys, failures: s.failures, split: s.split, attempts: s.attempts)
            for k in keys { shardOf[k] = s.shardId }
            totalKeys += keys.count
            keysPerTask[s.task, default: 0] += keys.count
        }
        epoch = try store.beginEpoch(runId)
        nextLeaseId = try store.maxLeaseId() + 1
        // Orphaned leases get a grace period of one TTL to be re-adopted (§4.3).
        let now = monotonicMs()
        var leased: Set<ResultKey> = []
        for l in try store.openLeases(runId) {
            leases[l.leaseId] = LeaseEntry(id: l.leaseId, shardId: l.shardId, workerId: l.workerId, items: l.items,
                                           attempt: l.attempt, expiresAt: now + Int64(leaseTtlMs))
            leased.formUnion(l.items)
        }
        for id in shards.keys.sorted() {
            let s = shards[id]!
            let open = s.keys.filter { !committed.contains($0) && !failed.contains($0) && !leased.contains($0) }
            if open.isEmpty { continue }
            if s.split { pending += open.map { .single(id, $0) } } else { pending.append(.shard(id)) }
        }
    }

    var isComplete: Bool { committed.count + failed.count >= totalKeys }

    // MARK: loop

    /// Runs until the run completes, is cancelled, or `options.stop` is set.
    func run(transport: any ServerTransport) -> RunOutcome {
        try? store.setEndpoint(runId, transport.endpoint)
        let started = monotonicMs()
        var lastHeartbeat: Int64 = 0
        var lastProgress: Int64 = 0
        var lastStatusCheck: Int64 = 0
        var lastGoneCheck: Int64 = 0
        options.log("run \(runId) epoch \(epoch): \(committed.count)/\(totalKeys) results committed, \(failed.count) failed; listening on \(transport.endpoint)")
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
            let now = monotonicMs()
            if paused { retryPaused(transport, now) }
            if !paused { expireLeases(transport, now); releaseAwaitedResults(now) }
            if now - lastHeartbeat >= Int64(heartbeatMs) {
                lastHeartbeat = now
                for s in sessions.values {
                    send(.heartbeat(Heartbeat(state: .coordinator)), to: s.peer, transport)
                    if paused { extendLeases(of: s.workerId, now) }
                }
                dropSilentWorkers(now)
            }
            if !paused { dispatch(transport) }
            if let every = options.progressEveryMs, now - lastProgress >= Int64(every) {
                lastProgress = now
                options.progress(snapshot(elapsedMs: now - started))
            }
            if isComplete && batch.isEmpty && !paused {
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
            if now - lastGoneCheck >= 100, sessions.isEmpty, batch.isEmpty {
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
        if status == .unreachable, let w = peerToWorker[peer] { workerGone(w, transport, reason: "unreachable") }
        return status
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
        guard let workerId = peerToWorker[inbound.peer], sessions[workerId] != nil else {
            send(.heartbeat(Heartbeat(state: .helloRequired)), to: inbound.peer, transport)
            return
        }
        let now = monotonicMs()
        sessions[workerId]?.lastSeen = now
        extendLeases(of: workerId, now)
        switch env.message {
        case .result(let r):
            stats.add(received: 1)
            batch.append(PendingResult(peer: inbound.peer, workerId: workerId, message: r, receivedUs: monotonicUs()))
            return
        default:
            break
        }
        flush(transport)
        switch env.message {
        case .ready(let r):
            if var s = sessions[workerId] {
                s.credits = min(max(0, s.credits + r.credits), max(1, s.hello.maxCredits))
                sessions[workerId] = s
            }
        case .heartbeat:
            break
        case .shardDone(let d):
            if let l = leases[d.leaseId], l.workerId == workerId { closeLease(d.leaseId, requeueRemaining: true) }
        case .fail(let f):
            fail(f, workerId: workerId, transport)
        case .bye(let b):
            options.log("worker \(workerId) left: \(b.reason)")
            if b.reason.hasPrefix("fatal: ") { lastWorkerFatal = String(b.reason.dropFirst("fatal: ".count)) }
            workerGone(workerId, transport, reason: "bye")
        default:
            stats.malformed.record("unexpected_type")
        }
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
        if let old = sessions[h.workerId], old.hello.pid != h.pid || old.hello.hostname != h.hostname,
           now - old.lastSeen < Int64(2 * heartbeatMs) {
            return reject(.duplicateWorkerId, "worker id \(h.workerId) is in use by \(old.hello.hostname) pid \(old.hello.pid)")
        }
        // Results it decoded and has not had acknowledged (a restart re-sends its spool): wait for
        // them instead of leasing them again.
        for r in h.spooled ?? [] where r.runId == runId && r.configHash == config.configHash && shardOf[r.key] != nil && !committed.contains(r.key) && !failed.contains(r.key) {
            awaitingSpool[r.key] = now + Int64(leaseTtlMs)
        }
        // A reconnect (same id): keep the leases it still holds, requeue the ones it lost.
        let previous = sessions[h.workerId]
        if let previous { peerToWorker[previous.peer] = nil }
        var session = Session(workerId: h.workerId, peer: peer, hello: h, lastSeen: now)
        let held = Set(h.heldLeases)
        for (id, l) in leases where l.workerId == h.workerId && !held.contains(id) {
            closeLease(id, requeueRemaining: true, state: .expired)
        }
        var cancels: [Int64] = []
        for id in h.heldLeases {
            if var l = leases[id], l.workerId == h.workerId {
                l.expiresAt = now + Int64(leaseTtlMs)
                leases[id] = l
                session.leases.insert(id)
                tryWrite { try store.setLeaseState(id, .active) }
            } else {
                cancels.append(id)
            }
        }
        sessions[h.workerId] = session
        peerToWorker[peer] = h.workerId
        tryWrite { try store.upsertWorker(h, proto: version, state: .connected) }
        send(.welcome(Welcome(sessionId: sessionId, epoch: epoch, minor: min(version.minor, SiriusProtocol.version.minor),
                              heartbeatMs: heartbeatMs, leaseTtlMs: leaseTtlMs, loadTtlMs: config.loadTtlMs,
                              maxResultBytes: SiriusProtocol.maxMessageBytes, shardSize: config.shardSize,
                              configHash: config.configHash)), to: peer, transport)
        for id in cancels { send(.cancel(Cancel(leaseId: id, reason: "expired_reassigned")), to: peer, transport) }
        if paused { send(.pause(Notice(reason: "coordinator store full")), to: peer, transport) }
        options.log("worker \(h.workerId) joined from \(h.hostname) pid \(h.pid) (re-adopted \(session.leases.count) leases)")
    }

    private func extendLeases(of workerId: String, _ now: Int64) {
        guard let s = sessions[workerId] else { return }
        for id in s.leases { leases[id]?.expiresAt = now + Int64(leaseTtlMs) }
    }

    // MARK: results

    /// Commits the buffered results in one transaction, then ACKs them (never the other way round).
    private func flush(_ transport: any ServerTransport) {
        guard !batch.isEmpty, !paused else { return }
        let scored = batch.map { p -> Store.Scored in
            let ex = examples[p.message.key.task]?[p.message.key.exampleId]
            let (extracted, correct) = provider.score(task: p.message.key.task, output: p.message.outcome.text,
                                                      reference: ex?.reference ?? "", exampleJSON: ex?.exampleJSON)
            let lease = leases[p.message.leaseId]
            return Store.Scored(message: p.message, workerId: p.workerId, extracted: extracted, correct: correct,
                                late: lease == nil || lease?.workerId != p.workerId)
        }
        let outcomes: [Store.CommitOutcome]
        do {
            // Results for unknown examples (a confused or hostile peer) are dropped, never stored.
            let valid = scored.filter { examples[$0.message.key.task]?[$0.message.key.exampleId] != nil && methods[$0.message.key.method] != nil }
            if valid.count != scored.count { stats.malformed.record("unknown_example") }
            let validKeys = Set(valid.map(\.message.key))
            batch.removeAll { !validKeys.contains($0.message.key) }
            outcomes = try store.commit(runId: runId, valid)
        } catch {
            enterPause(transport, error)
            return
        }
        var acks: [Data: [ResultKey]] = [:]
        var touchedLeases: Set<Int64> = []
        var ins = 0, dup = 0, conf = 0
        for (p, o) in zip(batch, outcomes) {
            switch o {
            case .inserted: ins += 1; committed.insert(p.message.key); failed.remove(p.message.key); awaitingSpool[p.message.key] = nil
            case .duplicateSame: dup += 1
            case .duplicateConflict: conf += 1
            }
            acks[p.peer, default: []].append(p.message.key)
            touchedLeases.insert(p.message.leaseId)
        }
        stats.add(committed: ins, duplicates: dup, conflicts: conf)
        let drop = options.dropAcksAfterCommit.withLock { v -> Bool in
            if v > 0 { v -= 1; return true }
            return false
        }
        if !drop {
            for (peer, keys) in acks { send(.ack(Ack(keys: keys)), to: peer, transport) }
            let now = monotonicUs()
            stats.latency(batch.map { now - $0.receivedUs })
        }
        batch.removeAll(keepingCapacity: true)
        for id in touchedLeases {
            if let l = leases[id], l.items.allSatisfy({ committed.contains($0) || failed.contains($0) }) {
                closeLease(id, requeueRemaining: false)
            }
        }
    }

    private func enterPause(_ transport: any ServerTransport, _ error: any Error) {
        let full = (error as? DatabaseError)?.isDiskFull ?? false
        defer { paused = true }
        if !paused && !retrying {
            options.log(full ? "disk full at \(store.path): pausing the run; results stay in worker spools until space is freed"
                             : "store error: \(error); pausing the run and retrying")
            paused = true
            stats.setPaused(true)
            retryBackoffMs = 100
            // Best effort: with the disk full this write may fail too; the log line above stays.
            tryWrite { try store.setStatus(runId, .paused, note: full ? "disk full at \(store.path)" : "store error: \(error)") }
            for s in sessions.values { send(.pause(Notice(reason: full ? "disk full at coordinator" : "store error")), to: s.peer, transport) }
        }
        retryAtMs = monotonicMs() + retryBackoffMs
        retryBackoffMs = min(retryBackoffMs * 2, 5000)
    }

    private func retryPaused(_ transport: any ServerTransport, _ now: Int64) {
        guard now >= retryAtMs else { return }
        paused = false
        retrying = true
        flush(transport)
        retrying = false
        if !paused {
            options.log("store writable again: resuming")
            stats.setPaused(false)
            tryWrite { try store.setStatus(runId, .running) }
            for s in sessions.values { send(.resume(Notice(reason: "store writable")), to: s.peer, transport) }
        }
    }

    // MARK: leases

    private func dispatch(_ transport: any ServerTransport) {
        while !pending.isEmpty {
            guard let wid = sessions.values.filter({ $0.credits > 0 })
                .max(by: { ($0.credits, -$0.leases.count, $1.workerId) < ($1.credits, -$1.leases.count, $0.workerId) })?.workerId
            else { return }
            let unit = pending.removeFirst()
            let shardId: Int
            let items: [ResultKey]
            switch unit {
            case .shard(let id):
                shardId = id
                let busy = Set(leases.values.filter { $0.shardId == id }.flatMap(\.items))
                items = shards[id]!.keys.filter { !committed.contains($0) && !failed.contains($0) && !busy.contains($0) && awaitingSpool[$0] == nil }
            case .single(let id, let k):
                shardId = id
                items = committed.contains(k) || failed.contains(k) || awaitingSpool[k] != nil ? [] : [k]
            }
            if items.isEmpty { continue }
            let skip = shards[shardId]!.keys.filter { committed.contains($0) }
            let leaseId = nextLeaseId
            nextLeaseId += 1
            shards[shardId]!.attempts += 1
            let attempt = shards[shardId]!.attempts
            let expires = monotonicMs() + Int64(leaseTtlMs)
            do {
                try store.grantLease(runId: runId, leaseId: leaseId, shardId: shardId, workerId: wid, attempt: attempt,
                                     epoch: epoch, expiresAt: Store.now() + Int64(leaseTtlMs), items: items)
            } catch {
                pending.insert(unit, at: 0)
                enterPause(transport, error)
                return
            }
            leases[leaseId] = LeaseEntry(id: leaseId, shardId: shardId, workerId: wid, items: items, attempt: attempt, expiresAt: expires)
            sessions[wid]!.credits -= 1
            sessions[wid]!.leases.insert(leaseId)
            stats.add(granted: 1)
            let requests = items.map { k -> ExampleRequest in
                let e = examples[k.task]![k.exampleId]!
                return ExampleRequest(task: k.task, exampleId: k.exampleId, prompt: e.prompt, stop: e.stop,
                                      maxNewTokens: e.maxNewTokens ?? config.maxNewTokens, method: methods[k.method]!,
                                      seed: exampleSeed(runSeed: config.runSeed, task: k.task, exampleId: k.exampleId),
                                      promptSegments: e.promptSegments, addBOS: e.addBOS, chat: e.chat,
                                      maxTotalTokens: e.maxTotalTokens,
                                      timingSample: e.ord < config.timingSample ? true : nil)
            }
            send(.assign(Assign(leaseId: leaseId, shardId: shardId, attempt: attempt, expiresInMs: leaseTtlMs,
                                engine: config.engine, model: config.model, configHash: config.configHash,
                                runSeed: config.runSeed, items: requests, skip: skip)),
                 to: sessions[wid]?.peer ?? Data(), transport)
        }
    }

    /// Closes a lease. `requeueRemaining`: examples neither committed nor failed go back to pending.
    private func closeLease(_ id: Int64, requeueRemaining: Bool, state: LeaseState = .completed) {
        guard let l = leases.removeValue(forKey: id) else { return }
        sessions[l.workerId]?.leases.remove(id)
        let remaining = l.items.filter { !committed.contains($0) && !failed.contains($0) }
        let finalState: LeaseState = remaining.isEmpty ? .completed : state
        tryWrite { try store.setLeaseState(id, finalState) }
        if requeueRemaining && !remaining.isEmpty { requeue(l.shardId, remaining) }
        if remaining.isEmpty, let s = shards[l.shardId], s.keys.allSatisfy({ committed.contains($0) || failed.contains($0) }) {
            tryWrite { try store.setShard(runId: runId, shardId: l.shardId, state: s.keys.allSatisfy { committed.contains($0) } ? .done : .failed,
                                          failures: s.failures, split: s.split) }
        }
    }

    private func requeue(_ shardId: Int, _ keys: [ResultKey]) {
        guard let s = shards[shardId] else { return }
        stats.add(reassigned: 1)
        if s.split {
            pending.insert(contentsOf: keys.map { .single(shardId, $0) }, at: 0)
        } else {
            pending.insert(.shard(shardId), at: 0)
        }
        tryWrite { try store.setShard(runId: runId, shardId: shardId, state: .pending, failures: s.failures, split: s.split) }
    }

    /// A lease that ended without finishing (expiry, worker death): counts against its examples.
    private func failLease(_ id: Int64, reason: String, _ transport: any ServerTransport) {
        guard let l = leases[id] else { return }
        let remaining = l.items.filter { !committed.contains($0) && !failed.contains($0) }
        if var s = shards[l.shardId] {
            s.failures += 1
            if s.failures >= 2 { s.split = true }
            shards[l.shardId] = s
        }
        for k in remaining { countFailure(k, attempt: l.attempt, workerId: l.workerId, errorClass: reason, message: "lease \(id) \(reason)") }
        closeLease(id, requeueRemaining: true, state: .expired)
        if let peer = sessions[l.workerId]?.peer {
            _ = transport.send(to: peer, Framing.encode(.cancel(Cancel(leaseId: id, reason: "expired_reassigned")), header: header()))
        }
    }

    private func countFailure(_ k: ResultKey, attempt: Int, workerId: String, errorClass: String, message: String) {
        failureCounts[k, default: 0] += 1
        tryWrite { try store.recordFailure(runId: runId, key: k, attempt: attempt, workerId: workerId, errorClass: errorClass,
                                           message: message, final: false) }
        if failureCounts[k]! >= config.maxAttempts {
            failed.insert(k)
            options.log("example \(k) failed \(failureCounts[k]!) times: declared failed (\(message))")
            tryWrite { try store.recordFailure(runId: runId, key: k, attempt: attempt, workerId: workerId, errorClass: errorClass,
                                               message: "declared failed after \(failureCounts[k]!) attempts: \(message)", final: true) }
        }
    }

    private func fail(_ f: Fail, workerId: String, _ transport: any ServerTransport) {
        if f.errorClass == .fatalConfig { lastWorkerFatal = f.message }
        if let k = f.key {
            guard !committed.contains(k), !failed.contains(k) else { return }
            countFailure(k, attempt: leases[f.leaseId]?.attempt ?? 0, workerId: workerId, errorClass: f.errorClass.rawValue, message: f.message)
        } else if leases[f.leaseId]?.workerId == workerId {
            options.log("worker \(workerId) cannot run lease \(f.leaseId): \(f.message)")
            closeLease(f.leaseId, requeueRemaining: true, state: .cancelled)
        }
    }

    /// Awaited spooled results that did not arrive in time go back to the queue.
    private func releaseAwaitedResults(_ now: Int64) {
        guard !awaitingSpool.isEmpty else { return }
        for (k, deadline) in awaitingSpool where deadline < now {
            awaitingSpool[k] = nil
            if !committed.contains(k), !failed.contains(k), let shard = shardOf[k] {
                options.log("result \(k) announced by a worker's spool did not arrive; leasing it again")
                requeue(shard, [k])
            }
        }
    }

    private func expireLeases(_ transport: any ServerTransport, _ now: Int64) {
        for (id, l) in leases where l.expiresAt < now {
            options.log("lease \(id) of worker \(l.workerId) expired; reassigning its unfinished examples")
            failLease(id, reason: "lease_expired", transport)
        }
    }

    private func workerGone(_ workerId: String, _ transport: any ServerTransport, reason: String) {
        guard let s = sessions.removeValue(forKey: workerId) else { return }
        peerToWorker[s.peer] = nil
        tryWrite { try store.setWorkerState(workerId, reason == "bye" ? .left : .lost) }
        for id in s.leases {
            if reason == "bye" {
                closeLease(id, requeueRemaining: true, state: .cancelled)
            } else {
                failLease(id, reason: "worker_lost", transport)
            }
        }
    }

    private func dropSilentWorkers(_ now: Int64) {
        for (w, s) in sessions where now - s.lastSeen > Int64(max(leaseTtlMs, 4 * heartbeatMs)) {
            sessions[w] = nil
            peerToWorker[s.peer] = nil
            tryWrite { try store.setWorkerState(w, .silent) }
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
        for s in sessions.values {
            send(.shutdown(Notice(reason: "run \(runId) completed")), to: s.peer, transport)
            tryWrite { try store.setWorkerState(s.workerId, .left) }
        }
        Thread.sleep(forTimeInterval: 0.05)
        options.log("run \(runId) completed: \(committed.count) results, \(failed.count) failed")
    }

    private func cancelAll(_ transport: any ServerTransport) {
        for (id, l) in leases {
            if let peer = sessions[l.workerId]?.peer {
                send(.cancel(Cancel(leaseId: id, reason: "run_cancelled")), to: peer, transport)
            }
            tryWrite { try store.setLeaseState(id, .cancelled) }
        }
        leases.removeAll()
        for s in sessions.values {
            send(.shutdown(Notice(reason: "run \(runId) cancelled")), to: s.peer, transport)
            tryWrite { try store.setWorkerState(s.workerId, .left) }
        }
        Thread.sleep(forTimeInterval: 0.05)
        options.log("run \(runId) cancelled; partial results kept")
    }

    /// Nobody is left to work: unfinished leases are released (not counted as failures, so the run
    /// resumes cleanly) and the reason is kept for the caller.
    private func abandon(_ gone: String) {
        for id in Array(leases.keys) { closeLease(id, requeueRemaining: true, state: .cancelled) }
        let open = totalKeys - committed.count - failed.count
        var reason = "\(gone); no worker is connected, \(open) of \(totalKeys) results still to do."
        if let f = lastWorkerFatal { reason += "\nworker error: \(f)" }
        abandonReason = reason
        tryWrite { try store.setStatus(runId, .running, note: "stopped: no workers left\(lastWorkerFatal.map { " (\($0))" } ?? "")") }
        options.log("run \(runId): \(reason)")
    }

    private func snapshot(elapsedMs: Int64) -> ProgressSnapshot {
        var done: [String: Int] = [:], bad: [String: Int] = [:]
        for k in committed { done[k.task, default: 0] += 1 }
        for k in failed { bad[k.task, default: 0] += 1 }
        return ProgressSnapshot(perTask: keysPerTask.keys.sorted().map { ($0, done[$0] ?? 0, bad[$0] ?? 0, keysPerTask[$0]!) },
                                elapsedS: Double(elapsedMs) / 1000, workers: sessions.count, paused: paused)
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
