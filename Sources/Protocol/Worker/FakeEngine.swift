import Foundation

/// Faults and latency for `FakeEngine`, set by flags or the environment (`fromEnvironment`).
public struct FakeEngineConfig: Sendable, Codable, Equatable {
    public enum CrashAction: String, Sendable, Codable { case exitProcess, throwCrash }

    /// Sleep per example (simulated decode time).
    public var latencyMs = 0
    /// Example ids whose decode crashes the worker every time (poison, T16).
    public var crashOn: Set<String> = []
    public var crashAction: CrashAction = .exitProcess
    /// Example ids whose decode throws `engine_error` every time.
    public var failOn: Set<String> = []
    /// Example ids whose decode blocks the engine thread this long first (T19).
    public var hangMs: [String: Int] = [:]
    /// Mix random letters into the text after the answer (for duplicate_conflict tests): every decode
    /// gives another result hash, the same correctness and counters.
    public var nondeterministic = false
    /// Sleep in `prepare` the first time (simulated model load).
    public var loadMs = 0
    /// Append one line `task/example/method` per decode to this file (tests count decodes across
    /// processes: nothing may be decoded twice but what was in flight at a fault).
    public var decodeLogPath: String?

    public init() {}

    /// `SIRIUS_FAKE_LATENCY_MS`, `SIRIUS_FAKE_CRASH_ON` (comma-separated ids), `SIRIUS_FAKE_FAIL_ON`,
    /// `SIRIUS_FAKE_HANG_ON` (`id:ms,…`), `SIRIUS_FAKE_NONDET=1`, `SIRIUS_FAKE_LOAD_MS`,
    /// `SIRIUS_FAKE_DECODE_LOG` (a file path).
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) -> FakeEngineConfig {
        var c = FakeEngineConfig()
        func list(_ k: String) -> Set<String> {
            Set((env[k] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
        }
        c.latencyMs = Int(env["SIRIUS_FAKE_LATENCY_MS"] ?? "") ?? 0
        c.loadMs = Int(env["SIRIUS_FAKE_LOAD_MS"] ?? "") ?? 0
        c.crashOn = list("SIRIUS_FAKE_CRASH_ON")
        c.failOn = list("SIRIUS_FAKE_FAIL_ON")
        for item in list("SIRIUS_FAKE_HANG_ON") {
            let parts = item.split(separator: ":")
            if parts.count == 2, let ms = Int(parts[1]) { c.hangMs[String(parts[0])] = ms }
        }
        c.nondeterministic = env["SIRIUS_FAKE_NONDET"] == "1"
        c.decodeLogPath = env["SIRIUS_FAKE_DECODE_LOG"].flatMap { $0.isEmpty ? nil : $0 }
        return c
    }
}

/// A deterministic stand-in for the Sirius engine: the outcome is a pure function of
/// (task, example id, method, seed, prompt), so any worker count yields identical results.
///
/// Its "knowledge": the right answer to a prompt is `FakeEngine.oracle(prompt)`; each method gets
/// it right with a method-dependent probability (full 0.8, sparse lower with lower density, Sirius
/// close to full), so reports have realistic shapes.
public final class FakeEngine: EvaluationEngine {
    public let name = "fake"
    public let device = "cpu"
    public let config: FakeEngineConfig
    public let batchSize = 1
    private var loaded = false
    private var admitted: [(tag: Int, request: ExampleRequest)] = []
    private let decodes: FakeDecodeLog?

    /// `decodes` (in-process tests) hears of every decode, like `config.decodeLogPath` (processes).
    public init(config: FakeEngineConfig = FakeEngineConfig(), decodes: FakeDecodeLog? = nil) {
        self.config = config
        self.decodes = decodes
    }

    public var inFlight: Int { admitted.count }

    public func admit(_ request: ExampleRequest, tag: Int) throws { admitted.append((tag, request)) }

    public func cancel(tag: Int) { admitted.removeAll { $0.tag == tag } }

    /// Decodes the examples admitted so far, one by one.
    public func step() throws -> [(tag: Int, result: Result<ExampleOutcome, EngineFailure>)] {
        var out: [(tag: Int, result: Result<ExampleOutcome, EngineFailure>)] = []
        while !admitted.isEmpty {
            let (tag, r) = admitted.removeFirst()
            do { out.append((tag, .success(try run(r)))) } catch let e as EngineFailure { out.append((tag, .failure(e))) }
        }
        return out
    }

    /// The answer the fake engine considers correct for `prompt` (synthetic tasks use it as the
    /// reference).
    public static func oracle(_ prompt: String) -> Int { Int(StableHasher.hash("oracle", prompt) % 100) }

    public func prepare(model: String) throws {
        if !loaded, config.loadMs > 0 { Thread.sleep(forTimeInterval: Double(config.loadMs) / 1000) }
        loaded = true
    }

    public func run(_ r: ExampleRequest) throws -> ExampleOutcome {
        let start = monotonicUs()
        if let ms = config.hangMs[r.exampleId] { Thread.sleep(forTimeInterval: Double(ms) / 1000) }
        if config.crashOn.contains(r.exampleId) {
            switch config.crashAction {
            case .exitProcess:
                FileHandle.standardError.write(Data("fake engine: simulated crash on \(r.exampleId)\n".utf8))
                _exit(86)
            case .throwCrash:
                throw SimulatedCrash(exampleId: r.exampleId)
            }
        }
        if config.failOn.contains(r.exampleId) {
            throw EngineFailure(.engineError, "fake engine: simulated failure on \(r.exampleId)")
        }
        if config.latencyMs > 0 { Thread.sleep(forTimeInterval: Double(config.latencyMs) / 1000) }
        decodes?.record(r.key)
        if let path = config.decodeLogPath { FakeDecodeLog.append(r.key, toFile: path) }

        var h = StableHasher()
        h.combine(r.task); h.combine(r.exampleId); h.combine(r.method.name); h.combine(r.seed); h.combine(r.prompt)
        let bits = h.value
        let density = r.method.density
        let pCorrect: Double = switch r.method.kind {
        case .full: 0.8
        case .sparse: 0.8 - (1 - density) * 0.6
        case .sirius: 0.8 - (1 - density) * 0.08
        }
        let u = Double(bits % 10_000) / 10_000
        let truth = FakeEngine.oracle(r.prompt)
        let answer = u < pCorrect ? truth : (truth + 1 + Int((bits >> 16) % 7)) % 100
        var text = "Let me think step by step about \(r.exampleId). The answer is \(answer)."
        // Random letters, not digits: the extracted answer (the last number) stays deterministic.
        if config.nondeterministic { text += " (" + String((0..<12).map { _ in "abcdefghijklmnopqrstuvwxyz".randomElement()! }) + ")" }
        for s in r.stop { if let range = text.range(of: s) { text = String(text[..<range.lowerBound]) } }
        let generated = min(r.maxNewTokens, 16 + Int((bits >> 24) % 48))

        var counters = DecodeCounters()
        var modelDensity: Double? = nil
        var paramDensity: Double? = nil
        if r.method.kind != .full {
            modelDensity = 1 - (1 - density) * 0.66
            paramDensity = ((1 - (1 - density) * 0.702) * 100).rounded() / 100
        }
        if r.method.kind == .sirius {
            let k = max(2, r.method.period)
            var produced = 0
            var period = 0
            var g = StableHasher(); g.combine(bits)
            while produced < generated {
                g.combine(period)
                let accepted = (k / 2) + Int(g.value % UInt64(k - k / 2))   // L in [K/2, K-1]
                let advance = min(accepted + 1, generated - produced)
                produced += advance
                counters.sparseSteps += k - 1
                counters.densePasses += 1
                counters.tokensVerified += k
                if accepted < k - 1 { counters.rollbacks += 1; counters.rolledBackTokens += k - 1 - accepted }
                if produced < generated {   // the final period is excluded from AAL (§5.1)
                    counters.periods += 1
                    counters.advancedTokens += accepted + 1
                }
                period += 1
            }
        } else if r.method.kind == .sparse {
            counters.sparseSteps = generated
        } else {
            counters.densePasses = generated
        }
        let elapsed = Double(monotonicUs() - start) / 1e6
        return ExampleOutcome(
            text: text, promptTokens: r.prompt.utf8.count / 4 + 1, generatedTokens: generated,
            stopReason: generated == r.maxNewTokens ? "length" : "eos", counters: counters,
            modelDensity: modelDensity, paramDensity: paramDensity,
            timings: PhaseTimings(prefillSeconds: 0, sparseSeconds: r.method.kind == .full ? 0 : elapsed,
                                  verifySeconds: 0, totalSeconds: elapsed))
    }
}

/// How often each example was decoded, across the fake engines of one test.
public final class FakeDecodeLog: @unchecked Sendable {
    private let counts = Locked<[ResultKey: Int]>([:])
    public init() {}
    public func record(_ k: ResultKey) { counts.withLock { $0[k, default: 0] += 1 } }
    public var snapshot: [ResultKey: Int] { counts.current }
    /// Keys decoded more than once.
    public var repeated: Set<ResultKey> { Set(counts.current.filter { $0.value > 1 }.keys) }

    /// One line per decode, appended with O_APPEND (atomic for lines this short, across processes).
    static func append(_ k: ResultKey, toFile path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        let line = Array("\(k.description)\n".utf8)
        _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }
}
