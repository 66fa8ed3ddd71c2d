import ArgumentParser
import Foundation
import GRDB
import SiriusMethod
import SiriusProtocol
import SiriusTasks

extension AcceptanceRule: ExpressibleByArgument {}
extension CATSMode: ExpressibleByArgument {}
extension ReportFormat: ExpressibleByArgument {}

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
    @Option(name: .long, help: "Lease nothing until this many workers have joined (then lease as usual, whoever leaves). Default 0: start with the first.")
    var waitForWorkers: Int = 0
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
    @Option(name: .long, help: "Final report printed at the end: md, csv, json or html.")
    var format: ReportFormat = .md
    @Option(name: .long, help: ArgumentHelp("Also write the run's HTML report (figures and tables, one self-contained file) here; 'none' to skip. Default: sirius-reports/RUN.html beside the database.", valueName: "file"))
    var htmlReport: String?

    func validate() throws {
        if format.isDirectory { throw ValidationError("--format \(format.rawValue) writes a directory: use `sirius-coord report RUN --format \(format.rawValue) --out DIR` after the run") }
    }

    /// Where the HTML report of `runId` goes (nil: not written).
    func htmlReportPath(runId: String, db: String) -> String? {
        if htmlReport == "none" { return nil }
        if let htmlReport { return htmlReport }
        let dir = (db as NSString).deletingLastPathComponent
        return ((dir.isEmpty ? "." : dir) as NSString).appendingPathComponent("sirius-reports/\(runId).html")
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
    @Option(name: .long, help: ArgumentHelp("Adaptive period (not the paper's setting; method names say it): a period ends early after the first draft the sparse model gives a probability below CONF (up to K drafts).", valueName: "conf"))
    var adaptivePeriod: Double?
    @Option(name: .long, help: "Sirius acceptance rule: threshold (the paper's), threshold-or-argmax, argmax (lossless).")
    var acceptance: AcceptanceRule = MethodDefaults.acceptance
    @Option(name: .long, help: "Softmax temperature of the acceptance probability.")
    var acceptanceTemperature: Double = MethodDefaults.acceptanceTemperature
    @Option(name: .long, help: "exact (matches transformers; default) or fast: the numerics every worker must decode with.")
    var numerics: String?
    @Option(name: .long, help: "Examples per (task, method) decoded alone for the report's latency figures (default \(RunConfig.defaultTimingSample)).")
    var timingSample: Int?
    @Option(name: .long, help: ArgumentHelp("Sweep one knob over values, expanding the sparse and Sirius methods: density=0.3,0.4,0.5 (also period=…, threshold=…, width=…, adaptive=…).", valueName: "knob=values"))
    var sweep: String?
    @Option(name: .long, help: "CATS neuron choice: topk (default) or threshold (per-layer thresholds from --calibration).")
    var catsMode: CATSMode?
    @Option(name: .long, help: ArgumentHelp("A CATS calibration (sirius-worker calibrate --out FILE), repeatable: one per density; it travels inside the run.", valueName: "file"))
    var calibration: [String] = []
    @Option(help: .hidden) var kernelSize: Int?

    func run() throws {
        var config: RunConfig
        do { config = try runFile.map(RunConfig.load) ?? RunConfig() } catch { throw ValidationError("\(error)") }
        if let model { config.model = model }
        if let engine { config.engine = engine }
        if !tasks.isEmpty { config.tasks = tasks }
        if !methods.isEmpty {
            var base = MethodSpec(kind: .sirius, period: kernelSize ?? period, threshold: threshold, acceptance: acceptance,
                                  acceptanceTemperature: acceptanceTemperature, treeWidth: treeWidth, adaptivePeriod: adaptivePeriod)
            base.catsMode = catsMode ?? MethodDefaults.catsMode
            // The calibration is attached per density below (applySweep); a placeholder passes validation here.
            if base.catsMode == .threshold { base.calibration = CATSCalibration(density: 0, thresholds: [], model: "", samples: 0) }
            do {
                config.methods = try methods.map { try MethodSpec.parse($0, base: base) }
            } catch {
                throw ValidationError("\(error)")
            }
        }
        do {
            if let sweep { config.sweep = try MethodSweep.parse(sweep) }
            try config.applySweep(calibrations: try calibration.map { try CATSCalibration.load(path: $0) })
        } catch {
            throw ValidationError("\(error)")
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
            print(ReportRenderer.render(try Metrics.compute(store: db, runId: id), serveOptions.format, config: row.config))
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
                 workers: try Row.fetchAll(d, sql: """
                    SELECT w.worker_id, w.state, w.hostname, w.engines, w.device, w.numerics, w.batch_size, w.threads, w.build,
                           (SELECT COUNT(*) FROM results r WHERE r.run_id = ? AND r.worker_id = w.worker_id) AS n,
                           (SELECT MAX(committed_at) - MIN(committed_at) FROM results r WHERE r.run_id = ? AND r.worker_id = w.worker_id) AS span_ms
                    FROM workers w WHERE w.worker_id IN (SELECT worker_id FROM leases WHERE run_id = ?) ORDER BY w.worker_id
                    """, arguments: [id, id, id]))
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
            for w in info.workers { print("  worker " + Self.describe(worker: w)) }
        }
    }
}

