import Foundation

/// Settings of a worker session.
public struct WorkerOptions: Sendable {
    public var workerId: String = UUID().uuidString.lowercased()
    public var hostname: String = ProcessInfo.processInfo.hostName
    public var pid: Int32 = ProcessInfo.processInfo.processIdentifier
    public var build: String = "dev"
    /// Engines this worker can run (the coordinator refuses a worker without the run's engine).
    public var engines: [String] = ["fake"]
    public var device: String = "cpu"
    /// Join token, sent inside HELLO; only over CURVE (the CLI enforces this).
    public var token: String?
    /// Leases held at once (pull model: `READY credits`); nil: enough to keep `batchSize` examples in
    /// flight (another lease whenever fewer than `batchSize` examples are unfinished, or one lease at
    /// batch size 1).
    public var credits: Int? = nil
    /// Examples the engine decodes at once (reported in HELLO).
    public var batchSize = 1
    /// The engine's numerics (`exact` / `fast`; nil for engines without, the fake one).
    public var numerics: String?
    /// Engine threads (reported in HELLO; nil: not applicable).
    public var threads: Int?
    /// Where decoded, unacknowledged results are kept (fsync'd) until their ACK; a worker restarted
    /// with the same id and directory re-sends them. nil: memory only (lost if the process dies).
    public var spoolDirectory: URL?
    /// No WELCOME within this long after HELLO: reconnect with back-off.
    public var helloTimeoutMs = 2000
    public var backoffInitialMs = 100
    public var backoffMaxMs = 30_000
    /// Give up when no coordinator has answered for this long (nil: never). The error then says
    /// that the handshake failed or the coordinator is unreachable.
    public var giveUpAfterMs: Int? = nil
    /// Unacknowledged results are re-sent after this long.
    public var resendAfterMs = 2000
    /// On drain, how long to wait for the last ACKs before leaving.
    public var drainTimeoutMs = 5000
    /// Coordinator silence (in heartbeat intervals) after which the worker reconnects.
    public var livenessIntervals = 4
    /// Tests: after sending this many results, the I/O thread stops for `ms` (as `freeze(forMs:)`):
    /// the worker then holds decoded results past its lease TTL at a known point (T7, T8).
    public var freezeAfterResults: (count: Int, ms: Int)? = nil
    /// Tests: keep every acknowledged key (`WorkerAgent.acknowledged`); off, nothing grows with the run.
    public var recordAcknowledged = false

    public init() {}
}

/// How a worker session ended.
public enum WorkerExit: Sendable, Equatable, CustomStringConvertible {
    case shutdown(String)
    case drained
    case rejected(Reject)
    case fatal(String)
    case unreachable(String)
    case killed
    case crashed(String)

    public var description: String {
        switch self {
        case .shutdown(let r): "coordinator shut the session down: \(r)"
        case .drained: "drained and left"
        case .rejected(let r): "refused by the coordinator (\(r.reason.rawValue)): \(r.hint); accepted protocol versions: \(r.supported)"
        case .fatal(let m): "fatal: \(m)"
        case .unreachable(let m): m
        case .killed: "killed"
        case .crashed(let m): "crashed: \(m)"
        }
    }

    /// Process exit status for `sirius-worker join`.
    public var exitCode: Int32 {
        switch self {
        case .shutdown, .drained: 0
        case .rejected: 3
        case .fatal: 4
        case .unreachable: 5
        case .killed, .crashed: 6
        }
    }
}

/// The worker side of the protocol (§4.2–4.3): HELLO/WELCOME, pull-based leases, streaming
/// RESULTs kept in a spool until ACKed (on disk with `spoolDirectory`) and re-sent after reconnects
/// and restarts, heartbeats from this I/O thread while the engine decodes on its own thread,
/// back-off reconnects, self-fencing, drain.
public final class WorkerAgent: @unchecked Sendable {
    private let connector: any ClientConnector
    private let factory: EngineFactory
    private let options: WorkerOptions
    private let host = EngineHost()
    private let drainRequested = Locked(false)
    private let killRequested = Locked(false)
    private let exitBox = BlockingQueue<WorkerExit>()
    private let exitValue = Locked<WorkerExit?>(nil)
    private let wakerBox = Locked<(any Waker)?>(nil)
    private let frozenUntilMs = Locked<Int64>(0)
    private let acknowledgedKeys = Locked<Set<SpooledResult>>([])
    public let stats = FrameStats()
    /// Called (on the I/O thread) with human-readable events; for logs.
    public var log: @Sendable (String) -> Void = { _ in }

