import ArgumentParser
import Foundation
import SiriusMethod
import SiriusProtocol
import SiriusTasks

extension AcceptanceRule: ExpressibleByArgument {}

/// `on` / `off` switches.
enum Switch: String, ExpressibleByArgument, CaseIterable { case on, off }

/// `--db`, shared by every subcommand that reads or writes the run database.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "SQLite run database (created if missing).")
    var db: String = "sirius-runs.sqlite"

    func open(durable: Bool = false) throws -> Store {
        do { return try Store(path: db, durable: durable) } catch { throw CoordinatorError("cannot open \(db): \(error)") }
    }

    func runId(_ given: String?, _ store: Store) throws -> String {
        if let given { return given }
        guard let latest = try store.latestRunId() else { throw ValidationError("no runs in \(db); start one with `sirius-coord start`") }
        return latest
    }
}

/// How a coordinator serves a run: address, security, local workers, timing, output.
struct ServeOptions: ParsableArguments {
    @Option(name: .long, help: "Local `sirius-worker join` processes to spawn (0: wait for remote workers only).")
    var workers: Int = 2
    @Option(name: .long, help: "Address to bind. Loopback by default; any other address needs CURVE (automatic) or --insecure.")
    var bind: String = "tcp://127.0.0.1:*"
    @Flag(name: .long, help: "Allow a non-loopback bind without encryption or join token (not recommended).")
    var insecure = false
    @Flag(name: .long, help: "Use CURVE and a join token even on a loopback address.")
    var secure = false
    @Option(name: .long, help: "Directory for the CURVE key pair and join token (mode 0600).")
    var keyDir: String = (NSHomeDirectory() as NSString).appendingPathComponent(".sirius")
    @Option(name: .long, help: "Override the run's heartbeat interval (ms).")
    var heartbeatMs: Int?
    @Option(name: .long, help: "Override the run's lease TTL (ms).")
    var leaseTtlMs: Int?
    @Option(name: .long, help: "Engine threads per local worker (passed to `sirius-worker join --threads`).")
    var threads: Int?
    @Option(name: .long, help: "Leases each local worker holds at once (default: enough to keep its batch full).")
    var credits: Int?
    @Option(name: .long, help: "Examples each local worker decodes at once (default: the run file's, else \(WorkerDefaults.batchSize)). Results do not depend on it.")
    var batchSize: Int?
    @Option(name: .long, help: "Local workers reuse the K/V of shared prompt prefixes: on (default) or off. Results do not depend on it.")
    var prefixCache: Switch?
    @Flag(name: .long, help: "Score generated code (HumanEval) without bubblewrap's namespaces: the code can then read this machine's files and reach its network. Only where bubblewrap or user namespaces are unavailable; the report says so.")
    var unsafeCodeExecution = false
    @Flag(name: .long, help: "No live progress.")
    var quiet = false
    @Flag(name: .long, help: "synchronous=FULL: an ACK survives power loss, not only a crash.")
    var durable = false
    @Option(name: .long, help: "Final report format: md, csv or json.")
    var format: String = "md"
}

/// Serves `runId` until it completes, is cancelled or the coordinator is interrupted.
/// The scoring provider of a serve: when a task of the run executes generated code, that code runs
/// in bubblewrap, or without namespaces only when the user asked (`--unsafe-code-execution`); a
/// machine without bubblewrap is refused before any work starts. The choice is recorded on the run.
func codeExecutionProvider(store: Store, run: Store.RunRow, unsafe: Bool) throws -> DefaultProvider {
    var provider = DefaultProvider()
    let executesCode = run.config.tasks.contains { (try? TaskRegistry.type(named: $0))?.executesCode == true }
    guard executesCode else { return provider }
    var configuration = PythonSandbox.Configuration()
    configuration.isolation = unsafe ? .none : .bubblewrap
    provider.sandbox = PythonSandbox(configuration: configuration)
    if let problem = provider.sandbox.isolationProblem() { throw CoordinatorError(problem.description) }
    if unsafe {
        FileHandle.standardError.write(Data("WARNING: generated code runs WITHOUT isolation (--unsafe-code-execution): it can read this machine's files and reach its network.\n".utf8))
    }
    try store.recordCodeExecution(run.runId, unsafe ? "none" : "bubblewrap")
    return provider
}

