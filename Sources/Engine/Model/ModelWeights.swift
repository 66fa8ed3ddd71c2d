/// The weights of one transformer block.
public struct LayerWeights: Sendable {
    public var attnNorm: [Float]
    public var wq: WeightMatrix
    public var wk: WeightMatrix
    public var wv: WeightMatrix
    public var wo: WeightMatrix
    public var ffnNorm: [Float]
    public var gate: WeightMatrix
    public var up: WeightMatrix
    public var down: WeightMatrix
    /// Per-head RMSNorm weights of the queries and keys, applied before RoPE (Gemma 3); `[headDim]`.
    public var qNorm: [Float]? = nil
    public var kNorm: [Float]? = nil
    /// RMSNorms of the attention output and of the MLP output, before each is added to the residual
    /// stream (Gemma 3); `[hidden]`.
    public var postAttentionNorm: [Float]? = nil
    public var postMLPNorm: [Float]? = nil
    /// Biases of the query, key and value projections (Qwen2); `[qDim]`, `[kvDim]`, `[kvDim]`.
    public var qBias: [Float]? = nil
    public var kBias: [Float]? = nil
    public var vBias: [Float]? = nil
}

/// A loaded model (any of the supported families): configuration plus weights (immutable, shareable).
public final class LanguageModel: Sendable {
    public let config: ModelConfig
    public let tokenEmbedding: WeightMatrix
    public let outputNorm: [Float]
    /// The output projection; the token embedding itself when the model ties them.
    public let output: WeightMatrix
    public let layers: [LayerWeights]
    /// Where the weights came from (for messages).
    public let source: String

    public init(config: ModelConfig, tokenEmbedding: WeightMatrix, outputNorm: [Float], output: WeightMatrix,
                layers: [LayerWeights], source: String) {
        self.config = config; self.tokenEmbedding = tokenEmbedding; self.outputNorm = outputNorm
        self.output = output; self.layers = layers; self.source = source
    }

    /// Bytes of weights one dense decode step reads: every layer matrix plus the output projection
    /// (the single embedding row looked up is not counted; sirius-method.md §11 "model density").
    public var denseDecodeBytes: Int {
        layers.reduce(output.byteCount) { acc, l in
            acc + l.wq.byteCount + l.wk.byteCount + l.wv.byteCount + l.wo.byteCount
                + l.gate.byteCount + l.up.byteCount + l.down.byteCount
        }
    }

    /// Total parameter count (embedding and output counted once each; tied counts once).
    public var parameterCount: Int {
        let c = config
        let perLayer = 2 * c.hiddenSize + c.hiddenSize * (c.qDim + 2 * c.kvDim) + c.qDim * c.hiddenSize
            + 3 * c.hiddenSize * c.intermediateSize
        return c.vocabSize * c.hiddenSize * (c.tiedEmbeddings ? 1 : 2) + c.hiddenSize + c.layerCount * perLayer
    }
}