    public init(connector: any ClientConnector, engine: @escaping EngineFactory, options: WorkerOptions = WorkerOptions()) {
        self.connector = connector
        self.factory = engine
        self.options = options
    }

    public var workerId: String { options.workerId }

    /// Runs the session on a new dedicated thread and returns at once.
    public func start() {
        let t = Thread { [self] in
            let e = self.run()
            self.exitValue.withLock { $0 = e }
            self.exitBox.push(e)
        }
        t.name = "sirius-worker-io"
        t.start()
    }

    /// Waits for the session started by `start()` to end.
    public func waitForExit(timeoutMs: Int) -> WorkerExit? {
        if let e = exitValue.current { return e }
        return exitBox.pop(timeoutMs: timeoutMs) ?? exitValue.current
    }

    /// Graceful drain (SIGTERM): finish the example in progress, flush results, send BYE, leave.
    public func requestDrain() { drainRequested.withLock { $0 = true }; wakerBox.current?.wake() }

    /// Stop at once without a word to the coordinator: the in-process stand-in for `kill -9`.
    public func kill() { killRequested.withLock { $0 = true }; wakerBox.current?.wake() }

    /// The I/O thread stops for `ms` (no heartbeats, no messages read or sent; the engine thread
    /// goes on): the in-process stand-in for SIGSTOP … SIGCONT (T8).
    public func freeze(forMs ms: Int) { frozenUntilMs.withLock { $0 = monotonicMs() + Int64(ms) } }

    /// Results the coordinator has acknowledged to this worker (run, key): what it promised to have
    /// stored (kept only with `WorkerOptions.recordAcknowledged`).
    public var acknowledged: Set<SpooledResult> { acknowledgedKeys.current }

    private struct HeldLease {
        var assign: Assign
        var remaining: Set<ResultKey>
        var done = 0
        var digest = StableHasher()
    }

    private struct SpoolEntry {
        var frames: [Data]
        var lastSentMs: Int64
    }

    // I/O-thread state.
    private var transport: (any ClientTransport)?
    private var seq: UInt64 = 0
    private var epoch = -1
    private var runId = ""
    private var configHash = ""
    private var welcomed = false
    private var everWelcomed = false
    private var heartbeatMs = 1000
    private var leaseTtlMs = 5000
    private var held: [Int64: HeldLease] = [:]
    /// Results sent and not yet acknowledged, of the current run (re-sent after `resendAfterMs`).
    private var spool: [ResultKey: SpoolEntry] = [:]
    /// The same results on disk (nil: memory only), plus what an earlier process left there.
    private var disk: ResultSpool?
    /// Entries found on disk at start, waiting for WELCOME to tell which run this session serves.
    private var restored: [ResultSpool.Entry] = []
    private var coordinatorPaused = false
    private var helloSentMs: Int64 = 0
    /// Leases asked for (READY) and not yet assigned; the coordinator forgets them at a new HELLO.
    private var creditsOut = 0
    private var resultsSent = 0
    /// The engine has produced an output: a batched worker asks for its full set of leases only then, so
    /// a worker whose model cannot load holds one lease, not a batch's worth.
    private var engineProven = false

    /// Runs the session on the calling thread (which must not be a Swift concurrency thread).
    public func run() -> WorkerExit {
        let waker: any Waker
        do { waker = try connector.makeWaker() } catch { return .fatal("cannot create wake-up pipe: \(error)") }
        wakerBox.withLock { $0 = waker }
        if let dir = options.spoolDirectory {
            do { disk = try ResultSpool(directory: dir, log: log) } catch { return .fatal("\(error)") }
            restored = disk!.entries
            if !restored.isEmpty { log("result spool \(dir.path): \(restored.count) unacknowledged results from an earlier session; re-sending them once welcomed") }
        }
        host.start(factory: factory, waker: waker)
        let exit = loop(waker: waker)
        host.stop()
        // A BYE (drain, fatal error) or FAIL just sent must reach the coordinator before the process
        // exits; otherwise it sees a lost worker and counts a failure against every example leased.
        switch exit {
        case .drained, .fatal: transport?.close(flushingWithinMs: 1000)
        default: transport?.close()
        }
        transport = nil
        return exit
    }