func serve(store: Store, runId: String, options: ServeOptions) throws -> RunOutcome {
    guard let format = ReportFormat(rawValue: options.format) else { throw ValidationError("--format must be md, csv or json") }
    guard let run = try store.run(runId) else { throw CoordinatorError("no run \(runId)") }
    let provider = try codeExecutionProvider(store: store, run: run, unsafe: options.unsafeCodeExecution)
    let loopback = isLoopbackEndpoint(options.bind)
    var secrets: CoordinatorSecrets? = nil
    if !loopback || options.secure {
        if options.insecure && !options.secure {
            FileHandle.standardError.write(Data("""
                WARNING: binding \(options.bind) WITHOUT encryption or authentication (--insecure).
                WARNING: anyone who can reach this port can read prompts and submit results.\n
                """.utf8))
        } else {
            guard ZMQContext.hasCurve else { throw CoordinatorError("libzmq lacks CURVE support; remote mode needs it (or --insecure)") }
            secrets = try CoordinatorSecrets.loadOrCreate(keyDir: options.keyDir)
        }
    }
    let log: @Sendable (String) -> Void = { FileHandle.standardError.write(Data("sirius-coord: \($0)\n".utf8)) }
    let stop = Locked(false)
    for sig in [SIGINT, SIGTERM] {
        signal(sig, SIG_IGN)
        let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        src.setEventHandler { stop.withLock { $0 = true } }
        src.resume()
        signalSources.withLock { $0.append(src) }
    }

    var copts = CoordinatorOptions()
    copts.token = secrets?.token
    copts.heartbeatMs = options.heartbeatMs
    copts.leaseTtlMs = options.leaseTtlMs
    copts.stop = stop
    copts.log = log
    // Set once the local workers are launched: lets the loop stop when they are all gone for good.
    let launcherBox = Locked<WorkerLauncher?>(nil)
    copts.localWorkersGone = { launcherBox.current?.goneReason }
    if !options.quiet {
        copts.progressEveryMs = 2000
        let printer = ProgressPrinter(store: store, runId: runId)
        copts.progress = { printer.print($0) }
    }
    let coordOptions = copts
    let endpointBox = BlockingQueue<Result<String, CoordinatorError>>()
    let outcomeBox = BlockingQueue<Result<(RunOutcome, CoordinatorStats, String?), CoordinatorError>>()
    let bindAddress = options.bind
    let curveSecret = secrets?.keys.secretKey
    // The coordinator thread owns the ROUTER socket from creation to close.
    let thread = Thread {
        do {
            let coordinator = try Coordinator(store: store, runId: runId, provider: provider, options: coordOptions)
            let server = try ZMQServer(bind: bindAddress, options: ZMQServerOptions(curveSecretKey: curveSecret))
            endpointBox.push(.success(server.endpoint))
            let outcome = coordinator.run(transport: server)
            server.close()
            outcomeBox.push(.success((outcome, coordinator.stats, coordinator.abandonReason)))
        } catch {
            let e = CoordinatorError("\(error)")
            endpointBox.push(.failure(e))
            outcomeBox.push(.failure(e))
        }
    }
    thread.stackSize = 8 << 20
    thread.start()
    let endpoint = try endpointBox.pop(timeoutMs: -1)!.get()

    // What a remote worker runs; local workers connect over loopback.
    let port = endpoint.split(separator: ":").last.map(String.init) ?? ""
    let localEndpoint = endpoint.hasPrefix("tcp://0.0.0.0:") || endpoint.hasPrefix("tcp://*:") ? "tcp://127.0.0.1:\(port)" : endpoint
    // A Z85 key may begin with '-' and holds shell characters: `--server-key=KEY` keeps it one value,
    // and the printed command quotes it for the shell (Z85 has no single quote).
    var joinArgs = ["join", "--engine", run.config.engine]
    if run.config.engine != "fake" { joinArgs += ["--numerics", run.config.numerics] }
    if let s = secrets { joinArgs += ["--server-key=\(s.keys.publicKey)", "--token-file", s.tokenPath] }
    let remoteEndpoint = isLoopbackEndpoint(endpoint) ? endpoint : "tcp://\(ProcessInfo.processInfo.hostName):\(port)"
    print("run \(runId): \(run.config.tasks.joined(separator: ", ")) × \(run.config.methods.map(\.name).joined(separator: ", ")); coordinator at \(endpoint)")
    let shown = (["join", "--coordinator", remoteEndpoint] + joinArgs.dropFirst()).map {
        $0.hasPrefix("--server-key=") ? "--server-key='\($0.dropFirst("--server-key=".count))'" : $0
    }
    print("worker command: sirius-worker \(shown.joined(separator: " "))")
    if secrets != nil { print("(copy \(secrets!.tokenPath) to the worker host; keep it secret)") }
    fflush(nil)

    var launcher: WorkerLauncher? = nil
    if options.workers > 0 {
        var args = ["join", "--coordinator", localEndpoint] + joinArgs.dropFirst()
        if let t = options.threads { args += ["--threads", String(t)] }
        if let c = options.credits { args += ["--credits", String(c)] }
        if let b = options.batchSize ?? run.config.batchSize { args += ["--batch-size", String(b)] }
        if let p = options.prefixCache ?? run.config.prefixCache.map({ $0 ? .on : .off }) { args += ["--prefix-cache", p.rawValue] }
        args += ["--exit-with-parent", String(ProcessInfo.processInfo.processIdentifier)]
        let l = WorkerLauncher(executable: WorkerLauncher.defaultWorkerPath(), arguments: args,
                               respawnBudget: options.workers * 4 + 8, log: log)
        do { try l.launch(count: options.workers) } catch { stop.withLock { $0 = true }; throw error }
        launcher = l
        launcherBox.withLock { $0 = l }
    }
    let servedFromUs = monotonicUs()
    let (outcome, stats, abandonReason) = try outcomeBox.pop(timeoutMs: -1)!.get()
    let servedS = Double(monotonicUs() - servedFromUs) / 1e6
    launcher?.stopAll()
    switch outcome {
    case .completed:
        let report = try Metrics.compute(store: store, runId: runId)
        print(ReportRenderer.render(report, format, config: run.config))
    case .cancelled:
        print("run \(runId) cancelled; partial results kept (`sirius-coord report \(runId)`)")
    case .stopped:
        print("run \(runId) interrupted; continue with `sirius-coord resume \(runId)`")
    case .abandoned:
        print("run \(runId) stopped: no workers left; continue with `sirius-coord resume \(runId)` once they can work")
    }
    let (acks, results) = stats.read { ($0.ackLatencyUs, $0.resultsReceived) }
    let committedCount = stats.read { $0.committed }
    log(String(format: "served %.2f s: %.1f results committed/s", servedS, Double(committedCount) / max(servedS, 1e-9)))
    log("\(results) results received, \(committedCount) committed, \(stats.read { $0.duplicates }) duplicates, \(stats.malformed.total) malformed dropped; ACK latency p50 \(percentile(acks, 0.5)) µs, p99 \(percentile(acks, 0.99)) µs")
    if outcome == .abandoned {
        throw CoordinatorError("""
            run \(runId) stopped: \(abandonReason ?? "every local worker has exited")
            Fix the cause first: the workers open the run's model \(run.config.model.debugDescription) with engine \(run.config.engine); \
            if it cannot be loaded, start a new run with a --model the workers can load, or put the model at that path. \
            The run is kept: `sirius-coord resume \(runId)` continues it (committed results stay committed).
            """)
    }
    return outcome
}

