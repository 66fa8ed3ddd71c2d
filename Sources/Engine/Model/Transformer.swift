import CKernels
import Foundation

/// Which cache slots a query may attend to, for passes that are not a plain causal chain (the Sirius
/// tree). Slots before `from` are always visible; for `j >= from`, `visible(i, j)` says whether query
/// `i` of this pass may see slot `j` (causality still applies: never a slot after the query's own).
public struct AttentionMask {
    public var from: Int
    public var visible: (Int, Int) -> Bool
    public init(from: Int, visible: @escaping (Int, Int) -> Bool) { self.from = from; self.visible = visible }
}

/// One model instance's working state: the KV cache and every activation buffer, allocated once.
/// Not Sendable: it has one owner (the thread that runs the forward passes).
public final class Transformer {
    public let model: LlamaModel
    public let config: ModelConfig
    public let cache: KVCache
    public let matmul: MatMul
    /// Called for every layer's MLP; `nil` = dense. Set by the sparse decoders (issue 3 hooks in here).
    public var mlpOverride: ((_ layer: Int, _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, _ tokens: Int) -> Void)?
    /// Called after each layer's dense MLP activations are computed: `act` is `[tokens][intermediate]`
    /// of silu(gate)·up (Griffin scores the prompt from these).
    public var mlpActivationObserver: ((_ layer: Int, _ act: UnsafePointer<Float>, _ tokens: Int) -> Void)?
    /// Called in each layer's dense MLP with the gate projection `[tokens][intermediate]` before the
    /// SiLU (CATS threshold calibration reads |silu(gate)| from it).
    public var gateObserver: ((_ layer: Int, _ gate: UnsafePointer<Float>, _ tokens: Int) -> Void)?

    private var maxTokens = 0
    private var x: UnsafeMutablePointer<Float>!       // [T][hidden] residual stream
    private var xn: UnsafeMutablePointer<Float>!      // [T][hidden] normed
    private var q: UnsafeMutablePointer<Float>!       // [T][qDim]
    private var k: UnsafeMutablePointer<Float>!       // [T][kvDim]
    private var v: UnsafeMutablePointer<Float>!       // [T][kvDim]
    private var att: UnsafeMutablePointer<Float>!     // [T][qDim]
    private var proj: UnsafeMutablePointer<Float>!    // [T][hidden]
    private var gate: UnsafeMutablePointer<Float>!    // [T][intermediate]
    private var up: UnsafeMutablePointer<Float>!      // [T][intermediate]
    private var rope: UnsafeMutablePointer<Float>!    // [T][headDim] (cos, sin) pairs
    /// Attention scratch, one per pool thread: scores of up to `attentionChunk` tokens × the heads of
    /// one KV group over the whole cache.
    private var scores: [UnsafeMutablePointer<Float>]
    /// The pass's visibility rows `[T][start+T]` when a mask is given (built once per pass).
    private var visible: UnsafeMutablePointer<UInt8>?
    private var visibleCapacity = 0
    /// Tokens per attention work item at most.
    static let attentionChunk = 16
    private var logitsBuf: UnsafeMutablePointer<Float>!
    private var logitsRows = 0
    private let invFreq: [Float]

    public init(model: LlamaModel, capacity: Int, numerics: Numerics = .exact, threads: Int = 1) {
        self.model = model
        self.config = model.config
        // Fast numerics keep the cache in f16 (half the bytes a decode step reads at long contexts);
        // exact numerics keep f32, to match the float reference.
        cache = KVCache(layerCount: config.layerCount, kvDim: config.kvDim, kvHeads: config.kvHeadCount, capacity: capacity,
                        halfPrecision: numerics == .fast)
        matmul = MatMul(numerics: numerics, threads: threads)
        let group = config.headCount / config.kvHeadCount
        let padded = (capacity + 7) / 8 * 8
        scores = (0..<max(1, threads)).map { _ in .allocate(capacity: Transformer.attentionChunk * group * padded) }
        invFreq = config.ropeInverseFrequencies()
        reserve(tokens: 1)
    }

    deinit {
        for p in [x, xn, q, k, v, att, proj, gate, up, rope, logitsBuf] { p?.deallocate() }
        for s in scores { s.deallocate() }
        visible?.deallocate()
    }

