import SiriusMethod

/// CATS (fine contextual sparsity, §2.2): per token, the neurons with the largest |silu(gate)| (top-k)
/// or those above a per-layer calibrated threshold; the gate projection is dense, then only the active
/// neurons' up rows and neuron-major down rows are read. Scratch sized once; one per sequence.
public final class CATSMLP: SparseMLP {
    public let density: Double
    public let mode: CATSMode
    public let calibration: CATSCalibration?
    let model: LlamaModel
    let down: NeuronMajorDown
    let d: Int, h: Int, k: Int
    private var active: UnsafeMutablePointer<Int32>
    private var coef: UnsafeMutablePointer<Float>
    private var mag: UnsafeMutablePointer<Float>
    private var order: UnsafeMutablePointer<Int32>
    private var kept: UnsafeMutablePointer<UInt8>
    private var tmp: UnsafeMutablePointer<Float>
    /// Bytes of MLP weights read and active neurons chosen by sparse steps, per layer (for the measured
    /// model density and the realised density of threshold mode).
    public private(set) var mlpBytesRead = 0
    public private(set) var layerSteps: [Int]
    public private(set) var activeNeurons: [Int]

    public init(model: LlamaModel, density: Double, mode: CATSMode = .topk, calibration: CATSCalibration? = nil,
                down: NeuronMajorDown) {
        self.model = model
        self.density = density; self.mode = mode; self.calibration = calibration; self.down = down
        let c = model.config
        d = c.intermediateSize; h = c.hiddenSize
        k = max(1, min(d, Int((density * Double(d)).rounded(.down))))
        active = .allocate(capacity: d); coef = .allocate(capacity: d); mag = .allocate(capacity: d)
        order = .allocate(capacity: d); tmp = .allocate(capacity: d); kept = .allocate(capacity: d)
        layerSteps = Array(repeating: 0, count: c.layerCount)
        activeNeurons = Array(repeating: 0, count: c.layerCount)
    }

    deinit {
        active.deallocate(); coef.deallocate(); mag.deallocate(); order.deallocate(); tmp.deallocate(); kept.deallocate()
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
        b.siluMul(g, nil, count: T * d)
        // Active set from |silu(gate)|, summed over the rows when there are several.
        for j in 0..<d { mag[j] = abs(g[j]) }
        if T > 1 { for t in 1..<T { for j in 0..<d { mag[j] += abs(g[t * d + j]) } } }
        let n = selectActive(layer: l, tokens: T)
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

    /// Fills `active` (ascending) with the layer's active neurons for the magnitudes in `mag`; returns the count.
    private func selectActive(layer l: Int, tokens T: Int) -> Int {
        if mode == .threshold, let cal = calibration, l < cal.thresholds.count {
            let t = cal.thresholds[l] * Float(T)
            var n = 0
            for j in 0..<d where mag[j] > t { active[n] = Int32(j); n += 1 }
            return n
        }
        // Top-k by magnitude: quickselect on a copy of the indices, then list the kept ones in order.
        for j in 0..<d { order[j] = Int32(j) }
        var lo = 0, hi = d - 1
        let kth = k - 1
        while lo < hi {
            let pivot = mag[Int(order[(lo + hi) / 2])]
            var i = lo, j = hi
            while i <= j {
                while mag[Int(order[i])] > pivot { i += 1 }
                while mag[Int(order[j])] < pivot { j -= 1 }
                if i <= j { let s = order[i]; order[i] = order[j]; order[j] = s; i += 1; j -= 1 }
            }
            if kth <= j { hi = j } else if kth >= i { lo = i } else { break }
        }
        // The first k of `order` are the kept neurons; list them in ascending order with one scan.
        kept.initialize(repeating: 0, count: d)
        for i in 0..<k { kept[Int(order[i])] = 1 }
        var n = 0
        for j in 0..<d where kept[j] != 0 { active[n] = Int32(j); n += 1 }
        return n
    }
}