let signalSources = Locked<[any DispatchSourceSignal]>([])

func percentile(_ xs: [Int64], _ p: Double) -> Int64 {
    guard !xs.isEmpty else { return 0 }
    let s = xs.sorted()
    return s[min(s.count - 1, Int(Double(s.count - 1) * p + 0.5))]
}

/// Live progress: per task done/total, rate, ETA, running accuracy and AAL per method.
final class ProgressPrinter: @unchecked Sendable {
    let store: Store
    let runId: String
    private var firstDone: Int? = nil

    init(store: Store, runId: String) { self.store = store; self.runId = runId }

    func print(_ s: ProgressSnapshot) {
        let done = s.perTask.reduce(0) { $0 + $1.done + $1.failed }
        let total = s.perTask.reduce(0) { $0 + $1.total }
        if firstDone == nil { firstDone = done }
        let rate = s.elapsedS > 0 ? Double(done - (firstDone ?? 0)) / s.elapsedS : 0
        var line = String(format: "[%6.1fs] %d workers%@", s.elapsedS, s.workers, s.paused ? " PAUSED (store full)" : "")
        let report = try? Metrics.compute(store: store, runId: runId)
        for t in s.perTask {
            let eta = rate > 0 ? String(format: "%.0fs", Double(total - done) / rate) : "?"
            line += String(format: " | %@ %d/%d", t.task, t.done + t.failed, t.total)
            if t.failed > 0 { line += " (\(t.failed) failed)" }
            line += String(format: " %.1f/s ETA %@", rate, eta)
            for m in report?.tasks.first(where: { $0.task == t.task })?.methods ?? [] where m.results > 0 {
                line += String(format: " · %@ %.1f%%", m.method, m.accuracyCompleted * 100)
                if let aal = m.aal { line += String(format: " AAL %.2f", aal) }
            }
        }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

struct StartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Create a run, spawn local workers, serve it, and print the report.",
        discussion: """
            The run's content comes from --run-file (JSON, see cluster/runs/) and/or flags; flags win.
            Each local worker decodes --batch-size examples at once and reuses shared prompt prefixes \
            (--prefix-cache); results are the same bits at any batch size, worker count and cache state. \
            The report's latency columns (tokens/s, time ratio to full) come from --timing-sample examples \
            per task and method decoded alone; throughput (results/s) from the whole run.
            Examples:
              sirius-coord start --workers 2 --engine sirius --task csqa --limit 100 \\
                  --method full --method griffin@0.5 --method sirius/griffin@0.5 --acceptance threshold
              sirius-coord start --engine sirius --task gsm8k-cot --limit 50 --method full --method sirius/cats@0.5 \\
                  --numerics fast --batch-size 16 --prefix-cache on --timing-sample 5
              sirius-coord start --run-file cluster/runs/gsm8k-cot-paper.json --workers 0
            """)

