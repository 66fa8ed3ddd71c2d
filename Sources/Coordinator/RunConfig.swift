import Foundation
import SiriusMethod
import SiriusProtocol

/// Everything that defines a run's results (§4.5 `runs.config_json`). Timing knobs (heartbeat,
/// lease TTL) are operational and kept out of the config hash, so a resume may change them.
struct RunConfig: Codable, Sendable, Equatable {
    var model: String = "smollm2-135m-instruct"
    /// `fake` or `sirius` (the real engine); passed to every worker.
    var engine: String = "fake"
    var tasks: [String] = ["synthetic:64"]
    var methods: [MethodSpec] = RunConfig.defaultMethods
    /// A sweep of one knob (`applySweep` expands `methods` over it once, when the run is made; kept so
    /// that reports draw the swept knob).
    var sweep: MethodSweep? = nil
    var runSeed: UInt64 = 1234
    var shardSize: Int = 8
    /// Examples per task (nil: all).
    var limit: Int? = nil
    var maxNewTokens: Int = 256
    /// Attempts per example before it is declared failed (§4.3 "poison examples").
    var maxAttempts: Int = 3
    var heartbeatMs: Int = 1000
    var leaseTtlMs: Int = 10_000
    var loadTtlMs: Int = 120_000
    /// `exact` (matches transformers) or `fast`: every worker must decode with these numerics.
    var numerics: String = "exact"
    /// Examples each local worker decodes at once (nil: the workers' default). Operational: results do
    /// not depend on it.
    var batchSize: Int? = nil
    /// Workers reuse the K/V of shared prompt prefixes (nil: on). Operational.
    var prefixCache: Bool? = nil
    /// Examples per (task, method) decoded alone, whose timings give the report's latency figures.
    var timingSample: Int = RunConfig.defaultTimingSample

    static let defaultTimingSample = 3
    static let numericsChoices = ["exact", "fast"]

    /// The paper's setting (threshold acceptance, K = 16, τ = 0.1) for Griffin at density 0.5.
    static let defaultMethods: [MethodSpec] = [
        .full,
        MethodSpec(kind: .sparse, sparsity: .griffin, density: 0.5),
        MethodSpec(kind: .sirius, sparsity: .griffin, density: 0.5, period: 16, threshold: 0.1, acceptance: .threshold),
    ]

    enum CodingKeys: String, CodingKey {
        case model, engine, tasks, methods, sweep, runSeed, shardSize, limit, maxNewTokens, maxAttempts
        case heartbeatMs, leaseTtlMs, loadTtlMs, numerics, batchSize, prefixCache, timingSample
    }

    init() {}

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = RunConfig()
        model = try c.decodeIfPresent(String.self, forKey: .model) ?? d.model
        engine = try c.decodeIfPresent(String.self, forKey: .engine) ?? d.engine
        tasks = try c.decodeIfPresent([String].self, forKey: .tasks) ?? d.tasks
        methods = try c.decodeIfPresent([MethodSpec].self, forKey: .methods) ?? d.methods
        sweep = try c.decodeIfPresent(MethodSweep.self, forKey: .sweep)
        runSeed = try c.decodeIfPresent(UInt64.self, forKey: .runSeed) ?? d.runSeed
        shardSize = try c.decodeIfPresent(Int.self, forKey: .shardSize) ?? d.shardSize
        limit = try c.decodeIfPresent(Int.self, forKey: .limit)
        maxNewTokens = try c.decodeIfPresent(Int.self, forKey: .maxNewTokens) ?? d.maxNewTokens
        maxAttempts = try c.decodeIfPresent(Int.self, forKey: .maxAttempts) ?? d.maxAttempts
        heartbeatMs = try c.decodeIfPresent(Int.self, forKey: .heartbeatMs) ?? d.heartbeatMs
        leaseTtlMs = try c.decodeIfPresent(Int.self, forKey: .leaseTtlMs) ?? d.leaseTtlMs
        loadTtlMs = try c.decodeIfPresent(Int.self, forKey: .loadTtlMs) ?? d.loadTtlMs
        numerics = try c.decodeIfPresent(String.self, forKey: .numerics) ?? d.numerics
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize)
        prefixCache = try c.decodeIfPresent(Bool.self, forKey: .prefixCache)
        timingSample = try c.decodeIfPresent(Int.self, forKey: .timingSample) ?? d.timingSample
    }

    /// Checks the fields a run file may get wrong; the error names the field and what it accepts.
    func validate() throws {
        guard Self.numericsChoices.contains(numerics) else {
            throw CoordinatorError("numerics \(numerics.debugDescription) is not one of \(Self.numericsChoices.joined(separator: ", "))")
        }
        if let b = batchSize, !(1...256).contains(b) { throw CoordinatorError("batchSize \(b) must be between 1 and 256") }
        guard timingSample >= 0 else { throw CoordinatorError("timingSample must be >= 0") }
        guard shardSize > 0 else { throw CoordinatorError("shardSize must be positive") }
        for m in methods {
            do { try m.validate() } catch { throw CoordinatorError("\(error)") }
        }
        guard Set(methods.map(\.name)).count == methods.count else {
            throw CoordinatorError("method names must be unique: \(methods.map(\.name).joined(separator: ", "))")
        }
    }

    /// Expands `methods` over `sweep` (once: a stored run's methods are already expanded), then gives
    /// each CATS threshold-mode method the calibration of its density from `calibrations`.
    mutating func applySweep(calibrations: [CATSCalibration] = []) throws {
        if let sweep { methods = try sweep.expand(methods) }
        for i in methods.indices where methods[i].isSparse && methods[i].sparsity == .cats && methods[i].catsMode == .threshold {
            if let c = calibrations.first(where: { $0.density == methods[i].density }) {
                methods[i].calibration = c
            } else if methods[i].calibration?.density != methods[i].density {
                let have = calibrations.map { MethodSpec.format($0.density) }
                throw CoordinatorError("\(methods[i].name) runs CATS in threshold mode at density \(MethodSpec.format(methods[i].density)) but no calibration for that density was given\(have.isEmpty ? "" : " (have: \(have.joined(separator: ", ")))"). Fix: `sirius-worker calibrate --density \(MethodSpec.format(methods[i].density)) --out cats-\(MethodSpec.format(methods[i].density)).json`, then pass --calibration with that file")
            }
        }
    }

    /// Hash of the fields that determine results; `resume` refuses a different one (T22).
    var configHash: String {
        var h = StableHasher()
        h.combine(model); h.combine(engine)
        for t in tasks { h.combine(t) }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        for m in methods { h.combine((try? enc.encode(m)).map { Array($0) } ?? []) }
        h.combine(runSeed); h.combine(shardSize); h.combine(limit ?? -1); h.combine(maxNewTokens)
        // Only when not the default, so that runs made before numerics were a run setting keep their hash.
        if numerics != "exact" { h.combine(numerics) }
        return h.hex
    }

    var json: String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted]
        return String(decoding: (try? enc.encode(self)) ?? Data(), as: UTF8.self)
    }

    static func load(path: String) throws -> RunConfig {
        do {
            var c = try JSONDecoder().decode(RunConfig.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
            try c.applySweep()
            return c
        } catch let e as CoordinatorError {
            throw CoordinatorError("run file \(path): \(e.description)")
        } catch {
            throw CoordinatorError("cannot read run file \(path): \(error)")
        }
    }

}

/// A user-facing error: says what was wrong and what to do.
struct CoordinatorError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
