import Foundation
import SiriusEngine
import SiriusMethod
import TestSupport

/// Shared set-up of the Sirius / sparsity tests: tiny random GGUF models and the three decoders run
/// side by side on fresh transformers.
enum SiriusRig {
    /// A tiny random Llama (hidden 64, intermediate 128, 2 layers, GQA, vocab 300) stored as `type`.
    static func tinyModel(_ type: GGMLType = .f32, seed: UInt64 = 11, layers: Int = 2) throws -> LanguageModel {
        var spec = TinyLlamaSpec.small(seed: seed)
        spec.layers = layers
        return try TinyLlama(spec).loadGGUF(TinyWeightTypes(type)).model
    }

    /// Random prompts of the given lengths.
    static func prompts(_ lengths: [Int], vocab: Int, seed: UInt64) -> [[Int32]] {
        lengths.enumerated().map { i, n in TinyLlama.tokens(n, vocab: vocab, seed: seed &+ UInt64(i) &* 7919) }
    }

    /// KV capacity that never cuts a Sirius run short: prompt, new tokens and one period's tree.
    static func capacity(prompt: Int, maxNew: Int, method: MethodSpec = MethodSpec(kind: .sirius)) -> Int {
        prompt + maxNew + method.extraCachePositions + 1
    }

    /// A Sirius method with argmax acceptance (lossless), or as given.
    static func sirius(_ kind: SparsityKind, density: Double = 0.5, period: Int, width: Int = 1,
                       acceptance: AcceptanceRule = .argmax, threshold: Double = 0.1) -> MethodSpec {
        MethodSpec(kind: .sirius, sparsity: kind, density: density, period: period, threshold: threshold,
                   acceptance: acceptance, treeWidth: width)
    }

    /// Dense greedy decoding (`full`).
    static func fullGreedy(_ model: LanguageModel, prompt: [Int32], maxNew: Int, capacity: Int? = nil,
                           eos: Set<Int32> = [], numerics: Numerics = .exact) throws -> [Int32] {
        let t = Transformer(model: model, capacity: capacity ?? (prompt.count + maxNew + 1), numerics: numerics)
        let committed = CommittedText(tokenizer: nil, maxNewTokens: maxNew, eosIDs: eos)
        return try PlainDecoder.generate(t, promptIDs: prompt, committed: committed, sampling: SamplingParams()).outputIDs
    }

    /// One generation with `method` on a fresh transformer; `afterPeriod` sees the transformer, the
    /// committed text and the number of cached positions after each period's rollback.
    static func run(_ model: LanguageModel, prompt: [Int32], method: MethodSpec, maxNew: Int, eos: Set<Int32> = [],
                    weights: SparseWeights? = nil, numerics: Numerics = .exact,
                    afterPeriod: ((Transformer, CommittedText, Int) -> Void)? = nil) throws -> MethodOutcome {
        let t = Transformer(model: model, capacity: capacity(prompt: prompt.count, maxNew: maxNew, method: method),
                            numerics: numerics)
        let committed = CommittedText(tokenizer: nil, maxNewTokens: maxNew, eosIDs: eos)
        return try MethodRunner(transformer: t, weights: weights)
            .generate(method, promptIDs: prompt, committed: committed, afterPeriod: afterPeriod.map { f in { f(t, committed, $0) } })
    }
}
