import Foundation

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

/// Plain autoregressive decoding: dense prefill, then one token per step with the full model, or with
/// a sparse MLP (the Griffin / CATS baselines without correction).
public enum PlainDecoder {
    /// Generates from `promptIDs` on `transformer` (its cache is reset first).
    /// `onText` receives committed text as it becomes visible.
    public static func generate(_ t: Transformer, promptIDs: [Int32], committed: CommittedText,
                                sampling: SamplingParams, sparse: SparseMLP? = nil,
                                onText: ((String) -> Void)? = nil) throws -> GenerationResult {
        try checkFits(promptIDs.count, committed.maxNewTokens, t)
        t.cache.reset()
        var sampler = Sampler(params: sampling)
        var timings = GenerationTimings()
        let clock = ContinuousClock()
        let s0 = clock.now
        // The prefill is always dense (sirius-method.md §2); a sparse MLP takes over after it.
        t.mlpOverride = nil
        sparse?.beginPrompt()
        var logits = t.forward(tokens: promptIDs, start: 0)
        if let sparse {
            sparse.freeze()
            t.mlpOverride = { [unowned sparse] l, x, y, n in sparse.run(layer: l, input: x, output: y, tokens: n) }
        }
        defer { t.mlpOverride = nil }
        timings.prefillSeconds = (clock.now - s0).seconds
        var next = sampler.sample(UnsafeBufferPointer(logits))
        var piece = committed.append(next)
        if !piece.isEmpty { onText?(piece) }
        var step: [Int32] = [0]
        let d0 = clock.now
        while !committed.isFinished {
            if t.cache.count >= t.cache.capacity {
                piece = committed.finish(.context)
                if !piece.isEmpty { onText?(piece) }
                break
            }
            step[0] = next
            logits = t.forward(tokens: step, start: t.cache.count)
            next = sampler.sample(UnsafeBufferPointer(logits))
            timings.decodeTokens += 1
            piece = committed.append(next)
            if !piece.isEmpty { onText?(piece) }
        }
        timings.decodeSeconds = (clock.now - d0).seconds
        return GenerationResult(promptIDs: promptIDs, outputIDs: committed.ids, text: committed.text,
                                stopReason: committed.stopReason ?? .length, timings: timings)
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