    @OptionGroup var store: StoreOptions
    @OptionGroup var serveOptions: ServeOptions
    @Option(name: .long, help: "JSON run file (model, engine, tasks, methods, runSeed, shardSize, limit, maxNewTokens…).")
    var runFile: String?
    @Option(name: .long, help: "Run id (default: generated).")
    var runId: String?
    @Option(name: .long, help: "Model reference passed to the engine.")
    var model: String?
    @Option(name: .long, help: "Engine the workers run: fake (deterministic stand-in) or sirius.")
    var engine: String?
    @Option(name: .customLong("task"), help: "Task (repeatable), e.g. gsm8k-cot or synthetic:64.")
    var tasks: [String] = []
    @Option(name: .customLong("method"), help: "Method (repeatable): full, griffin@D, cats@D, sirius/griffin@D, sirius/cats@D (D = density kept).")
    var methods: [String] = []
    @Option(name: .long, help: "Run seed (per-example seeds derive from it).")
    var seed: UInt64?
    @Option(name: .long, help: "Examples per shard (fixed at creation; independent of the worker count).")
    var shardSize: Int?
    @Option(name: .long, help: "Examples per task.")
    var limit: Int?
    @Option(name: .long, help: "Max new tokens per example.")
    var maxNewTokens: Int?
    @Option(name: .long, help: "Sirius period K.") var period: Int = MethodDefaults.period
    @Option(name: .long, help: "Sirius acceptance threshold τ.") var threshold: Double = MethodDefaults.threshold
    @Option(name: .long, help: "Sirius tree width W.") var treeWidth: Int = MethodDefaults.treeWidth
    @Option(name: .long, help: "Sirius acceptance rule: threshold (the paper's), threshold-or-argmax, argmax (lossless).")
    var acceptance: AcceptanceRule = MethodDefaults.acceptance
    @Option(name: .long, help: "Softmax temperature of the acceptance probability.")
    var acceptanceTemperature: Double = MethodDefaults.acceptanceTemperature
    @Option(name: .long, help: "exact (matches transformers; default) or fast: the numerics every worker must decode with.")
    var numerics: String?
    @Option(name: .long, help: "Examples per (task, method) decoded alone for the report's latency figures (default \(RunConfig.defaultTimingSample)).")
    var timingSample: Int?
    @Option(help: .hidden) var kernelSize: Int?