    /// Sizes the activation buffers for passes of up to `tokens` tokens (allocates only when growing).
    public func reserve(tokens: Int) {
        guard tokens > maxTokens else { return }
        for p in [x, xn, q, k, v, att, proj, gate, up, rope] { p?.deallocate() }
        let c = config
        maxTokens = tokens
        x = .allocate(capacity: tokens * c.hiddenSize)
        xn = .allocate(capacity: tokens * c.hiddenSize)
        q = .allocate(capacity: tokens * c.qDim)
        k = .allocate(capacity: tokens * c.kvDim)
        v = .allocate(capacity: tokens * c.kvDim)
        att = .allocate(capacity: tokens * c.qDim)
        proj = .allocate(capacity: tokens * c.hiddenSize)
        gate = .allocate(capacity: tokens * c.intermediateSize)
        up = .allocate(capacity: tokens * c.intermediateSize)
        rope = .allocate(capacity: tokens * c.headDim)
    }

    private func reserveLogits(rows: Int) {
        guard rows > logitsRows else { return }
        logitsBuf?.deallocate()
        logitsRows = rows
        logitsBuf = .allocate(capacity: rows * config.vocabSize)
    }

    /// Runs the model over `tokens` at positions `start..<start+tokens.count`, writing their K/V into
    /// the cache (overwriting what was there) and truncating it to `start + tokens.count`.
    /// Returns logits: the last token's (`allLogits == false`) or every token's, `[T][vocab]`.
    /// The buffer stays valid until the next call.
    @discardableResult
    public func forward(tokens: [Int32], start: Int, allLogits: Bool = false, mask: AttentionMask? = nil,
                        positions: [Int]? = nil) -> UnsafeMutableBufferPointer<Float> {
        let T = tokens.count
        let c = config
        precondition(T > 0)
        precondition(start <= cache.count, "forward must start at or before the cached length")
        precondition(start + T <= cache.capacity, "context full: \(start + T) > \(cache.capacity)")
        reserve(tokens: T)
        // Embeddings.
        for (t, id) in tokens.enumerated() {
            precondition(id >= 0 && Int(id) < c.vocabSize, "token id \(id) out of range")
            model.tokenEmbedding.dequantizeRow(Int(id), into: x + t * c.hiddenSize)
        }
        // Rotary tables per token: cos at [2i], sin at [2i+1].
        let half = c.headDim / 2
        for t in 0..<T {
            let pos = Float(positions?[t] ?? (start + t))
            let r = rope + t * c.headDim
            for i in 0..<half {
                let a = pos * invFreq[i]
                r[2 * i] = cos(a)
                r[2 * i + 1] = sin(a)
            }
        }
        let scale = 1 / Float(c.headDim).squareRoot()
        let group = c.headCount / c.kvHeadCount
        // Visibility rows for a masked pass (the Sirius tree): built once, used by every layer.
        var vis: UnsafePointer<UInt8>? = nil
        if let mask {
            let width = start + T
            if T * width > visibleCapacity {
                visible?.deallocate()
                visibleCapacity = T * width
                visible = .allocate(capacity: visibleCapacity)
            }
            let rows = visible!
            for t in 0..<T {
                let row = rows + t * width
                for j in 0..<(start + t + 1) { row[j] = j < mask.from || mask.visible(t, j) ? 1 : 0 }
            }
            vis = UnsafePointer(rows)
        }
        for (l, layer) in model.layers.enumerated() {
            // Attention block.
            rmsNorm(x, layer.attnNorm, xn, tokens: T)
            matmul.matmul(layer.wq, xn, q, tokens: T)
            matmul.matmul(layer.wk, xn, k, tokens: T)
            matmul.matmul(layer.wv, xn, v, tokens: T)
            for t in 0..<T {
                applyRope(q + t * c.qDim, heads: c.headCount, table: rope + t * c.headDim)
                applyRope(k + t * c.kvDim, heads: c.kvHeadCount, table: rope + t * c.headDim)
                cache.store(layer: l, position: start + t, keys: k + t * c.kvDim, values: v + t * c.kvDim)
            }
            attention(layer: l, tokens: T, start: start, group: group, scale: scale, visible: vis, vstride: start + T)
            matmul.matmul(layer.wo, att, proj, tokens: T)
            for i in 0..<(T * c.hiddenSize) { x[i] += proj[i] }
            // MLP block.
            rmsNorm(x, layer.ffnNorm, xn, tokens: T)
            if let mlpOverride {
                mlpOverride(l, xn, proj, T)
            } else {
                denseMLP(layer: l, input: xn, output: proj, tokens: T)
            }
            for i in 0..<(T * c.hiddenSize) { x[i] += proj[i] }
        }
        cache.commitWrite(start: start, end: start + T)
        // Output head.
        let rows = allLogits ? T : 1
        reserveLogits(rows: rows)
        let first = allLogits ? 0 : T - 1
        rmsNorm(x + first * c.hiddenSize, model.outputNorm, xn, tokens: rows)
        matmul.matmul(model.output, xn, logitsBuf, tokens: rows)
        return UnsafeMutableBufferPointer(start: logitsBuf, count: rows * c.vocabSize)
    }

