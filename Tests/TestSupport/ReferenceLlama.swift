import Foundation
import SiriusEngine

/// The scalar reference forward pass: plain loops in Double over dequantised float weights, recomputing
/// the whole causal sequence every time (no cache, no kernels, no threads). The oracle for every fast path.
///
/// Matrices are PyTorch `[out, in]`, row-major. `ropeStyle` says how the Q/K rows are laid out: with
/// `.interleaved` (GGUF, rows permuted by llama.cpp's converter) dimension pairs are (2i, 2i+1); with
/// `.halfSplit` (Hugging Face) they are (i, i + headDim/2). Pair i always turns at frequency `invFreq[i]`.
public struct ReferenceLlama: Sendable {
    public struct Layer: Sendable {
        public var attnNorm: [Float], wq: [Float], wk: [Float], wv: [Float], wo: [Float]
        public var ffnNorm: [Float], gate: [Float], up: [Float], down: [Float]
        public init(attnNorm: [Float], wq: [Float], wk: [Float], wv: [Float], wo: [Float],
                    ffnNorm: [Float], gate: [Float], up: [Float], down: [Float]) {
            self.attnNorm = attnNorm; self.wq = wq; self.wk = wk; self.wv = wv; self.wo = wo
            self.ffnNorm = ffnNorm; self.gate = gate; self.up = up; self.down = down
        }
    }

    public var vocab: Int, hidden: Int, intermediate: Int, heads: Int, kvHeads: Int, headDim: Int
    public var eps: Double
    public var ropeStyle: RopeStyle
    public var invFreq: [Double]
    public var embedding: [Float]
    public var layers: [Layer]
    public var outputNorm: [Float]
    /// nil: tied to the embedding.
    public var output: [Float]?

    public init(vocab: Int, hidden: Int, intermediate: Int, heads: Int, kvHeads: Int, headDim: Int, eps: Double,
                ropeTheta: Double, ropeStyle: RopeStyle, embedding: [Float], layers: [Layer], outputNorm: [Float],
                output: [Float]?) {
        self.vocab = vocab; self.hidden = hidden; self.intermediate = intermediate; self.heads = heads
        self.kvHeads = kvHeads; self.headDim = headDim; self.eps = eps; self.ropeStyle = ropeStyle
        self.invFreq = (0..<(headDim / 2)).map { 1 / pow(ropeTheta, Double(2 * $0) / Double(headDim)) }
        self.embedding = embedding; self.layers = layers; self.outputNorm = outputNorm; self.output = output
    }

    /// y = W x for W `[rows, cols]`.
    static func matvec(_ w: [Float], rows: Int, cols: Int, _ x: [Double]) -> [Double] {
        precondition(w.count == rows * cols && x.count == cols)
        var y = [Double](repeating: 0, count: rows)
        for r in 0..<rows {
            var s = 0.0
            for c in 0..<cols { s += Double(w[r * cols + c]) * x[c] }
            y[r] = s
        }
        return y
    }

    func rmsNorm(_ x: [Double], _ w: [Float]) -> [Double] {
        var ss = 0.0
        for v in x { ss += v * v }
        let r = 1 / (ss / Double(x.count) + eps).squareRoot()
        return (0..<x.count).map { Double(w[$0]) * x[$0] * r }
    }

    /// Rotates every head of `v` (heads × headDim) for position `pos`.
    func rope(_ v: inout [Double], heads n: Int, pos: Int) {
        let half = headDim / 2
        for h in 0..<n {
            for i in 0..<half {
                let a = Double(pos) * invFreq[i]
                let (c, s) = (cos(a), sin(a))
                let (i0, i1) = ropeStyle == .interleaved ? (h * headDim + 2 * i, h * headDim + 2 * i + 1)
                                                         : (h * headDim + i, h * headDim + i + half)
                let x0 = v[i0], x1 = v[i1]
                v[i0] = x0 * c - x1 * s
                v[i1] = x0 * s + x1 * c
            }
        }
    }

    public struct Trace {
        /// `[position][vocab]` logits.
        public var logits: [[Float]]
        /// Per layer, per position: the rotated keys and the values (`kvHeads × headDim` each).
        public var keys: [[[Double]]], values: [[[Double]]]
    }

    /// Logits for every position of `tokens` (positions 0, 1, ...).
    public func logits(_ tokens: [Int32]) -> [[Float]] { run(tokens).logits }

    public func run(_ tokens: [Int32]) -> Trace {
        let T = tokens.count
        let qDim = heads * headDim, kvDim = kvHeads * headDim
        let group = heads / kvHeads
        var x: [[Double]] = tokens.map { id in (0..<hidden).map { Double(embedding[Int(id) * hidden + $0]) } }
        var allK: [[[Double]]] = [], allV: [[[Double]]] = []
        for L in layers {
            var qs: [[Double]] = [], ks: [[Double]] = [], vs: [[Double]] = []
            for t in 0..<T {
                let xn = rmsNorm(x[t], L.attnNorm)
                var q = Self.matvec(L.wq, rows: qDim, cols: hidden, xn)
                var k = Self.matvec(L.wk, rows: kvDim, cols: hidden, xn)
                rope(&q, heads: heads, pos: t)
                rope(&k, heads: kvHeads, pos: t)
                qs.append(q); ks.append(k); vs.append(Self.matvec(L.wv, rows: kvDim, cols: hidden, xn))
            }
            allK.append(ks); allV.append(vs)
            for t in 0..<T {
                var att = [Double](repeating: 0, count: qDim)
                for h in 0..<heads {
                    let g = h / group
                    var s = [Double](repeating: 0, count: t + 1)
                    for j in 0...t {
                        var d = 0.0
                        for i in 0..<headDim { d += qs[t][h * headDim + i] * ks[j][g * headDim + i] }
                        s[j] = d / Double(headDim).squareRoot()
                    }
                    let mx = s.max()!
                    let e = s.map { exp($0 - mx) }
                    let sum = e.reduce(0, +)
                    for j in 0...t {
                        for i in 0..<headDim { att[h * headDim + i] += e[j] / sum * vs[j][g * headDim + i] }
                    }
                }
                let o = Self.matvec(L.wo, rows: hidden, cols: qDim, att)
                for i in 0..<hidden { x[t][i] += o[i] }
            }
            for t in 0..<T {
                let xn = rmsNorm(x[t], L.ffnNorm)
                let g = Self.matvec(L.gate, rows: intermediate, cols: hidden, xn)
                let u = Self.matvec(L.up, rows: intermediate, cols: hidden, xn)
                let a = (0..<intermediate).map { g[$0] / (1 + exp(-g[$0])) * u[$0] }
                let d = Self.matvec(L.down, rows: hidden, cols: intermediate, a)
                for i in 0..<hidden { x[t][i] += d[i] }
            }
        }
        let out = output ?? embedding
        let logits = x.map { xt in Self.matvec(out, rows: vocab, cols: hidden, rmsNorm(xt, outputNorm)).map { Float($0) } }
        return Trace(logits: logits, keys: allK, values: allV)
    }
}