    func run() throws {
        var config = try runFile.map(RunConfig.load) ?? RunConfig()
        if let model { config.model = model }
        if let engine { config.engine = engine }
        if !tasks.isEmpty { config.tasks = tasks }
        if !methods.isEmpty {
            let base = MethodSpec(kind: .sirius, period: kernelSize ?? period, threshold: threshold, acceptance: acceptance,
                                  acceptanceTemperature: acceptanceTemperature, treeWidth: treeWidth)
            do {
                config.methods = try methods.map { try MethodSpec.parse($0, base: base) }
            } catch {
                throw ValidationError("\(error)")
            }
        }
        if let numerics { config.numerics = numerics }
        if let timingSample { config.timingSample = timingSample }
        if let b = serveOptions.batchSize { config.batchSize = b }
        if let p = serveOptions.prefixCache { config.prefixCache = p == .on }
        if let seed { config.runSeed = seed }
        if let shardSize { guard shardSize > 0 else { throw ValidationError("--shard-size must be positive") }; config.shardSize = shardSize }
        if let limit { config.limit = limit }
        if let maxNewTokens { config.maxNewTokens = maxNewTokens }
        do { try config.validate() } catch { throw ValidationError("\(error)") }
        let db = try store.open(durable: serveOptions.durable)
        let provider = DefaultProvider()
        let loaded = try config.tasks.map { try provider.load(task: $0, limit: config.limit, runSeed: config.runSeed) }
        let id = runId ?? "run-\(ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: ""))-\(UUID().uuidString.prefix(4).lowercased())"
        if try db.run(id) != nil { throw ValidationError("run \(id) already exists in \(store.db); use `sirius-coord resume \(id)`") }
        try db.createRun(id: id, config: config, tasks: loaded)
        let outcome = try serve(store: db, runId: id, options: serveOptions)
        if outcome == .stopped { throw ExitCode(130) }
    }
}