    private func header() -> Header {
        seq += 1
        return Header(runId: runId, epoch: max(epoch, 0), seq: seq)
    }

    @discardableResult
    private func send(_ m: Message) -> Bool {
        guard let t = transport else { return false }
        return t.send(Framing.encode(m, header: header()))
    }

    /// HELLO is re-tried until the transport accepts it: with `ZMQ_IMMEDIATE` a send before the
    /// TCP/CURVE handshake completes is refused rather than queued.
    private var helloPending = false

    private func hello() {
        helloPending = !send(.hello(Hello(workerId: options.workerId, hostname: options.hostname, pid: options.pid,
                          build: options.build, engines: options.engines, device: options.device,
                          maxCredits: options.credits ?? options.batchSize + 1, token: options.token,
                          heldLeases: held.keys.sorted(), spoolCount: spool.count + restored.count,
                          numerics: options.numerics, batchSize: options.batchSize, threads: options.threads,
                          spooled: spooledNow())))
        if !helloPending { helloSentMs = monotonicMs() }
    }

    /// Every result held for an ACK, named for HELLO.
    private func spooledNow() -> [SpooledResult] {
        (spool.keys.map { SpooledResult(runId: runId, configHash: configHash, key: $0) }
            + restored.map { SpooledResult(runId: $0.runId, configHash: $0.configHash, key: $0.message.key) })
            .sorted { ($0.runId, $0.key.description) < ($1.runId, $1.key.description) }
    }

