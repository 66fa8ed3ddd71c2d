import ArgumentParser
import Foundation
import SiriusEngine
import SiriusProtocol

/// `on` / `off` switches.
enum Switch: String, ExpressibleByArgument, CaseIterable { case on, off }

/// `sirius-worker join`: connect to a coordinator, take leases, decode, stream results
/// (distributed-design.md §4). Heartbeats come from the I/O thread while the engine works on its
/// own thread; unacknowledged results are kept and re-sent after a reconnect; SIGTERM drains.
struct JoinCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "join",
        abstract: "Join a sirius-coord run as a worker.",
        discussion: """
            Remote coordinators need --server-key (the coordinator's CURVE public key, printed by \
            `sirius-coord start`) and --token-file. The token is never sent without encryption.
            The sirius engine decodes up to --batch-size examples at once (continuous batching: a finished \
            example's slot takes the next at once) and reuses the K/V of shared prompt prefixes (--prefix-cache); \
            an example's result is the same bits whatever the batch, its companions and the cache.
            Examples:
              sirius-worker join --coordinator tcp://10.0.0.5:5555 --server-key='KEY' --token-file join.token --threads 2
              sirius-worker join --coordinator tcp://127.0.0.1:5555 --batch-size 1 --prefix-cache off --numerics fast
              sirius-worker join --coordinator tcp://127.0.0.1:5555 --id gpu-node-3   # restarts re-send its spool
            Fake-engine faults for tests: SIRIUS_FAKE_LATENCY_MS, SIRIUS_FAKE_CRASH_ON=id,…, \
            SIRIUS_FAKE_FAIL_ON=id,…, SIRIUS_FAKE_HANG_ON=id:ms,…, SIRIUS_FAKE_LOAD_MS, SIRIUS_FAKE_NONDET=1.
            """)

    @Option(name: .long, help: "Coordinator endpoint, e.g. tcp://127.0.0.1:5555.")
    var coordinator: String
    @Option(name: .long, help: "Engine: fake (deterministic stand-in) or sirius.")
    var engine: String = "sirius"
    @Option(name: .long, help: "Engine threads.")
    var threads: Int?
    @Option(name: .long, help: "File holding the coordinator's join token.")
    var tokenFile: String?
    @Option(name: .long, help: "Coordinator CURVE public key (Z85, 40 characters) to pin.")
    var serverKey: String?
    @Option(name: .long, help: "Stable worker id (default: a new UUID). A worker restarted with the same id re-sends the results its spool holds.")
    var id: String?
    @Option(name: .long, help: ArgumentHelp("Directory for decoded results until the coordinator acknowledges them (fsync'd; re-sent after a restart). Default with --id: ~/.cache/sirius/spool/ID; without --id: memory only.", valueName: "dir"))
    var spoolDir: String?
    @Option(name: .long, help: "Examples decoded at once (continuous batching; the fake engine always decodes one).")
    var batchSize: Int = WorkerDefaults.batchSize
    @Option(name: .long, help: "Reuse the K/V of shared prompt prefixes (a task's few-shot prompt): on or off.")
    var prefixCache: Switch = .on
    @Option(name: .long, help: "Memory for the prefix cache, MiB.")
    var prefixCacheMib: Int = WorkerDefaults.prefixCacheMiB
    @Option(name: .long, help: "exact (matches transformers; the runs' default) or fast (8-bit activations). A run refuses a worker with other numerics.")
    var numerics: Numerics = .exact
    @Option(name: .long, help: "Leases asked for at once (default: enough to keep the batch full); the coordinator grants another only while this worker holds fewer unfinished examples than its --batch-size.")
    var credits: Int?
    @Option(name: .long, help: "Give up after this many seconds without an answer from the coordinator (0: never).")
    var giveUpAfter: Int = 0
    @Option(name: .long, help: "Fake engine: simulated decode time per example (ms).")
    var fakeLatencyMs: Int?
    @Option(name: .long, help: "Drain and leave when this process (the spawning coordinator) is gone.")
    var exitWithParent: Int32?

    func validate() throws {
        guard (1...256).contains(batchSize) else { throw ValidationError("--batch-size must be between 1 and 256") }
        guard prefixCacheMib >= 0 else { throw ValidationError("--prefix-cache-mib must be >= 0") }
        if let credits, credits < 1 { throw ValidationError("--credits must be at least 1") }
        if let id, id.isEmpty || id.hasPrefix(".") || !id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) {
            throw ValidationError("--id must be letters, digits, '-', '_' or '.' (not starting with '.'): it names the worker's spool directory")
        }
        if tokenFile != nil && serverKey == nil {
            throw ValidationError("--token-file needs --server-key: the join token is only ever sent over an encrypted (CURVE) connection")
        }
        if let k = serverKey, k.count != 40 { throw ValidationError("--server-key must be the 40-character Z85 key printed by sirius-coord start") }
        if !isLoopbackEndpoint(coordinator) && serverKey == nil {
            FileHandle.standardError.write(Data("sirius-worker: WARNING: connecting to \(coordinator) without encryption (no --server-key)\n".utf8))
        }
    }

    func run() throws {
        var options = WorkerOptions()
        if let id { options.workerId = id }
        if let dir = spoolDir ?? id.map({ Self.defaultSpoolRoot().appendingPathComponent($0).path }) {
            options.spoolDirectory = URL(fileURLWithPath: dir)
        }
        options.credits = credits
        options.batchSize = engine == "fake" ? 1 : batchSize
        options.numerics = engine == "fake" ? nil : numerics.rawValue
        options.giveUpAfterMs = giveUpAfter > 0 ? giveUpAfter * 1000 : nil
        if let tokenFile {
            guard let t = try? String(contentsOfFile: tokenFile, encoding: .utf8) else { throw ValidationError("cannot read \(tokenFile)") }
            options.token = t.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let tag = String(options.workerId.prefix(8))
        let log: @Sendable (String) -> Void = { FileHandle.standardError.write(Data("sirius-worker[\(tag)]: \($0)\n".utf8)) }
        let factory = try joinEngineFactory(name: engine, threads: threads, numerics: numerics, batchSize: batchSize,
                                            prefixCacheBytes: prefixCache == .on ? prefixCacheMib << 20 : nil,
                                            fakeLatencyMs: fakeLatencyMs, log: log)
        options.engines = [engine]
        options.threads = engine == "fake" ? nil : (threads ?? 1)
        if engine != "fake" { options.device = "cpu (\(threads ?? 1) thread\((threads ?? 1) == 1 ? "" : "s"), \(numerics.rawValue), batch \(batchSize))" }
        let agent = WorkerAgent(connector: ZMQConnector(endpoint: coordinator, serverKey: serverKey), engine: factory, options: options)
        agent.log = log
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            src.setEventHandler { log("signal \(sig): draining"); agent.requestDrain() }
            src.resume()
            joinSignalSources.withLock { $0.append(src) }
        }
        agent.start()
        if let parent = exitWithParent {
            // A coordinator killed with SIGKILL cannot stop the workers it spawned: they notice
            // being re-parented and leave, instead of retrying forever.
            let watcher = Thread {
                while getppid() == parent { Thread.sleep(forTimeInterval: 0.5) }
                log("parent process \(parent) is gone: draining")
                agent.requestDrain()
            }
            watcher.start()
        }
        let exit = agent.waitForExit(timeoutMs: -1) ?? .killed
        log(exit.description)
        if let kib = peakResidentKiB() { log(String(format: "peak resident memory %.1f MiB", Double(kib) / 1024)) }
        if exit.exitCode != 0 { throw ExitCode(exit.exitCode) }
    }
}

extension JoinCommand {
    /// `$XDG_CACHE_HOME/sirius/spool` or `~/.cache/sirius/spool`.
    static func defaultSpoolRoot() -> URL {
        let env = ProcessInfo.processInfo.environment
        let cache = env["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return cache.appendingPathComponent("sirius/spool")
    }
}

let joinSignalSources = Locked<[any DispatchSourceSignal]>([])

/// VmHWM of /proc/self/status: the process's peak resident set, KiB (nil where /proc is absent).
func peakResidentKiB() -> Int? {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return nil }
    return Int(line.split(separator: " ").dropFirst().first { Int($0) != nil } ?? "")
}
