import CKernels
import Foundation

/// Griffin's prompt statistics (sirius-method.md §2.1 steps 1–3), gathered during a sequence's dense
/// prefill: each token's MLP activation row normalised to unit L2 norm; a neuron's score is the L2
/// norm over the prompt's tokens (its square is accumulated: the same order). Sums run over the tokens
/// in order, so a prompt prefilled in chunks (or continued from a cached prefix's scores) gets the same
/// bits as one pass. Observes every prefill, whatever the method: a cached prefix serves Griffin
/// sequences too.
public final class PromptScores: MLPObserver {
    public let width: Int
    /// `[layers][width]`.
    public private(set) var values: [[Float]]

    public init(layers: Int, width: Int) {
        self.width = width
        values = Array(repeating: [Float](repeating: 0, count: width), count: layers)
    }

    public init(copying other: PromptScores) {
        width = other.width
        values = other.values
    }

    public func reset() {
        for l in values.indices { for j in 0..<width { values[l][j] = 0 } }
    }

    /// Continues from a cached prefix's scores.
    public func load(_ other: PromptScores) {
        precondition(other.width == width && other.values.count == values.count)
        values = other.values
    }

    public func observe(layer: Int, activation act: UnsafePointer<Float>, tokens: Int) {
        let d = width
        values[layer].withUnsafeMutableBufferPointer { s in
            for t in 0..<tokens {
                let row = act + t * d
                let n2 = ck_dot(row, row, Int64(d))
                guard n2 > 0 else { continue }
                let inv = 1 / n2
                for j in 0..<d { s[j] += row[j] * row[j] * inv }
            }
        }
    }
}

/// Griffin (coarse contextual sparsity, §2.1): the top `density · D` neurons of each layer by prompt
/// score, frozen for the generation. A step reads the kept rows of gate and up in the model's own
/// weights and the kept neurons' rows of the shared neuron-major down (`NeuronMajorDown`), so nothing is
/// copied per sequence, and the Griffin MLPs of several sequences in one pass share their reads
/// (`runBatch`). A sequence whose MLP runs alone in a pass reads contiguous copies of its kept rows
/// instead (`PackedRows`, made the first time that happens: scattered rows cost nearly what all rows
/// cost, since the hardware prefetcher streams the rows between them), while fewer than
/// `SparseWeights.packedCopyLimit` MLPs of the model hold one. A token's result is the same
/// alone or in any batch, packed or not: the same row bytes through kernels with the same per-value
/// operations.
public final class GriffinMLP: SparseMLP {
    public let density: Double
    let weights: SparseWeights
    /// The kept neurons of each layer, ascending.
    public let selection: [[Int32]]
    private let downRows: NeuronMajorDown
    /// `selection` in one buffer the kernels read (layer l's list at `keptStart[l]`).
    private let kept: UnsafeMutablePointer<Int32>
    private let keptStart: [Int]
    /// The kept rows of every layer, contiguous (made on the first pass this MLP runs alone).
    private var packed: [PackedRows]?

    public init(weights: SparseWeights, scores: PromptScores, density: Double) {
        self.weights = weights
        self.density = density
        selection = Self.select(scores, density: density)
        downRows = weights.neuronMajorDown
        let total = selection.reduce(0) { $0 + $1.count }
        kept = .allocate(capacity: total)
        var starts: [Int] = [], at = 0
        for list in selection {
            starts.append(at)
            for j in list { kept[at] = j; at += 1 }
        }
        keptStart = starts
    }

    deinit {
        kept.deallocate()
        if packed != nil { weights.packedCopies -= 1 }
    }

    /// Whether this MLP holds contiguous copies of its kept rows.
    public var holdsPackedRows: Bool { packed != nil }

    /// Layer `l`'s kept neurons (ascending), `selection[l]` as a buffer.
    func kept(layer l: Int) -> UnsafeBufferPointer<Int32> {
        UnsafeBufferPointer(start: kept + keptStart[l], count: selection[l].count)
    }

    /// The kept neurons of each layer for prompt scores `scores`: the floor(density · D) (at least one)
    /// best, ascending.
    public static func select(_ scores: PromptScores, density: Double) -> [[Int32]] {
        let d = scores.width
        let k = max(1, min(d, Int((density * Double(d)).rounded(.down))))
        return scores.values.map { topK($0, k) }
    }

    /// Indices of the k largest values (ties to the lower index), sorted ascending.
    static func topK(_ v: [Float], _ k: Int) -> [Int32] {
        let idx = (0..<v.count).sorted { v[$0] != v[$1] ? v[$0] > v[$1] : $0 < $1 }
        return idx.prefix(k).sorted().map(Int32.init)
    }

