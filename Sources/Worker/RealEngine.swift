import Foundation
import SiriusEngine
import SiriusProtocol

/// The Sirius engine behind `sirius-worker join --engine sirius`: one model and one transformer,
/// created and used on the worker's engine thread only.
final class SiriusEvaluationEngine: EvaluationEngine {
    let name = "sirius"
    let device: String
    let threads: Int
    let numerics: Numerics
    private var loaded: LoadedModel?
    private var modelPath: String?
    private var runner: MethodRunner?
    /// KV-cache positions at most (prompt, generation and one Sirius period).
    static let maxContext = 4096

    init(threads: Int, numerics: Numerics) {
        self.threads = threads
        self.numerics = numerics
        device = "cpu (\(threads) thread\(threads == 1 ? "" : "s"), \(numerics.rawValue))"
    }

    func prepare(model: String, method: MethodSpec) throws {
        // "smollm2-135m-instruct" (the runs' default model reference) names the development model.
        let aliases = ["", "default", "smollm2-135m-instruct"]
        let path = aliases.contains(model.lowercased()) ? EngineOptions.defaultModel : (model as NSString).expandingTildeInPath
        if modelPath != path {
            do {
                loaded = try LoadedModel(path: path)
            } catch {
                throw EngineFailure(.fatalConfig, "cannot load model: \(error)")
            }
            modelPath = path
            let m = loaded!.model
            runner = MethodRunner(transformer: Transformer(model: m, capacity: min(m.config.contextLength, Self.maxContext),
                                                           numerics: numerics, threads: threads))
        }
        _ = try decodingMethod(method)
    }

    func decodingMethod(_ m: MethodSpec) throws -> DecodingMethod {
        let kind = SparsityKind(rawValue: m.sparsity ?? "griffin")
        guard let kind else { throw EngineFailure(.fatalConfig, "unknown sparsity '\(m.sparsity ?? "")' (griffin or cats)") }
        guard let catsMode = CATSMode(rawValue: m.catsMode ?? "topk") else {
            throw EngineFailure(.fatalConfig, "unknown cats mode '\(m.catsMode ?? "")' (topk or threshold)")
        }
        if catsMode == .threshold {
            throw EngineFailure(.fatalConfig, "cats threshold mode needs a calibration file, which runs do not carry yet; use cats_mode topk")
        }
        let s = SparsityConfig(kind: kind, density: m.density ?? 0.5, catsMode: catsMode)
        switch m.kind {
        case .full: return .full
        case .sparse: return .sparse(s)
        case .sirius:
            guard let rule = AcceptanceRule(rawValue: m.acceptance ?? "threshold") else {
                throw EngineFailure(.fatalConfig, "unknown acceptance rule '\(m.acceptance ?? "")'")
            }
            return .sirius(s, SiriusParams(period: m.period ?? 16, threshold: Float(m.threshold ?? 0.1), acceptance: rule,
                                           treeWidth: m.treeWidth ?? 1))
        }
    }

    func run(_ request: ExampleRequest) throws -> ExampleOutcome {
        guard let loaded, let runner else { throw EngineFailure(.engineError, "run before prepare") }
        let method = try decodingMethod(request.method)
        if request.chat == true && loaded.tokenizer.chatFormat == nil {
            // Every chat example of the run would fail the same way: leave the run with the reason.
            throw EngineFailure(.fatalConfig, "the task asks for the chat format, but the model \(modelPath ?? "") has no chat template this engine recognises (ChatML, Llama-3, Llama-2); use an instruct model's GGUF")
        }
        let ids = try loaded.encode(segments: request.promptSegments ?? [request.prompt], addBOS: request.addBOS,
                                    chat: request.chat ?? false)
        var maxNew = request.maxNewTokens
        if let total = request.maxTotalTokens { maxNew = min(maxNew, total - ids.count) }
        var extra = 0
        if case .sirius(_, let p) = method { extra = (p.period - 1) * p.treeWidth + 1 }
        let cap = runner.transformer.cache.capacity
        guard ids.count + 1 + extra <= cap else {
            throw EngineFailure(.engineError, "prompt of \(ids.count) tokens does not fit the \(cap)-token context"
                                + (extra > 0 ? " with the \(extra) positions a Sirius period reserves" : "")
                                + " (model context \(loaded.model.config.contextLength), capped at \(Self.maxContext))")
        }
        maxNew = max(0, min(maxNew, cap - ids.count - extra))
        guard maxNew > 0 else {
            return ExampleOutcome(text: "", promptTokens: ids.count, generatedTokens: 0, stopReason: "length")
        }
        let committed = CommittedText(tokenizer: loaded.tokenizer, maxNewTokens: maxNew, stopStrings: request.stop,
                                      eosIDs: loaded.tokenizer.eosIDs)
        let clock = ContinuousClock()
        let t0 = clock.now
        let o = try runner.generate(method, promptIDs: ids, committed: committed)
        let total = (clock.now - t0).seconds
        let c = o.counters
        let g = o.generation
        return ExampleOutcome(
            text: g.text, promptTokens: ids.count, generatedTokens: g.outputIDs.count, stopReason: g.stopReason.rawValue,
            counters: SiriusCounters(periods: c.periods, advancedTokens: c.advancedTokens, rollbacks: c.rollbacks,
                                     rolledBackTokens: c.rolledBackTokens, sparseSteps: c.sparseSteps,
                                     densePasses: c.densePasses, tokensVerified: c.tokensVerified),
            modelDensity: o.modelDensity, paperDensity: o.paperDensity,
            timings: PhaseTimings(prefillSeconds: g.timings.prefillSeconds,
                                  sparseSeconds: c.sparseSeconds, verifySeconds: c.verifySeconds, totalSeconds: total))
    }
}
