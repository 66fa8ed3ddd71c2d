/// How rotary embeddings pair the dimensions of a head (formats.md §1, "the Q/K permutation trap").
public enum RopeStyle: String, Sendable {
    /// Adjacent pairs (x[2i], x[2i+1]): llama.cpp's convention, used with GGUF weights.
    case interleaved
    /// Half split (x[i], x[i + d/2]): Hugging Face's convention, used with safetensors weights.
    case halfSplit
}

/// How the rotary frequencies are scaled for a longer context. transformers defines more types (dynamic,
/// yarn, longrope, proportional); the loaders refuse those by name rather than compute something else.
public enum RopeScaling: Sendable, Equatable {
    /// Positions divided by `factor` (transformers' "linear", llama.cpp's scaling type "linear"): every
    /// inverse frequency is divided by `factor`.
    case linear(factor: Double)
    /// Llama 3.1's wavelength-dependent scaling (transformers' "llama3").
    case llama3(Llama3RopeScaling)
}

/// Llama-3 style frequency scaling (`rope_type == "llama3"`).
public struct Llama3RopeScaling: Sendable, Equatable {
    public var factor: Double
    public var lowFreqFactor: Double
    public var highFreqFactor: Double
    public var originalContextLength: Int

    public init(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalContextLength: Int) {
        self.factor = factor; self.lowFreqFactor = lowFreqFactor
        self.highFreqFactor = highFreqFactor; self.originalContextLength = originalContextLength
    }
}

/// The activation of the gated MLP: act(gate) ⊙ up.
public enum GatedActivation: String, Sendable, Equatable {
    /// x · σ(x) (Llama, Qwen2, Mistral).
    case silu
    /// GELU with the tanh approximation, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (Gemma).
    case geluTanh

    /// The activation of one value (scalar; the kernels' vector versions agree to rounding).
    public func callAsFunction(_ x: Float) -> Float {
        switch self {
        case .silu: x / (1 + expf(-x))
        case .geluTanh: x / (1 + expf(-2 * 0.7978845608028654 * (0.044715 * x * (x * x) + x)))
        }
    }
}

/// The hyper-parameters of a decoder-only transformer of the families the engine runs (Llama, Gemma 3,
/// Qwen2, Mistral): one forward pass, its per-family pieces chosen here at load time.
public struct ModelConfig: Sendable, Equatable {
    public var architecture: String = "llama"
    /// The MLP's activation.
    public var activation: GatedActivation = .silu
    /// Embedding rows are multiplied by this (Gemma: √hidden, rounded to a float); nil: not scaled.
    public var embeddingScale: Float?
    /// The attention scores' scale; nil: 1/√headDim.
    public var attentionScale: Float?
    /// Sliding-window attention: a query at position p sees the positions p − window + 1 … p, in the
    /// layers `slidingLayers` marks (all layers when it is empty); nil: every layer attends to all.
    public var slidingWindow: Int?
    public var slidingLayers: [Bool] = []
    /// The RoPE base of the sliding-window layers when it differs from `ropeTheta` (Gemma 3's local base).
    public var slidingRopeTheta: Double?
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDim: Int
    public var contextLength: Int
    public var rmsNormEps: Float
    public var ropeTheta: Double
    public var ropeScaling: RopeScaling?
    /// Per-pair frequency divisors stored by llama.cpp as `rope_freqs.weight` (Llama-3.1 GGUF files).
    public var ropeFreqFactors: [Float]?
    public var ropeStyle: RopeStyle
    public var tiedEmbeddings: Bool

    public init(vocabSize: Int, hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int,
                kvHeadCount: Int, headDim: Int? = nil, contextLength: Int, rmsNormEps: Float, ropeTheta: Double,
                ropeScaling: RopeScaling? = nil, ropeStyle: RopeStyle, tiedEmbeddings: Bool) {
        self.vocabSize = vocabSize; self.hiddenSize = hiddenSize; self.intermediateSize = intermediateSize
        self.layerCount = layerCount; self.headCount = headCount; self.kvHeadCount = kvHeadCount
        self.headDim = headDim ?? hiddenSize / headCount
        self.contextLength = contextLength; self.rmsNormEps = rmsNormEps; self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling; self.ropeStyle = ropeStyle; self.tiedEmbeddings = tiedEmbeddings
    }

    /// Whether layer `l` attends through the sliding window.
    public func isSliding(layer l: Int) -> Bool {
        guard slidingWindow != nil else { return false }
        return slidingLayers.isEmpty || slidingLayers[l]
    }

    /// The scale of the attention scores.
    public var scoreScale: Float { attentionScale ?? 1 / Float(headDim).squareRoot() }

    public var qDim: Int { headCount * headDim }
    public var kvDim: Int { kvHeadCount * headDim }

    /// Inverse frequencies of the rotary embedding, one per dimension pair, scaling applied.
    /// `theta` replaces the base (the sliding layers' own base); the scaling applies to the global base only.
    public func ropeInverseFrequencies(theta: Double? = nil) -> [Float] {
        let ropeTheta = theta ?? self.ropeTheta
        let ropeScaling = theta == nil ? self.ropeScaling : nil
        let half = headDim / 2
        var out = [Float](repeating: 0, count: half)
        for i in 0..<half {
            var f = 1.0 / pow(ropeTheta, Double(2 * i) / Double(headDim))
            switch ropeScaling {
            case nil: break
            case .linear(let factor): f /= factor
            case .llama3(let s):
                let lowWavelen = Double(s.originalContextLength) / s.lowFreqFactor
                let highWavelen = Double(s.originalContextLength) / s.highFreqFactor
                let wavelen = 2 * Double.pi / f
                if wavelen > lowWavelen {
                    f /= s.factor
                } else if wavelen >= highWavelen {
                    let smooth = (Double(s.originalContextLength) / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor)
                    f = (1 - smooth) * f / s.factor + smooth * f
                }
            }
            if theta == nil, let ff = ropeFreqFactors, i < ff.count { f /= Double(ff[i]) }
            out[i] = Float(f)
        }
        return out
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
