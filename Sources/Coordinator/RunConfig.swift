import Foundation
import SiriusProtocol

/// Everything that defines a run's results (§4.5 `runs.config_json`). Timing knobs (heartbeat,
/// lease TTL) are operational and kept out of the config hash, so a resume may change them.
struct RunConfig: Codable, Sendable, Equatable {
    var model: String = "smollm2-135m-instruct"
    /// `fake` or `sirius` (the real engine); passed to every worker.
    var engine: String = "fake"
    var tasks: [String] = ["synthetic:64"]
    var methods: [MethodSpec] = RunConfig.defaultMethods
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

    static let defaultMethods: [MethodSpec] = [
        .full,
        MethodSpec(name: "griffin@0.5", kind: .sparse, sparsity: "griffin", density: 0.5),
        MethodSpec(name: "sirius/griffin@0.5", kind: .sirius, sparsity: "griffin", density: 0.5,
                   period: 16, threshold: 0.1, treeWidth: 1, acceptance: "threshold"),
    ]

    enum CodingKeys: String, CodingKey {
        case model, engine, tasks, methods, runSeed, shardSize, limit, maxNewTokens, maxAttempts
        case heartbeatMs, leaseTtlMs, loadTtlMs
    }

    init() {}

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = RunConfig()
        model = try c.decodeIfPresent(String.self, forKey: .model) ?? d.model
        engine = try c.decodeIfPresent(String.self, forKey: .engine) ?? d.engine
        tasks = try c.decodeIfPresent([String].self, forKey: .tasks) ?? d.tasks
        methods = try c.decodeIfPresent([MethodSpec].self, forKey: .methods) ?? d.methods
        runSeed = try c.decodeIfPresent(UInt64.self, forKey: .runSeed) ?? d.runSeed
        shardSize = try c.decodeIfPresent(Int.self, forKey: .shardSize) ?? d.shardSize
        limit = try c.decodeIfPresent(Int.self, forKey: .limit)
        maxNewTokens = try c.decodeIfPresent(Int.self, forKey: .maxNewTokens) ?? d.maxNewTokens
        maxAttempts = try c.decodeIfPresent(Int.self, forKey: .maxAttempts) ?? d.maxAttempts
        heartbeatMs = try c.decodeIfPresent(Int.self, forKey: .heartbeatMs) ?? d.heartbeatMs
        leaseTtlMs = try c.decodeIfPresent(Int.self, forKey: .leaseTtlMs) ?? d.leaseTtlMs
        loadTtlMs = try c.decodeIfPresent(Int.self, forKey: .loadTtlMs) ?? d.loadTtlMs
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
        return h.hex
    }

    var json: String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted]
        return String(decoding: (try? enc.encode(self)) ?? Data(), as: UTF8.self)
    }

    static func load(path: String) throws -> RunConfig {
        do {
            return try JSONDecoder().decode(RunConfig.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw CoordinatorError("cannot read run file \(path): \(error)")
        }
    }

    /// Parses the CLI method syntax: `full`, `griffin@0.5`, `cats@0.5`, `sirius/griffin@0.5`.
    static func parseMethod(_ s: String, period: Int, threshold: Double, treeWidth: Int, acceptance: String) throws -> MethodSpec {
        if s == "full" { return .full }
        var rest = Substring(s)
        var sirius = false
        if rest.hasPrefix("sirius/") { sirius = true; rest = rest.dropFirst("sirius/".count) }
        let parts = rest.split(separator: "@")
        guard parts.count == 2, ["griffin", "cats"].contains(String(parts[0])), let d = Double(parts[1]), d > 0, d <= 1 else {
            throw CoordinatorError("bad method \(s.debugDescription): use full, griffin@D, cats@D or sirius/griffin@D (D = density kept, 0–1)")
        }
        if sirius {
            return MethodSpec(name: s, kind: .sirius, sparsity: String(parts[0]), density: d, period: period,
                              threshold: threshold, treeWidth: treeWidth, acceptance: acceptance)
        }
        return MethodSpec(name: s, kind: .sparse, sparsity: String(parts[0]), density: d)
    }
}

/// A user-facing error: says what was wrong and what to do.
struct CoordinatorError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
