import ArgumentParser
import Foundation
import SiriusMethod
import SiriusProtocol
import SiriusTasks

// `start` and `resume` both serve a run: this file is what serving does; RunCommands.swift holds the
// command-line surface.

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

/// Serves `runId` until it completes, is cancelled or the coordinator is interrupted: the scoring
/// provider, the transport security, the coordinator loop on its own thread (it owns the socket), the
/// local workers, and the report at the end.
func serve(store: Store, runId: String, options: ServeOptions) throws -> RunOutcome {
    let format = options.format
    guard let run = try store.run(runId) else { throw CoordinatorError("no run \(runId)") }
    let provider = try codeExecutionProvider(store: store, run: run, unsafe: options.unsafeCodeExecution)
    let secrets = try transportSecrets(options)
    // On a terminal the live progress is redrawn in place; log lines go above it, through the printer.
    let progress = options.quiet ? nil : ProgressPrinter(store: store, runId: runId)
    let log: @Sendable (String) -> Void = { message in
        let line = "sirius-coord: \(message)\n"
        if let progress { progress.log(line) } else { FileHandle.standardError.write(Data(line.utf8)) }
    }
    let stop = stopOnSignals()

    var copts = CoordinatorOptions()
    copts.token = secrets?.token
    copts.heartbeatMs = options.heartbeatMs
    copts.leaseTtlMs = options.leaseTtlMs
    copts.waitForWorkers = options.waitForWorkers
    copts.stop = stop
    copts.log = log
    // Set once the local workers are launched: lets the loop stop when they are all gone for good.
    let launcherBox = Locked<WorkerLauncher?>(nil)
    copts.localWorkersGone = { launcherBox.current?.goneReason }
    if let progress {
        copts.progressEveryMs = 2000
        copts.progress = { progress.print($0) }
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
            outcomeBox.push(.success((outcome, coordinator.stats, outcome == .storeFailed ? coordinator.storeFailure : coordinator.abandonReason)))
        } catch {
            let e = CoordinatorError("\(error)")
            endpointBox.push(.failure(e))
            outcomeBox.push(.failure(e))
        }
    }
    thread.stackSize = 8 << 20
    thread.start()
    let endpoint = try endpointBox.pop(timeoutMs: -1)!.get()

    print("run \(runId): \(run.config.tasks.joined(separator: ", ")) × \(run.config.methods.map(\.name).joined(separator: ", ")); coordinator at \(endpoint)")
    let join = WorkerJoinArguments(endpoint: endpoint, config: run.config, secrets: secrets)
    print("worker command: sirius-worker \(join.remoteCommand)")
    if let secrets { print("(copy \(secrets.tokenPath) to the worker host; keep it secret)") }
    fflush(nil)

    var launcher: WorkerLauncher? = nil
    if options.workers > 0 {
        // Under a live frame the workers' lines go above it, through the printer, instead of under it.
        var workerOutput: (@Sendable (String) -> Void)? = nil
        if let progress, progress.mode == .terminal { workerOutput = { progress.log($0) } }
        let l = WorkerLauncher(executable: WorkerLauncher.defaultWorkerPath(), arguments: join.localArguments(options, run.config),
                               respawnBudget: options.workers * 4 + 8, log: log, output: workerOutput)
        do { try l.launch(count: options.workers) } catch { stop.withLock { $0 = true }; throw error }
        launcher = l
        launcherBox.withLock { $0 = l }
    }
    let servedFromUs = monotonicUs()
    let (outcome, stats, reason) = try outcomeBox.pop(timeoutMs: -1)!.get()
    progress?.finish()
    let servedS = Double(monotonicUs() - servedFromUs) / 1e6
    launcher?.stopAll()
    switch outcome {
    case .completed:
        let report = try Metrics.compute(store: store, runId: runId)
        print(ReportRenderer.render(report, format, config: run.config))
        if let path = options.htmlReportPath(runId: runId, db: store.path) {
            do {
                try ReportOutput.write(ReportRenderer.render(report, .html, config: run.config), to: path)
                print("HTML report (figures and tables): \(path)")
            } catch {
                log("could not write the HTML report: \(error) (the results are stored; `sirius-coord report \(runId) --format html --out FILE`)")
            }
        }
    case .cancelled:
        print("run \(runId) cancelled; partial results kept (`sirius-coord report \(runId)`)")
    case .stopped:
        print("run \(runId) interrupted; continue with `sirius-coord resume \(runId)`")
    case .abandoned:
        print("run \(runId) stopped: no workers left; continue with `sirius-coord resume \(runId)` once they can work")
    case .storeFailed:
        print("run \(runId) stopped: its database cannot be written")
    }
    let (acks, results) = stats.read { ($0.ackLatencyUs, $0.resultsReceived) }
    let committedCount = stats.read { $0.committed }
    log(String(format: "served %.2f s: %.1f results committed/s", servedS, Double(committedCount) / max(servedS, 1e-9)))
    log("\(results) results received, \(committedCount) committed, \(stats.read { $0.duplicates }) duplicates, \(stats.malformed.total) malformed dropped; ACK latency p50 \(percentile(acks, 0.5)) µs, p99 \(percentile(acks, 0.99)) µs")
    if outcome == .abandoned {
        throw CoordinatorError("""
            run \(runId) stopped: \(reason ?? "every local worker has exited")
            Fix the cause first: the workers open the run's model \(run.config.model.debugDescription) with engine \(run.config.engine); \
            if it cannot be loaded, start a new run with a --model the workers can load, or put the model at that path. \
            The run is kept: `sirius-coord resume \(runId)` continues it (committed results stay committed).
            """)
    }
    if outcome == .storeFailed {
        throw CoordinatorError("""
            run \(runId) stopped: the run database \(store.path) cannot be written: \(reason ?? "unknown error")
            Results already committed stay; the workers' unacknowledged results are decoded again after `sirius-coord resume \(runId)`.
            """)
    }
    return outcome
}

