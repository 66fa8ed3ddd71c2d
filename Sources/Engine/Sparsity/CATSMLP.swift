import CKernels
import SiriusMethod

/// CATS (fine contextual sparsity, §2.2): per token, the neurons with the largest |silu(gate)| (top-k)
/// or those above a per-layer calibrated threshold; the gate projection is dense, then only the active
/// neurons' up rows and neuron-major down rows are read. Top-k ties go to the lower index; the choice
/// (`ck_cats_select`) is a binary search over the magnitudes' bits on AVX-512, a radix select elsewhere,
/// no sort. Scratch sized once; one per sequence.
public final class CATSMLP: SparseMLP {
    public let density: Double
    public let mode: CATSMode
    public let calibration: CATSCalibration?
    let model: LanguageModel
    let down: NeuronMajorDown
    let d: Int, h: Int, k: Int
    private var active: UnsafeMutablePointer<Int32>
    private var coef: UnsafeMutablePointer<Float>
    private var mag: UnsafeMutablePointer<Float>
    private var tmp: UnsafeMutablePointer<Float>
    /// Bytes of MLP weights read and active neurons chosen by sparse steps, per layer (for the measured
    /// model density and the realised density of threshold mode).
    public private(set) var mlpBytesRead = 0
    public private(set) var layerSteps: [Int]
    public private(set) var activeNeurons: [Int]
    private var lastCount = 0
    /// The active neurons of the last layer run (ascending), for tests and diagnostics.
    public var lastActive: [Int32] { Array(UnsafeBufferPointer(start: active, count: lastCount)) }

    public init(model: LanguageModel, density: Double, mode: CATSMode = .topk, calibration: CATSCalibration? = nil,
                down: NeuronMajorDown) {
        self.model = model
        self.density = density; self.mode = mode; self.calibration = calibration; self.down = down
        let c = model.config
        d = c.intermediateSize; h = c.hiddenSize
        k = max(1, min(d, Int((density * Double(d)).rounded(.down))))
        active = .allocate(capacity: d); coef = .allocate(capacity: d); mag = .allocate(capacity: d)
        tmp = .allocate(capacity: d)
        layerSteps = Array(repeating: 0, count: c.layerCount)
        activeNeurons = Array(repeating: 0, count: c.layerCount)
    }

    deinit {
        active.deallocate(); coef.deallocate(); mag.deallocate(); tmp.deallocate()
    }

    /// Bytes of MLP weights one sparse step reads, summed over layers: measured once steps ran (threshold
    /// mode varies per token), else the top-k count.
    public var mlpBytesPerStep: Double {
        let steps = layerSteps.reduce(0, +)
        if steps > 0 { return Double(mlpBytesRead) / Double(steps) * Double(model.config.layerCount) }
        return Double(model.layers.enumerated().reduce(0) { acc, e in
            acc + e.element.gate.byteCount + k * (e.element.up.rowBytes + down.layers[e.offset].rowBytes)
        })
    }

    public var modelDensity: Double { sparseModelDensity(model, mlpBytesPerStep: mlpBytesPerStep) }

    public func run(layer l: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, tokens T: Int, in transformer: Transformer) {
        let b = transformer.backend
        let g = transformer.mlpScratch.gate
        let layer = model.layers[l]
        let dt = down.layers[l]
        b.matmul(layer.gate, input, g, tokens: T)
        b.activate(transformer.config.activation, g, nil, count: T * d)
        // Active set from |silu(gate)|, summed over the rows when there are several.
        let byThreshold = mode == .threshold && calibration.map { l < $0.thresholds.count } == true
        let threshold = byThreshold ? calibration!.thresholds[l] * Float(T) : 0
        let n = Int(ck_cats_select(g, Int64(T), Int64(d), Int64(k), threshold, byThreshold ? 1 : 0, mag, active))
        lastCount = n
        layerSteps[l] += 1
        activeNeurons[l] += n
        for t in 0..<T {
            let gt = g + t * d
            b.matvecRows(layer.up, rows: active, count: n, input + t * h, tmp)
            for i in 0..<n { coef[i] = gt[Int(active[i])] * tmp[i] }
            let out = output + t * h
            out.initialize(repeating: 0, count: h)
            b.accumulateRows(dt, coefficients: coef, rows: active, count: n, into: out)
        }
        mlpBytesRead += layer.gate.byteCount + n * (layer.up.rowBytes + dt.rowBytes)
    }
}
