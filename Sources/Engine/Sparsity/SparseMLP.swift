import SiriusMethod

/// A sparse MLP that one sequence decodes with (sirius-method.md §2): Griffin's neurons kept for its
/// prompt, or CATS's per-token active neurons. Owned by its sequence; `run` executes inside a forward
/// pass (a segment's `MLPRoute.sparse`) on that pass's backend and scratch.
public protocol SparseMLP: AnyObject {
    /// Fraction of MLP neurons kept.
    var density: Double { get }
    /// Runs layer `layer`'s sparse MLP on `tokens` rows of `input`, writing `output` (`[tokens][hidden]`).
    /// With several rows (tree drafting), CATS shares one mask across them (§2.2 patternstrict).
    func run(layer: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, tokens: Int, in transformer: Transformer)
    /// Weight bytes of one sparse decode step relative to one dense step (sirius-method.md §11).
    var modelDensity: Double { get }
}

/// What the sparse MLPs of one model share: the neuron-major down copies Griffin and CATS read, made
/// once on first use, and the batched Griffin step's buffers. One per model and engine thread.
public final class SparseWeights {
    public let model: LanguageModel
    private var down: NeuronMajorDown?
    /// Buffers of the batched Griffin step.
    let griffinScratch = GriffinScratch()
    /// How many Griffin MLPs of this model may hold contiguous copies of their kept rows at once
    /// (`GriffinMLP.PackedRows`, about half the MLP weights each). A sequence alone in its pass without
    /// a copy, when the limit is reached, reads its kept rows where they are: same bits, slower. The
    /// default 2 covers the sequence decoded alone of a batch-1 worker and a batched worker's last one;
    /// copies go with their sequences, never evicted, so nothing is copied twice.
    public var packedCopyLimit = 2
    /// Griffin MLPs of this model holding such a copy now.
    public internal(set) var packedCopies = 0

    public init(model: LanguageModel) { self.model = model }

    /// The neuron-major down projections (made on the first call).
    public var neuronMajorDown: NeuronMajorDown {
        if let down { return down }
        let d = NeuronMajorDown(model: model)
        down = d
        return d
    }

    /// The sparse MLP of `method` for one sequence; Griffin selects its neurons from `scores` (the
    /// sequence's dense prefill).
    public func makeMLP(_ method: MethodSpec, scores: PromptScores) -> any SparseMLP {
        switch method.sparsity {
        case .griffin: GriffinMLP(weights: self, scores: scores, density: method.density)
        case .cats: CATSMLP(model: model, density: method.density, mode: method.catsMode, calibration: method.calibration,
                            down: neuronMajorDown)
        }
    }
}

/// Model density from the MLP bytes one sparse step reads: (dense bytes − dense MLP bytes + sparse MLP
/// bytes) / dense bytes.
func sparseModelDensity(_ model: LanguageModel, mlpBytesPerStep sparse: Double) -> Double {
    let dense = Double(model.denseDecodeBytes)
    let mlpDense = Double(model.layers.reduce(0) { $0 + $1.gate.byteCount + $1.up.byteCount + $1.down.byteCount })
    return (dense - mlpDense + sparse) / dense
}

extension MethodSpec {
    /// Neurons kept per layer of `width`: floor(density · width), at least 1.
    public func keptNeurons(_ width: Int) -> Int { max(1, min(width, Int((density * Double(width)).rounded(.down)))) }

    /// The paper's parameter-count density (§5.2): 1 − s·P_mlp/P_total for Griffin (gate, up and down
    /// pruned), 1 − s·(2/3)·P_mlp/P_total for CATS (gate dense), with s = 1 − density; nil for `full`.
    public func paramDensity(_ c: ModelConfig) -> Double? {
        guard isSparse else { return nil }
        let mlp = Double(c.layerCount * 3 * c.hiddenSize * c.intermediateSize)
        let perLayer = 2 * c.hiddenSize + c.hiddenSize * (c.qDim + 2 * c.kvDim) + c.qDim * c.hiddenSize + 3 * c.hiddenSize * c.intermediateSize
        // The paper counts embedding and lm_head separately even when tied (§5.2).
        let total = Double(2 * c.vocabSize * c.hiddenSize + c.hiddenSize + c.layerCount * perLayer)
        let s = 1 - density
        return 1 - s * (sparsity == .griffin ? 1 : 2.0 / 3.0) * mlp / total
    }
}
