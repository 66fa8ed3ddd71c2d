import Foundation
import SiriusMethod

/// Timings of one generation, in seconds.
public struct GenerationTimings: Sendable, Codable, Equatable {
    public var prefillSeconds = 0.0
    public var decodeSeconds = 0.0
    /// Tokens produced by decode steps after the first (the first comes from the prefill's logits).
    public var decodeTokens = 0
    public var decodeTokensPerSecond: Double { decodeSeconds > 0 ? Double(decodeTokens) / decodeSeconds : 0 }
    public init() {}
}

/// The result of one generation.
public struct GenerationResult: Sendable {
    public var promptIDs: [Int32]
    public var outputIDs: [Int32]
    public var text: String
    public var stopReason: StopReason
    public var timings: GenerationTimings
}

/// A generation was asked for that cannot run; says why and what to do.
public struct GenerationError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The outcome of one generation by any method, with what the reports need.
public struct MethodOutcome: Sendable {
    public var generation: GenerationResult
    /// Periods, advances, rollbacks, … (zero for `full`; sparse steps for the sparse baselines).
    public var counters: DecodeCounters
    public var timings: PhaseTimings
    /// Weight bytes of one sparse step relative to a dense step; nil for `full`.
    public var modelDensity: Double?
    /// The paper's parameter-count density; nil for `full`.
    public var paramDensity: Double?
    /// Prompt tokens whose K/V came from the prefix cache.
    public var reusedPromptTokens: Int

    /// The outcome of a finished sequence.
    public init(_ seq: DecodeSequence, config: ModelConfig) {
        var g = GenerationTimings()
        g.prefillSeconds = seq.timings.prefillSeconds
        g.decodeSeconds = max(0, seq.timings.totalSeconds - seq.timings.prefillSeconds)
        g.decodeTokens = max(0, seq.committed.ids.count - 1)
        generation = GenerationResult(promptIDs: seq.promptIDs, outputIDs: seq.committed.ids, text: seq.committed.text,
                                      stopReason: seq.stopReason, timings: g)
        counters = seq.counters
        timings = seq.timings
        modelDensity = seq.modelDensity
        paramDensity = seq.method.paramDensity(config)
        reusedPromptTokens = seq.reusedPromptTokens
    }
}

/// Runs one generation at a time on a transformer's own cache: a `BatchDecoder` with one sequence, so a
/// generation here takes exactly the passes it takes inside a batch. Holds the per-model sparse data
/// (CATS's neuron-major down copies), made once on first use. One owner, like the transformer.
public final class MethodRunner {
    public let transformer: Transformer
    public let weights: SparseWeights

    public init(transformer: Transformer, weights: SparseWeights? = nil) {
        self.transformer = transformer
        self.weights = weights ?? SparseWeights(model: transformer.model)
    }

    /// Generates from `promptIDs` with `method`. `onText` receives committed text as it becomes visible;
    /// `afterPeriod` is called after every Sirius period (a test hook: see `DecodeSequence.afterPeriod`).
    public func generate(_ method: MethodSpec, promptIDs: [Int32], committed: CommittedText,
                         sampling: SamplingParams = SamplingParams(), onText: ((String) -> Void)? = nil,
                         afterPeriod: ((Int) -> Void)? = nil) throws -> MethodOutcome {
        let batch = BatchDecoder(transformer: transformer, weights: weights)
        let seq = try batch.admit(method: method, promptIDs: promptIDs, committed: committed, sampling: sampling,
                                  cache: transformer.cache)
        seq.onText = onText
        seq.afterPeriod = afterPeriod
        batch.runToCompletion()
        return MethodOutcome(seq, config: transformer.config)
    }
}

/// Plain autoregressive decoding with the full model, one sequence at a time.
public enum PlainDecoder {
    /// Generates from `promptIDs` on `transformer`'s own cache (reset first).
    public static func generate(_ t: Transformer, promptIDs: [Int32], committed: CommittedText,
                                sampling: SamplingParams, onText: ((String) -> Void)? = nil) throws -> GenerationResult {
        try MethodRunner(transformer: t).generate(.full, promptIDs: promptIDs, committed: committed, sampling: sampling,
                                                  onText: onText).generation
    }

    /// The prompt must fit the cache with room for at least one new token.
    public static func checkFits(_ promptCount: Int, _ maxNew: Int, _ t: Transformer) throws {
        guard promptCount > 0 else { throw GenerationError("the prompt is empty: give some text to continue") }
        guard promptCount < t.cache.capacity else {
            throw GenerationError("the prompt has \(promptCount) tokens but the context holds \(t.cache.capacity): shorten the prompt or raise --context (the model allows up to \(t.config.contextLength))")
        }
    }
}

extension Duration {
    /// The duration in seconds as a Double.
    public var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) * 1e-18
    }
}
