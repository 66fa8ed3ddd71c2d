import CKernels

/// Neuron-major copies of every layer's down projection (`[D][hidden]`), made once per model, so a
/// sparse step reads only the active neurons' columns (formats.md §4: a down column is spread across
/// every row and quant block). Float sources are copied exactly; quantised ones become Q8_0.
public final class NeuronMajorDown: @unchecked Sendable {
    public let layers: [WeightMatrix]
    private let buffers: [WeightBuffer]

    public init(model: LlamaModel) {
        let c = model.config
        var ms: [WeightMatrix] = []
        var bs: [WeightBuffer] = []
        let d = c.intermediateSize, h = c.hiddenSize
        var full = [Float](repeating: 0, count: d * h)
        var col = [Float](repeating: 0, count: h)
        for layer in model.layers {
            let down = layer.down   // [hidden][D]
            let type: GGMLType = (down.type == .f32 || h % 32 != 0) ? .f32 : (down.type == .f16 || down.type == .bf16 ? down.type : .q8_0)
            full.withUnsafeMutableBufferPointer { f in
                ck_dequantize_rows(Int32(down.type.rawValue), down.data, down.rowBytes, Int64(d), 0, Int64(h), f.baseAddress!)
            }
            let rowBytes = type.rowBytes(elements: h)!
            let buf = WeightBuffer(size: rowBytes * d)
            for j in 0..<d {
                for r in 0..<h { col[r] = full[r * d + j] }
                let dst = buf.pointer + j * rowBytes
                switch type {
                case .q8_0: col.withUnsafeBufferPointer { ck_quantize_row_q8_0($0.baseAddress!, Int64(h), dst) }
                case .f16: for r in 0..<h { dst.storeBytes(of: ck_f32_to_f16(col[r]), toByteOffset: 2 * r, as: UInt16.self) }
                case .bf16: for r in 0..<h { dst.storeBytes(of: UInt16(col[r].bitPattern >> 16), toByteOffset: 2 * r, as: UInt16.self) }
                default: col.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress!, byteCount: rowBytes) }
                }
            }
            bs.append(buf)
            ms.append(WeightMatrix(type: type, rows: d, cols: h, data: UnsafeRawPointer(buf.pointer), owner: buf))
        }
        layers = ms
        buffers = bs
    }
}

/// Griffin's per-prompt packed MLP of one layer: the kept rows of gate and up, and the kept columns of
/// down, contiguous (sirius-method.md §2.1 step 5), so a sparse step is a smaller dense product.
struct PackedLayer {
    var gate: WeightMatrix
    var up: WeightMatrix
    var down: WeightMatrix
    var neurons: [Int32]
    var bytes: Int { gate.byteCount + up.byteCount + down.byteCount }
}

/// The sparse MLP that replaces the dense one during sparse decoding steps. One per generation stream
/// (not Sendable). Use: `beginPrompt()` before the dense prefill (Griffin scores neurons from it),
/// `freeze()` after it, then install `run` as the transformer's MLP for sparse steps.
public final class SparseMLP {
    public let config: SparsityConfig
    let transformer: Transformer
    let downT: NeuronMajorDown?
    let d: Int, h: Int, k: Int
    // Griffin state.
    private var scores: [[Float]]
    private var packed: [PackedLayer] = []
    private var scoring = false
    // CATS scratch, sized once.
    private var active: UnsafeMutablePointer<Int32>
    private var coef: UnsafeMutablePointer<Float>
    private var mag: UnsafeMutablePointer<Float>
    private var order: UnsafeMutablePointer<Int32>
    private var kept: UnsafeMutablePointer<UInt8>
    private var tmp: UnsafeMutablePointer<Float>
    /// Bytes of MLP weights read by sparse steps, and the number of (layer, step) products, for the
    /// measured model density.
    public private(set) var mlpBytesRead = 0
    public private(set) var sparseLayerSteps = 0
    public private(set) var activeNeuronsTotal = 0

    public init(transformer: Transformer, config: SparsityConfig, downT: NeuronMajorDown?) {
        self.transformer = transformer
        self.config = config
        let c = transformer.config
        d = c.intermediateSize; h = c.hiddenSize
        k = config.keptNeurons(d)
        self.downT = config.kind == .cats ? (downT ?? NeuronMajorDown(model: transformer.model)) : downT
        scores = Array(repeating: [Float](repeating: 0, count: d), count: c.layerCount)
        active = .allocate(capacity: d); coef = .allocate(capacity: d); mag = .allocate(capacity: d)
        order = .allocate(capacity: d); tmp = .allocate(capacity: d); kept = .allocate(capacity: d)
    }

