/// What decodes a generation (sirius-method.md §11 vocabulary).
public enum DecodingMethod: Sendable, Equatable {
    /// Dense greedy (or sampled) decoding with the full model.
    case full
    /// Dense prefill, then the sparse model alone (the Griffin / CATS baselines).
    case sparse(SparsityConfig)
    /// Sparse drafting corrected by the full model.
    case sirius(SparsityConfig, SiriusParams)

    public var name: String {
        switch self {
        case .full: "full"
        case .sparse(let s): s.kind.rawValue
        case .sirius: "sirius"
        }
    }
}

/// The outcome of one generation by any method, with what the reports need.
public struct MethodOutcome: Sendable {
    public var generation: GenerationResult
    /// Sirius counters (periods, advances, rollbacks, …) and per-phase seconds; for `full` and
    /// `sparse` only the timings and step counts are filled.
    public var counters: DecodeCounters
    /// Weight bytes of one sparse step relative to a dense step; nil for `full`.
    public var modelDensity: Double?
    /// The paper's parameter-count density; nil for `full`.
    public var paperDensity: Double?
}

/// Runs any decoding method on one transformer. Holds the per-model data the sparse methods share
/// (the neuron-major down copies CATS reads), made once on first use. One owner, like the transformer.
public final class MethodRunner {
    public let transformer: Transformer
    private var downT: NeuronMajorDown?

    public init(transformer: Transformer) { self.transformer = transformer }

    public func generate(_ method: DecodingMethod, promptIDs: [Int32], committed: CommittedText,
                         sampling: SamplingParams = SamplingParams(), onText: ((String) -> Void)? = nil) throws -> MethodOutcome {
        switch method {
        case .full:
            let r = try PlainDecoder.generate(transformer, promptIDs: promptIDs, committed: committed, sampling: sampling, onText: onText)
            var c = DecodeCounters()
            c.prefillSeconds = r.timings.prefillSeconds
            return MethodOutcome(generation: r, counters: c, modelDensity: nil, paperDensity: nil)
        case .sparse(let s):
            let mlp = sparseMLP(s)
            let r = try PlainDecoder.generate(transformer, promptIDs: promptIDs, committed: committed, sampling: sampling,
                                              sparse: mlp, onText: onText)
            var c = DecodeCounters()
            c.prefillSeconds = r.timings.prefillSeconds
            c.sparseSeconds = r.timings.decodeSeconds
            c.sparseSteps = r.timings.decodeTokens
            return MethodOutcome(generation: r, counters: c, modelDensity: mlp.modelDensity,
                                 paperDensity: s.paperDensity(transformer.config))
        case .sirius(let s, let p):
            guard sampling.isGreedy else {
                throw GenerationError("sirius decodes greedily (as the paper): drop --temperature, or use --method full")
            }
            let mlp = sparseMLP(s)
            let r = try SiriusDecoder(transformer: transformer, sparse: mlp, params: p)
                .generate(promptIDs: promptIDs, committed: committed, onText: onText)
            return MethodOutcome(generation: r.generation, counters: r.counters, modelDensity: mlp.modelDensity,
                                 paperDensity: s.paperDensity(transformer.config))
        }
    }

    /// The sparse MLP for a configuration (CATS shares the neuron-major down copies).
    public func sparseMLP(_ s: SparsityConfig) -> SparseMLP {
        if s.kind == .cats && downT == nil { downT = NeuronMajorDown(model: transformer.model) }
        return SparseMLP(transformer: transformer, config: s, downT: s.kind == .cats ? downT : nil)
    }
}