    public var modelDensity: Double {
        let model = weights.model
        let bytes = model.layers.enumerated().reduce(0) { acc, e in
            acc + selection[e.offset].count * (e.element.gate.rowBytes + e.element.up.rowBytes + downRows.layers[e.offset].rowBytes)
        }
        return sparseModelDensity(model, mlpBytesPerStep: Double(bytes))
    }

    public func run(layer l: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, tokens T: Int, in transformer: Transformer) {
        Self.runBatch(layer: l, [GriffinRun(mlp: self, row: 0, tokens: T)], input: input, output: output, in: transformer)
    }

    /// Layer `l`'s kept gate, up and neuron-major down rows, each copied into one contiguous matrix.
    struct PackedRows {
        let gate: WeightMatrix, up: WeightMatrix, down: WeightMatrix
    }

    /// The packed rows: this MLP's, or new ones while the model's limit allows; nil otherwise.
    private func packedRows() -> [PackedRows]? {
        if let packed { return packed }
        guard weights.packedCopies < weights.packedCopyLimit else { return nil }
        let layers = weights.model.layers.enumerated().map { l, layer in
            let rows = kept(layer: l)
            func pack(_ w: WeightMatrix) -> WeightMatrix {
                let buffer = WeightBuffer(size: w.rowBytes * rows.count)
                for (i, r) in rows.enumerated() {
                    (buffer.pointer + i * w.rowBytes).copyMemory(from: w.data + Int(r) * w.rowBytes, byteCount: w.rowBytes)
                }
                return WeightMatrix(type: w.type, rows: rows.count, cols: w.cols, data: UnsafeRawPointer(buffer.pointer), owner: buffer)
            }
            return PackedRows(gate: pack(layer.gate), up: pack(layer.up), down: pack(downRows.layers[l]))
        }
        packed = layers
        weights.packedCopies += 1
        return layers
    }

    /// This MLP alone in its pass: dense products over the packed kept rows, then each token's down as
    /// the sum of the packed down rows in order — per value the operations of the batched step.
    private func runPacked(_ p: PackedRows, input x: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, tokens T: Int,
                           in transformer: Transformer) {
        let b = transformer.backend
        let h = transformer.config.hiddenSize, k = p.gate.rows
        let (g, u) = transformer.mlpScratch
        b.matmul(p.gate, x, g, tokens: T)
        b.matmul(p.up, x, u, tokens: T)
        for t in 0..<T {
            // One token at a time, as the batched step does (silu's vector tail falls where it does there).
            b.activate(transformer.config.activation, g + t * k, u + t * k, count: k)
            let out = output + t * h
            out.initialize(repeating: 0, count: h)
            b.accumulateRows(p.down, coefficients: g + t * k, rows: nil, count: k, into: out)
        }
    }

    /// The Griffin MLPs of one pass together (rows `row ..< row + tokens` of `input` and `output`, row
    /// stride hidden). Gate and up are computed over the union of the kept rows, each row read once and
    /// computed only for the tokens whose sequence keeps it (`matmulMasked`); each token's kept values
    /// are then gathered in order, silu(g)·u, and its down is the sum of its kept neuron-major rows, an
    /// output block at a time for every token (`accumulateRows(tokens:)`). Every value is the one the
    /// token gets alone.
    static func runBatch(layer l: Int, _ runs: [GriffinRun], input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                         in transformer: Transformer) {
        guard let first = runs.first else { return }
        if runs.count == 1 && first.tokens <= 64, let packed = first.mlp.packedRows() {
            first.mlp.runPacked(packed[l], input: input + first.row * transformer.config.hiddenSize,
                                output: output + first.row * transformer.config.hiddenSize, tokens: first.tokens, in: transformer)
            return
        }
        let scratch = first.mlp.weights.griffinScratch
        let b = transformer.backend
        let layer = transformer.model.layers[l]
        let h = transformer.config.hiddenSize, d = transformer.config.intermediateSize
        let (g, u) = transformer.mlpScratch
        // Tokens in groups of at most 64 (one mask word); a run is never split.
        var start = 0
        while start < runs.count {
            var end = start, tokens = 0
            while end < runs.count && (end == start || tokens + runs[end].tokens <= 64) { tokens += runs[end].tokens; end += 1 }
            precondition(tokens <= 64, "a Griffin segment of more than 64 tokens")
            scratch.prepare(width: d, tokens: tokens)
            // The tokens' inputs, contiguous from the group's first row when the runs are adjacent.
            let rowsIn = scratch.gather(runs[start..<end], input: input, hidden: h)
            let count = scratch.union(runs[start..<end], layer: l)
            b.matmulMasked(layer.gate, rowsIn, tokens: tokens, rows: scratch.rows, masks: scratch.masks, count: count, g)
            b.matmulMasked(layer.up, rowsIn, tokens: tokens, rows: scratch.rows, masks: scratch.masks, count: count, u)
            var t = 0
            for run in runs[start..<end] {
                let k = run.mlp.kept(layer: l)
                for i in 0..<run.tokens {
                    // In place: k[j] >= j, so position j is read before it is written.
                    let gt = g + (t + i) * d, ut = u + (t + i) * d
                    for j in 0..<k.count { gt[j] = gt[Int(k[j])]; ut[j] = ut[Int(k[j])] }
                    b.activate(transformer.config.activation, gt, ut, count: k.count)
                    let out = output + (run.row + i) * h
                    out.initialize(repeating: 0, count: h)
                    scratch.coefficients[t + i] = UnsafePointer(gt)
                    scratch.neurons[t + i] = k.baseAddress!
                    scratch.counts[t + i] = Int64(k.count)
                    scratch.outputs[t + i] = out
                }
                t += run.tokens
            }
            b.accumulateRows(first.mlp.downRows.layers[l], tokens: tokens, coefficients: scratch.coefficients,
                             rows: scratch.neurons, counts: scratch.counts, into: scratch.outputs)
            start = end
        }
    }
}