    deinit {
        active.deallocate(); coef.deallocate(); mag.deallocate(); order.deallocate(); tmp.deallocate(); kept.deallocate()
    }

    /// Griffin: the selected neurons of each layer (sorted), after `freeze()`.
    public var griffinSelection: [[Int32]] { packed.map(\.neurons) }

    /// Starts scoring a new prompt (Griffin); the next dense forward passes feed the scores.
    public func beginPrompt() {
        guard config.kind == .griffin else { return }
        for l in scores.indices { for j in 0..<d { scores[l][j] = 0 } }
        packed = []
        scoring = true
        transformer.mlpActivationObserver = { [unowned self] layer, act, tokens in
            self.observe(layer: layer, act: act, tokens: tokens)
        }
    }

    /// §2.1 steps 1–3: each token's activation row normalised to unit L2 norm, neuron score = L2 norm
    /// over tokens (the square is accumulated; the order is the same).
    private func observe(layer: Int, act: UnsafePointer<Float>, tokens: Int) {
        guard scoring else { return }
        scores[layer].withUnsafeMutableBufferPointer { s in
            for t in 0..<tokens {
                let row = act + t * d
                let n2 = ck_dot(row, row, Int64(d))
                guard n2 > 0 else { continue }
                let inv = 1 / n2
                for j in 0..<d { s[j] += row[j] * row[j] * inv }
            }
        }
    }

    /// Griffin: ends scoring, keeps the top `density · D` neurons per layer and packs their weights.
    public func freeze() {
        guard config.kind == .griffin, scoring else { return }
        scoring = false
        transformer.mlpActivationObserver = nil
        packed = transformer.model.layers.enumerated().map { l, layer in
            pack(layer, neurons: Self.topK(scores[l], k))
        }
    }

    /// Indices of the k largest values (ties to the lower index), sorted ascending.
    static func topK(_ v: [Float], _ k: Int) -> [Int32] {
        let idx = (0..<v.count).sorted { v[$0] != v[$1] ? v[$0] > v[$1] : $0 < $1 }
        return idx.prefix(k).sorted().map(Int32.init)
    }