extension StatusCommand {
    /// `id (state) on host: engine, device, numerics, batch, threads, build — n results, rate/s`.
    static func describe(worker w: Row) -> String {
        var caps: [String] = []
        if let e = w["engines"] as String? { caps.append("engine \(e)") }
        if let d = w["device"] as String? { caps.append(d) }
        if let n = w["numerics"] as String?, !(w["device"] as String? ?? "").contains(n) { caps.append(n) }
        if let b = w["batch_size"] as Int?, b > 1, !(w["device"] as String? ?? "").contains("batch") { caps.append("batch \(b)") }
        if let t = w["threads"] as Int?, !(w["device"] as String? ?? "").contains("thread") { caps.append("\(t) thread\(t == 1 ? "" : "s")") }
        if let b = w["build"] as String? { caps.append("build \(b)") }
        let n: Int = w["n"] ?? 0
        var line = "\(w["worker_id"] as String? ?? "?") (\(w["state"] as String? ?? "?")) on \(w["hostname"] as String? ?? "?"): \(caps.joined(separator: ", ")) — \(n) results"
        if let span = w["span_ms"] as Int64?, span > 0, n > 1 { line += String(format: ", %.2f results/s", Double(n - 1) / (Double(span) / 1000)) }
        return line
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "The run's report, recomputed from the stored rows.",
        discussion: """
            md, csv and json print to standard output (or --out FILE); html is one self-contained page with \
            the figures (accuracy against density with 95 % intervals, answered, AAL, effective density, the \
            τ trade-off, speed) and the tables; lm-eval writes lm-evaluation-harness's results_*.json and \
            samples_*.jsonl into --out DIR.
            Examples:
              sirius-coord report
              sirius-coord report RUN --format html --out run.html
              sirius-coord report RUN --format lm-eval --out lm-eval-results/
            """)

    @OptionGroup var store: StoreOptions
    @Argument(help: "Run id (default: the latest run).") var runId: String?
    @Option(name: .long, help: "md, csv, json, html or lm-eval.") var format: ReportFormat = .md
    @Option(name: .long, help: ArgumentHelp("Write to this file (a directory for lm-eval) instead of standard output.", valueName: "path"))
    var out: String?

    func validate() throws {
        if format.isDirectory && out == nil { throw ValidationError("--format \(format.rawValue) writes files into a directory: add --out DIR") }
    }

    func run() throws {
        let db = try store.open()
        let id = try store.runId(runId, db)
        guard let r = try db.run(id) else { throw ValidationError("no run \(id) in \(store.db)") }
        if format.isDirectory, let out {
            let files = try ReportOutput.writeDirectory(format, store: db, runId: id, directory: out)
            for f in files { print("wrote \(f.path)") }
            return
        }
        let text = ReportRenderer.render(try Metrics.compute(store: db, runId: id), format, config: r.config)
        if let out {
            try ReportOutput.write(text, to: out)
            print("wrote \(out)")
        } else {
            print(text)
        }
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