struct ResumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Continue an unfinished run (any worker count); committed results stay committed.")

    @OptionGroup var store: StoreOptions
    @OptionGroup var serveOptions: ServeOptions
    @Argument(help: "Run id (default: the latest run).") var runId: String?

    func run() throws {
        let db = try store.open(durable: serveOptions.durable)
        let id = try store.runId(runId, db)
        guard let row = try db.run(id) else { throw ValidationError("no run \(id) in \(store.db)") }
        if row.status == .completed {
            print("run \(id) is already complete")
            print(ReportRenderer.render(try Metrics.compute(store: db, runId: id), ReportFormat(rawValue: serveOptions.format) ?? .md, config: row.config))
            return
        }
        if row.config.configHash != row.configHash {
            throw CoordinatorError("config hash mismatch for run \(id): stored \(row.configHash), recomputed \(row.config.configHash)")
        }
        let outcome = try serve(store: db, runId: id, options: serveOptions)
        if outcome == .stopped { throw ExitCode(130) }
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Progress of runs, read from the database while they run.")

    @OptionGroup var store: StoreOptions
    @Argument(help: "Run id (default: every run).") var runId: String?

    func run() throws {
        let db = try store.open()
        let ids = try runId.map { [$0] } ?? db.runIds()
        if ids.isEmpty { print("no runs in \(store.db)") }
        for id in ids {
            guard let r = try db.run(id) else { throw ValidationError("no run \(id)") }
            let rep = try Metrics.compute(store: db, runId: id)
            let info = try db.pool.read { d in
                (leases: try Int.fetchOne(d, sql: "SELECT COUNT(*) FROM leases WHERE run_id = ? AND state IN ('active','orphaned')", arguments: [id]) ?? 0,
                 expired: try Int.fetchOne(d, sql: "SELECT COUNT(*) FROM leases WHERE run_id = ? AND state = 'expired'", arguments: [id]) ?? 0,
                 workers: try String.fetchAll(d, sql: """
                    SELECT l.worker_id || ': ' || COUNT(r.example_id) || ' results' FROM leases l LEFT JOIN results r ON r.lease_id = l.lease_id
                    WHERE l.run_id = ? GROUP BY l.worker_id ORDER BY l.worker_id
                    """, arguments: [id]))
            }
            print("run \(id): \(r.status)\(r.note.map { " — \($0)" } ?? "") (epoch \(r.epoch), \(r.endpoint ?? "not served"))")
            for t in rep.tasks {
                let done = t.methods.reduce(0) { $0 + $1.results }, failed = t.methods.reduce(0) { $0 + $1.failed }
                print("  \(t.task): \(done + failed)/\(t.n * t.methods.count) (\(failed) failed)")
                for m in t.methods {
                    var line = String(format: "    %@: %d/%d, accuracy %.1f%%", m.method, m.results, m.n, m.accuracyCompleted * 100)
                    if let a = m.aal { line += String(format: ", AAL %.2f", a) }
                    print(line)
                }
            }
            print("  active leases \(info.leases), reassignments \(info.expired)")
            for w in info.workers { print("  worker \(w)") }
        }
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "The paper's table per task, recomputed from the stored rows.")

    @OptionGroup var store: StoreOptions
    @Argument(help: "Run id (default: the latest run).") var runId: String?
    @Option(name: .long, help: "md, csv or json.") var format: String = "md"

    func run() throws {
        guard let f = ReportFormat(rawValue: format) else { throw ValidationError("--format must be md, csv or json") }
        let db = try store.open()
        let id = try store.runId(runId, db)
        guard let r = try db.run(id) else { throw ValidationError("no run \(id) in \(store.db)") }
        print(ReportRenderer.render(try Metrics.compute(store: db, runId: id), f, config: r.config))
    }
}

struct CancelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel", abstract: "Cancel a run: workers are told, partial results are kept.")

    @OptionGroup var store: StoreOptions
    @Argument(help: "Run id.") var runId: String

    func run() throws {
        let db = try store.open()
        guard let r = try db.run(runId) else { throw ValidationError("no run \(runId) in \(store.db)") }
        if r.status == .completed { print("run \(runId) is already complete"); return }
        try db.setStatus(runId, .cancelled, note: "cancelled by operator")
        try db.pool.write { try $0.execute(sql: "UPDATE leases SET state = 'cancelled' WHERE run_id = ? AND state = 'orphaned'", arguments: [runId]) }
        print("run \(runId) cancelled; a running coordinator stops within a second")
    }
}