let signalSources = Locked<[any DispatchSourceSignal]>([])

/// CURVE keys and join token for a bind that is not loopback (or `--secure`); nil on loopback or
/// with `--insecure` (which warns).
func transportSecrets(_ options: ServeOptions) throws -> CoordinatorSecrets? {
    guard !isLoopbackEndpoint(options.bind) || options.secure else { return nil }
    if options.insecure && !options.secure {
        FileHandle.standardError.write(Data("""
            WARNING: binding \(options.bind) WITHOUT encryption or authentication (--insecure).
            WARNING: anyone who can reach this port can read prompts and submit results.\n
            """.utf8))
        return nil
    }
    guard ZMQContext.hasCurve else { throw CoordinatorError("libzmq lacks CURVE support; remote mode needs it (or --insecure)") }
    return try CoordinatorSecrets.loadOrCreate(keyDir: options.keyDir)
}

/// SIGINT and SIGTERM set the returned flag (the coordinator loop then stops cleanly).
func stopOnSignals() -> Locked<Bool> {
    let stop = Locked(false)
    for sig in [SIGINT, SIGTERM] {
        signal(sig, SIG_IGN)
        let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        src.setEventHandler { stop.withLock { $0 = true } }
        src.resume()
        signalSources.withLock { $0.append(src) }
    }
    return stop
}

/// The `sirius-worker join` arguments for a served run: the command a remote worker runs (printed),
/// and the arguments of the local workers `start --workers N` spawns (over loopback).
struct WorkerJoinArguments {
    let endpoint: String
    /// Engine, numerics and (CURVE) server key and token file: what every worker of the run needs.
    let common: [String]

    init(endpoint: String, config: RunConfig, secrets: CoordinatorSecrets?) {
        self.endpoint = endpoint
        var args = ["--engine", config.engine]
        if config.engine != "fake" { args += ["--numerics", config.numerics] }
        // A Z85 key may begin with '-' and holds shell characters: `--server-key=KEY` keeps it one value.
        if let s = secrets { args += ["--server-key=\(s.keys.publicKey)", "--token-file", s.tokenPath] }
        common = args
    }

    private var port: String { endpoint.split(separator: ":").last.map(String.init) ?? "" }

    /// For a shell on another host: the coordinator's host name, the key quoted (Z85 has no single quote).
    var remoteCommand: String {
        let remote = isLoopbackEndpoint(endpoint) ? endpoint : "tcp://\(ProcessInfo.processInfo.hostName):\(port)"
        return (["join", "--coordinator", remote] + common).map {
            $0.hasPrefix("--server-key=") ? "--server-key='\($0.dropFirst("--server-key=".count))'" : $0
        }.joined(separator: " ")
    }

    /// Local workers: loopback, the serve's threads / credits / batch size / prefix cache, and leave
    /// when this process is gone.
    func localArguments(_ options: ServeOptions, _ config: RunConfig) -> [String] {
        let wildcard = endpoint.hasPrefix("tcp://0.0.0.0:") || endpoint.hasPrefix("tcp://*:")
        var args = ["join", "--coordinator", wildcard ? "tcp://127.0.0.1:\(port)" : endpoint] + common
        if let t = options.threads { args += ["--threads", String(t)] }
        if let c = options.credits { args += ["--credits", String(c)] }
        if let b = options.batchSize ?? config.batchSize { args += ["--batch-size", String(b)] }
        if let p = options.prefixCache ?? config.prefixCache.map({ $0 ? .on : .off }) { args += ["--prefix-cache", p.rawValue] }
        args += ["--exit-with-parent", String(ProcessInfo.processInfo.processIdentifier)]
        return args
    }
}

func percentile(_ xs: [Int64], _ p: Double) -> Int64 {
    guard !xs.isEmpty else { return 0 }
    let s = xs.sorted()
    return s[min(s.count - 1, Int(Double(s.count - 1) * p + 0.5))]
}