    private func pack(_ layer: LayerWeights, neurons: [Int32]) -> PackedLayer {
        func rows(_ w: WeightMatrix) -> WeightMatrix {
            let buf = WeightBuffer(size: neurons.count * w.rowBytes)
            for (i, j) in neurons.enumerated() {
                (buf.pointer + i * w.rowBytes).copyMemory(from: w.row(Int(j)), byteCount: w.rowBytes)
            }
            return WeightMatrix(type: w.type, rows: neurons.count, cols: w.cols, data: UnsafeRawPointer(buf.pointer), owner: buf)
        }
        // Down columns: gather each row's kept entries. Every neuron kept (density 1): the original matrix.
        // Float sources stay exact; quantised ones become Q8_0 (requantising the kept columns to Q4_1
        // was tried: 6 % fewer bytes, no measurable time gain, and a lower AAL from the added error).
        let down = layer.down
        let kk = neurons.count
        if kk == down.cols && neurons.enumerated().allSatisfy({ $0.offset == Int($0.element) }) {
            return PackedLayer(gate: layer.gate, up: layer.up, down: down, neurons: neurons)
        }
        // Quantised columns are padded with zeros to whole Q8_0 blocks (the step feeds zeros there), so
        // a kept count that is not a multiple of 32 still reads 8-bit, not float, weights.
        let padded = (kk + 31) / 32 * 32
        let type: GGMLType = (down.type == .f32 || padded > down.cols) ? .f32 : .q8_0
        let width = type == .q8_0 ? padded : kk
        let rowBytes = type.rowBytes(elements: width)!
        let buf = WeightBuffer(size: rowBytes * down.rows)
        var full = [Float](repeating: 0, count: down.cols)
        var gathered = [Float](repeating: 0, count: width)
        for r in 0..<down.rows {
            full.withUnsafeMutableBufferPointer { down.dequantizeRow(r, into: $0.baseAddress!) }
            for (i, j) in neurons.enumerated() { gathered[i] = full[Int(j)] }
            let dst = buf.pointer + r * rowBytes
            if type == .q8_0 {
                gathered.withUnsafeBufferPointer { ck_quantize_row_q8_0($0.baseAddress!, Int64(width), dst) }
            } else {
                gathered.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress!, byteCount: rowBytes) }
            }
        }
        let packedDown = WeightMatrix(type: type, rows: down.rows, cols: width, data: UnsafeRawPointer(buf.pointer), owner: buf)
        return PackedLayer(gate: rows(layer.gate), up: rows(layer.up), down: packedDown, neurons: neurons)
    }

    /// Bytes of MLP weights one sparse step reads, summed over layers (for the model density); for
    /// CATS threshold mode the measured average is used.
    public var mlpBytesPerStep: Double {
        switch config.kind {
        case .griffin:
            return Double(packed.reduce(0) { $0 + $1.bytes })
        case .cats:
            if sparseLayerSteps > 0 { return Double(mlpBytesRead) / Double(sparseLayerSteps) * Double(transformer.config.layerCount) }
            return Double(transformer.model.layers.enumerated().reduce(0) { acc, e in
                acc + e.element.gate.byteCount + k * (e.element.up.rowBytes + downT!.layers[e.offset].rowBytes)
            })
        }
    }

    /// Weight bytes of one sparse decode step relative to one dense step (sirius-method.md §11).
    public var modelDensity: Double {
        let m = transformer.model
        let dense = Double(m.denseDecodeBytes)
        let mlpDense = Double(m.layers.reduce(0) { $0 + $1.gate.byteCount + $1.up.byteCount + $1.down.byteCount })
        return (dense - mlpDense + mlpBytesPerStep) / dense
    }

    /// Runs the sparse MLP of `layer` on `tokens` rows of `input`, writing `output` (the transformer's
    /// MLP hook). With several rows (tree drafting), CATS shares one mask across them (§2.2 patternstrict).
    public func run(layer l: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, tokens T: Int) {
        let mm = transformer.matmul
        let (g, u) = transformer.mlpScratch
        sparseLayerSteps += 1
        switch config.kind {
        case .griffin:
            let p = packed[l]
            let kk = p.neurons.count
            mm.matmul(p.gate, input, g, tokens: T)
            mm.matmul(p.up, input, u, tokens: T)
            ck_silu_mul(g, u, Int64(T * kk))
            let width = p.down.cols
            if width > kk {
                // Spread the rows to the padded width (last token first: the rows only move right).
                for t in stride(from: T - 1, through: 0, by: -1) {
                    memmove(g + t * width, g + t * kk, kk * MemoryLayout<Float>.stride)
                    (g + t * width + kk).update(repeating: 0, count: width - kk)
                }
            }
            mm.matmul(p.down, g, output, tokens: T)
            mlpBytesRead += p.bytes
        case .cats:
            let layer = transformer.model.layers[l]
            let dt = downT!.layers[l]
            mm.matmul(layer.gate, input, g, tokens: T)
            ck_silu_mul(g, nil, Int64(T * d))
            // Active set from |silu(gate)|, summed over the rows when there are several.
            for j in 0..<d { mag[j] = abs(g[j]) }
            if T > 1 { for t in 1..<T { for j in 0..<d { mag[j] += abs(g[t * d + j]) } } }
            let n = selectActive(layer: l, tokens: T)
            activeNeuronsTotal += n
            for t in 0..<T {
                let gt = g + t * d
                mm.matvecRows(layer.up, rows: active, count: n, input + t * h, tmp)
                for i in 0..<n { coef[i] = gt[Int(active[i])] * tmp[i] }
                let out = output + t * h
                out.initialize(repeating: 0, count: h)
                // Neuron-major down: the output's columns split over the threads in whole blocks (each
                // element sums its neurons in the same order whatever the split).
                let (be, bb) = dt.type.blockGeometry!
                let blocks = h / be
                let coefs = UnsafePointer(coef), rows = UnsafePointer(active)
                mm.parallelChunks(blocks, minimum: 2) { _, b0, b1 in
                    ck_accumulate_rows(Int32(dt.type.rawValue), dt.data + b0 * bb, dt.rowBytes, Int64((b1 - b0) * be),
                                       coefs, rows, Int64(n), out + b0 * be)
                }
            }
            mlpBytesRead += layer.gate.byteCount + n * (layer.up.rowBytes + dt.rowBytes)
        }
    }

    /// Fills `active` (ascending) with the layer's active neurons for the magnitudes in `mag`; returns the count.
    private func selectActive(layer l: Int, tokens T: Int) -> Int {
        if config.catsMode == .threshold, let cal = config.calibration, l < cal.thresholds.count {
            let t = cal.thresholds[l] * Float(T)
            var n = 0
            for j in 0..<d where mag[j] > t { active[n] = Int32(j); n += 1 }
            return n
        }
        // Top-k by magnitude: quickselect on a copy of the indices, then sort the kept ones.
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

#if canImport(Glibc)
import Glibc
#endif