    private func loop(waker: any Waker) -> WorkerExit {
        var backoffMs = options.backoffInitialMs
        var lastHeardMs = monotonicMs()
        var lastHeartbeatMs: Int64 = 0
        var nextConnectMs: Int64 = 0
        var draining = false
        var drainStartedMs: Int64 = 0
        let startedMs = monotonicMs()

        while true {
            let now = monotonicMs()
            if killRequested.current { return .killed }
            if now < frozenUntilMs.current {
                Thread.sleep(forTimeInterval: 0.005)
                continue
            }

            // Draining while disconnected: nothing can be flushed, so leave now (the coordinator
            // re-leases whatever was not acknowledged).
            if transport == nil && drainRequested.current { return .drained }

            // (Re)connect.
            if transport == nil {
                if now < nextConnectMs {
                    Thread.sleep(forTimeInterval: Double(min(50, nextConnectMs - now)) / 1000)
                    continue
                }
                do { transport = try connector.connect(identity: options.workerId, waker: waker) } catch {
                    return .fatal("cannot connect: \(error)")
                }
                welcomed = false
                helloSentMs = now
                hello()
            } else if helloPending && !welcomed {
                hello()
            }

            // Give up if nobody ever answers (wrong server key, wrong address).
            if let limit = options.giveUpAfterMs, now - lastHeardMs > limit {
                return .unreachable(everWelcomed
                    ? "coordinator silent for \(limit) ms; giving up"
                    : "handshake failed: server key mismatch or coordinator unreachable (no answer in \(limit) ms)")
            }

            let timeout = welcomed ? min(heartbeatMs, 100) : 50
            if let frames = transport?.receive(timeoutMs: timeout) {
                switch Result(catching: { () throws(FrameError) -> Envelope in try Framing.decode(frames) }) {
                case .failure(let e):
                    stats.record(e)
                    log("dropped malformed message: \(e)")
                case .success(let env):
                    lastHeardMs = monotonicMs()
                    if let exit = handle(env) { return exit }
                }
            }
            if killRequested.current { return .killed }

            // Engine outputs → spool and RESULT/FAIL/SHARD_DONE.
            while let out = host.outputs.popNow() {
                if let exit = handle(out) { return exit }
            }

            let t = monotonicMs()
            if !welcomed {
                if t - helloSentMs > Int64(options.helloTimeoutMs) {
                    // No WELCOME: recreate the socket after a back-off (a ZMQ socket whose
                    // handshake failed never recovers by itself).
                    transport?.close(); transport = nil
                    nextConnectMs = t + Int64(backoffMs)
                    log("no WELCOME after \(options.helloTimeoutMs) ms; reconnecting in \(backoffMs) ms")
                    backoffMs = min(backoffMs * 2, options.backoffMaxMs)
                }
            } else {
                if t - lastHeartbeatMs >= Int64(heartbeatMs) {
                    let state: WorkerState = draining ? .draining : host.state.current
                    send(.heartbeat(Heartbeat(state: state, leases: held.values.map {
                        LeaseProgress(leaseId: $0.assign.leaseId, done: $0.done) }.sorted { $0.leaseId < $1.leaseId })))
                    lastHeartbeatMs = t
                }
                for (k, e) in spool where t - e.lastSentMs > Int64(options.resendAfterMs) {
                    transport?.send(e.frames)
                    spool[k]?.lastSentMs = t
                }
                if t - lastHeardMs > Int64(heartbeatMs * options.livenessIntervals) {
                    log("coordinator silent for \(t - lastHeardMs) ms; reconnecting")
                    transport?.close(); transport = nil; welcomed = false
                    nextConnectMs = t + Int64(backoffMs)
                    backoffMs = min(backoffMs * 2, options.backoffMaxMs)
                }
            }
            if welcomed { backoffMs = options.backoffInitialMs }
            // Self-fencing: after a lease TTL of silence our leases are probably reassigned.
            host.setPaused(coordinatorPaused || (!welcomed && t - lastHeardMs > Int64(leaseTtlMs)))

            // Drain.
            if drainRequested.current && !draining {
                draining = true
                drainStartedMs = t
                host.stop()
                log("draining: finishing the example in progress")
            }
            if draining {
                let engineDone = host.isIdle && host.outputs.count == 0
                if engineDone && (spool.isEmpty || t - drainStartedMs > Int64(options.drainTimeoutMs) || !welcomed) {
                    if welcomed { send(.bye(Bye(reason: "drain"))) }
                    return .drained
                }
            }
            _ = startedMs
        }
    }

    private func handle(_ env: Envelope) -> WorkerExit? {
        if welcomed, env.header.epoch != epoch, env.message.type != .welcome, env.message.type != .reject {
            // The coordinator restarted behind the same address: introduce ourselves again.
            log("coordinator epoch changed \(epoch) → \(env.header.epoch); sending HELLO again")
            welcomed = false
            hello()
            return nil
        }
        switch env.message {
        case .welcome(let w):
            welcomed = true
            everWelcomed = true
            epoch = w.epoch
            runId = env.header.runId
            configHash = w.configHash ?? ""
            heartbeatMs = max(10, w.heartbeatMs)
            leaseTtlMs = w.leaseTtlMs
            creditsOut = 0
            // What an earlier process of this worker decoded for this run goes out first.
            let ours: (ResultSpool.Entry) -> Bool = { $0.runId == self.runId && $0.configHash == self.configHash }
            let mine = restored.filter(ours)
            restored.removeAll(where: ours)
            for e in mine {
                spool[e.message.key] = SpoolEntry(frames: Framing.encode(.result(e.message), header: header()), lastSentMs: 0)
            }
            let now = monotonicMs()
            for (k, e) in spool { transport?.send(e.frames); spool[k]?.lastSentMs = now }
            askForLeases()
        case .reject(let r):
            return .rejected(r)
        case .assign(let a):
            var lease = HeldLease(assign: a, remaining: Set(a.items.map(\.key)))
            lease.done = 0
            creditsOut = max(0, creditsOut - 1)
            held[a.leaseId] = lease
            for item in a.items {
                host.jobs.push(EngineHost.Job(leaseId: a.leaseId, attempt: a.attempt, model: a.model, configHash: a.configHash, request: item))
            }
            if a.items.isEmpty { finishLease(a.leaseId) }
        case .ack(let a):
            for k in a.keys where spool.removeValue(forKey: k) != nil {
                disk?.remove(runId: runId, key: k)
            }
            if options.recordAcknowledged {
                acknowledgedKeys.withLock { set in for k in a.keys { set.insert(SpooledResult(runId: runId, configHash: configHash, key: k)) } }
            }
        case .cancel(let c):
            host.cancel(lease: c.leaseId)
            if held.removeValue(forKey: c.leaseId) != nil { askForLeases() }
        case .pause:
            coordinatorPaused = true
        case .resume:
            coordinatorPaused = false
        case .shutdown(let n):
            if !spool.isEmpty { log("shutdown with \(spool.count) unacknowledged results") }
            return .shutdown(n.reason)
        case .heartbeat(let hb):
            if hb.state == .helloRequired {
                welcomed = false
                hello()
            }
        case .hello, .ready, .result, .shardDone, .fail, .bye:
            break
        }
        return nil
    }