/// One segment's rows in a batched Griffin step.
struct GriffinRun {
    let mlp: GriffinMLP
    let row: Int
    let tokens: Int
}

/// Reused buffers of the batched Griffin step (one per `SparseWeights`, i.e. per model and engine thread).
final class GriffinScratch {
    private(set) var masks: UnsafeMutablePointer<UInt64>
    private(set) var rows: UnsafeMutablePointer<Int32>
    private var width = 0
    private var input: UnsafeMutablePointer<Float>
    private var inputCapacity = 0
    let coefficients = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: 64)
    let neurons = UnsafeMutablePointer<UnsafePointer<Int32>>.allocate(capacity: 64)
    let counts = UnsafeMutablePointer<Int64>.allocate(capacity: 64)
    let outputs = UnsafeMutablePointer<UnsafeMutablePointer<Float>>.allocate(capacity: 64)

    init() {
        masks = .allocate(capacity: 1); rows = .allocate(capacity: 1); input = .allocate(capacity: 1)
    }

    deinit {
        masks.deallocate(); rows.deallocate(); input.deallocate()
        coefficients.deallocate(); neurons.deallocate(); counts.deallocate(); outputs.deallocate()
    }

    func prepare(width d: Int, tokens: Int) {
        if d > width {
            masks.deallocate(); rows.deallocate()
            masks = .allocate(capacity: d); rows = .allocate(capacity: d)
            width = d
        }
    }

    /// The runs' input rows as one `[tokens][hidden]` block: the pass's own rows when the runs are
    /// adjacent there, else a copy.
    func gather(_ runs: ArraySlice<GriffinRun>, input x: UnsafePointer<Float>, hidden h: Int) -> UnsafePointer<Float> {
        var next = runs.first!.row, adjacent = true
        for r in runs { adjacent = adjacent && r.row == next; next = r.row + r.tokens }
        if adjacent { return x + runs.first!.row * h }
        let tokens = runs.reduce(0) { $0 + $1.tokens }
        if tokens * h > inputCapacity {
            input.deallocate()
            inputCapacity = tokens * h
            input = .allocate(capacity: inputCapacity)
        }
        var t = 0
        for r in runs {
            input.advanced(by: t * h).update(from: x + r.row * h, count: r.tokens * h)
            t += r.tokens
        }
        return UnsafePointer(input)
    }

    /// Fills `rows` with the union of the runs' kept neurons of layer `l` (ascending) and `masks` with,
    /// per row, the tokens that keep it; returns the union's size.
    func union(_ runs: ArraySlice<GriffinRun>, layer l: Int) -> Int {
        masks.initialize(repeating: 0, count: width)
        var t = 0
        for r in runs {
            let bits = (r.tokens == 64 ? UInt64.max : (UInt64(1) << UInt64(r.tokens)) - 1) << UInt64(t)
            for j in r.mlp.kept(layer: l) { masks[Int(j)] |= bits }
            t += r.tokens
        }
        var n = 0
        for j in 0..<width where masks[j] != 0 {
            rows[n] = Int32(j)
            masks[n] = masks[j]
            n += 1
        }
        return n
    }
}
