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

/// Griffin's per-prompt packed MLP of one layer: the kept rows of gate and up, and the kept columns of
/// down, contiguous (sirius-method.md §2.1 step 5), so a sparse step is a smaller dense product.
struct PackedLayer {
    var gate: WeightMatrix
    var up: WeightMatrix
    var down: WeightMatrix
    var neurons: [Int32]
    var bytes: Int { gate.byteCount + up.byteCount + down.byteCount }
}

/// Griffin (coarse contextual sparsity, §2.1): the top `density · D` neurons of each layer by prompt
/// score, frozen for the generation, their weights packed once.
public final class GriffinMLP: SparseMLP {
    public let density: Double
    let model: LlamaModel
    private let packed: [PackedLayer]

    public init(model: LlamaModel, scores: PromptScores, density: Double) {
        self.model = model
        self.density = density
        let d = model.config.intermediateSize
        let k = max(1, min(d, Int((density * Double(d)).rounded(.down))))
        packed = model.layers.enumerated().map { l, layer in
            Self.pack(layer, neurons: Self.topK(scores.values[l], k))
        }
    }

    /// The selected neurons of each layer (ascending).
    public var selection: [[Int32]] { packed.map(\.neurons) }

    /// Indices of the k largest values (ties to the lower index), sorted ascending.
    static func topK(_ v: [Float], _ k: Int) -> [Int32] {
        let idx = (0..<v.count).sorted { v[$0] != v[$1] ? v[$0] > v[$1] : $0 < $1 }
        return idx.prefix(k).sorted().map(Int32.init)
    }

    private static func pack(_ layer: LayerWeights, neurons: [Int32]) -> PackedLayer {
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

    public var modelDensity: Double {
        sparseModelDensity(model, mlpBytesPerStep: Double(packed.reduce(0) { $0 + $1.bytes }))
    }

    public func run(layer l: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, tokens T: Int, in transformer: Transformer) {
        let b = transformer.backend
        let (g, u) = transformer.mlpScratch
        let p = packed[l]
        let kk = p.neurons.count
        b.matmul(p.gate, input, g, tokens: T)
        b.matmul(p.up, input, u, tokens: T)
        b.siluMul(g, u, count: T * kk)
        let width = p.down.cols
        if width > kk {
            // Spread the rows to the padded width (last token first: the rows only move right).
            for t in stride(from: T - 1, through: 0, by: -1) {
                memmove(g + t * width, g + t * kk, kk * MemoryLayout<Float>.stride)
                (g + t * width + kk).update(repeating: 0, count: width - kk)
            }
        }
        b.matmul(p.down, g, output, tokens: T)
    }
}