    /// Attention of every head for the pass's tokens, over the cache. Work items are (KV group, run of
    /// up to `attentionChunk` tokens), spread over the pool; each item's queries share the converted
    /// key/value tiles. A query's result does not depend on the split.
    private func attention(layer l: Int, tokens T: Int, start: Int, group: Int, scale: Float,
                           visible vis: UnsafePointer<UInt8>?, vstride: Int) {
        let c = config
        let groups = c.kvHeadCount
        let wanted = 2 * matmul.threads
        let chunksPerGroup = min(T, max(1, (wanted + groups - 1) / groups))
        let chunkTokens = min(Transformer.attentionChunk, (T + chunksPerGroup - 1) / chunksPerGroup)
        let chunks = (T + chunkTokens - 1) / chunkTokens
        let scores = self.scores
        let q = UnsafePointer(self.q!), att = self.att!, cache = self.cache
        matmul.parallelChunks(groups * chunks, minimum: 2) { worker, i0, i1 in
            for item in i0..<i1 {
                let g = item % groups, t0 = (item / groups) * chunkTokens
                let n = min(chunkTokens, T - t0)
                let offset = t0 * c.qDim + g * group * c.headDim
                cache.attendGroup(layer: l, group: g, headDim: c.headDim, heads: group, tokens: n, firstN: start + t0 + 1,
                                  queries: q + offset, out: att + offset, tstride: c.qDim, scale: scale,
                                  visible: vis.map { $0 + t0 * vstride }, vstride: vstride, scores: scores[worker])
            }
        }
    }

    /// The dense SwiGLU MLP: down(silu(gate·x) ⊙ up·x).
    public func denseMLP(layer l: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, tokens T: Int) {
        let layer = model.layers[l]
        let n = config.intermediateSize
        matmul.matmul(layer.gate, input, gate, tokens: T)
        gateObserver?(l, gate, T)
        matmul.matmul(layer.up, input, up, tokens: T)
        ck_silu_mul(gate, up, Int64(T * n))
        mlpActivationObserver?(l, gate, T)
        matmul.matmul(layer.down, gate, output, tokens: T)
    }

    /// Scratch buffers the sparse MLPs may use: `[maxTokens][intermediate]` each.
    public var mlpScratch: (gate: UnsafeMutablePointer<Float>, up: UnsafeMutablePointer<Float>) { (gate, up) }

    private func rmsNorm(_ input: UnsafePointer<Float>, _ weight: [Float], _ out: UnsafeMutablePointer<Float>, tokens: Int) {
        let n = config.hiddenSize
        weight.withUnsafeBufferPointer { w in
            for t in 0..<tokens {
                let xi = input + t * n, o = out + t * n
                let ss = ck_dot(xi, xi, Int64(n))
                let r = 1 / (ss / Float(n) + config.rmsNormEps).squareRoot()
                for i in 0..<n { o[i] = w[i] * (xi[i] * r) }
            }
        }
    }

    private func applyRope(_ vec: UnsafeMutablePointer<Float>, heads: Int, table: UnsafePointer<Float>) {
        let d = config.headDim, half = d / 2
        for h in 0..<heads {
            let p = vec + h * d
            switch config.ropeStyle {
            case .interleaved:
                for i in 0..<half {
                    let c = table[2 * i], s = table[2 * i + 1]
                    let a = p[2 * i], b = p[2 * i + 1]
                    p[2 * i] = a * c - b * s
                    p[2 * i + 1] = a * s + b * c
                }
            case .halfSplit:
                for i in 0..<half {
                    let c = table[2 * i], s = table[2 * i + 1]
                    let a = p[i], b = p[i + half]
                    p[i] = a * c - b * s
                    p[i + half] = b * c + a * s
                }
            }
        }
    }
}