    private func handle(_ out: EngineHost.Output) -> WorkerExit? {
        switch out {
        case .done(let job, let outcome, let engine, let device):
            let msg = ResultMessage(leaseId: job.leaseId, attempt: job.attempt, key: job.request.key,
                                    engine: engine, device: device, outcome: outcome)
            let frames = Framing.encode(.result(msg), header: header())
            // On disk before it leaves: a worker killed from here on re-sends it when restarted.
            do { try disk?.append(runId: runId, configHash: job.configHash, msg) } catch { log("result spool: \(error); \(job.request.key) is kept in memory only") }
            spool[job.request.key] = SpoolEntry(frames: frames, lastSentMs: monotonicMs())
            if welcomed { transport?.send(frames) }
            resultsSent += 1
            if let f = options.freezeAfterResults, resultsSent == f.count { freeze(forMs: f.ms) }
            engineProven = true
            progress(job, hash: msg.resultHash)
            askForLeases()
        case .failed(let job, let cls, let message):
            if welcomed { send(.fail(Fail(leaseId: job.leaseId, key: job.request.key, errorClass: cls, message: message))) }
            engineProven = true
            progress(job, hash: "fail")
            askForLeases()
        case .skipped:
            break
        case .fatal(let m):
            for id in held.keys.sorted() where welcomed {
                send(.fail(Fail(leaseId: id, key: nil, errorClass: .fatalConfig, message: m)))
            }
            if welcomed { send(.bye(Bye(reason: "fatal: \(m)"))) }
            return .fatal(m)
        case .crashed(let m):
            return .crashed(m)
        }
        return nil
    }

    private func progress(_ job: EngineHost.Job, hash: String) {
        guard var lease = held[job.leaseId] else { return }
        lease.remaining.remove(job.request.key)
        lease.done += 1
        lease.digest.combine(job.request.key.description)
        held[job.leaseId] = lease
        if lease.remaining.isEmpty { finishLease(job.leaseId) }
    }

    private func finishLease(_ id: Int64) {
        guard let lease = held.removeValue(forKey: id) else { return }
        if welcomed {
            send(.shardDone(ShardDone(leaseId: id, nResults: lease.done, digest: lease.digest.hex)))
        }
        askForLeases()
    }

    /// Keeps `credits` leases held or asked for; automatic (no `credits`): one lease until the engine has
    /// produced an output or at batch size 1, else one more whenever fewer than the batch size of
    /// examples are unfinished — counted in examples, not leases, so that a lease waiting on its last,
    /// long examples does not keep the batch from filling (the coordinator grants on the same count).
    private func askForLeases() {
        guard welcomed, !drainRequested.current else { return }
        let missing: Int
        if let credits = options.credits {
            missing = credits - held.count - creditsOut
        } else if !engineProven || options.batchSize <= 1 {
            missing = 1 - held.count - creditsOut
        } else {
            let unfinished = held.values.reduce(0) { $0 + $1.remaining.count }
            missing = (unfinished < options.batchSize ? 1 : 0) - creditsOut
        }
        guard missing > 0 else { return }
        if send(.ready(Ready(credits: missing))) { creditsOut += missing }
    }
}
