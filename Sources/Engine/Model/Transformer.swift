import Foundation

/// Runs forward passes of one model: the weights are shared, each pass holds segments of one or more
/// sequences (`PassSegment`), each with its own KV cache, positions, mask and MLP. The dense products of
/// all segments go through the backend together (one read of the weights for every token of the pass),
/// and so do the Griffin MLPs; attention reads a shared prefix once, CATS runs per segment. A token's
/// bits depend only on its own segment.
///
/// Also owns one cache (`cache`) for the single-sequence calls (`forward(tokens:…)`, the one-sequence
/// decoders). Not Sendable: one owner (the thread that runs the passes).
public final class Transformer {
    public let model: LanguageModel
    public let config: ModelConfig
    public let backend: any ComputeBackend
    /// The cache of the single-sequence API.
    public let cache: KVCache
    public var numerics: Numerics { backend.numerics }

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
    private var ropeSliding: UnsafeMutablePointer<Float>? // the same at the sliding layers' base (when it differs)
    /// The masked segments' visibility rows, `[tokens][start + tokens]` each (built once per pass).
    private var visible: UnsafeMutablePointer<UInt8>?
    private var visibleCapacity = 0
    /// The same for the sliding-window layers (every segment masked: its window, and its own mask).
    private var windowVisible: UnsafeMutablePointer<UInt8>?
    private var windowVisibleCapacity = 0
    private var logitsBuf: UnsafeMutablePointer<Float>!
    private var logitsRows = 0
    private let invFreq: [Float]
    private let invFreqSliding: [Float]?
    // Per-pass bookkeeping, reused.
    private var rowStart: [Int] = []
    private var logitsStart: [Int] = []
    private var logitsCount: [Int] = []
    private var jobs: [AttentionJob] = []
    private var windowJobs: [AttentionJob] = []
    private var windowNeeded: [Bool] = []
    private var griffinRuns: [GriffinRun] = []

    /// A transformer on the CPU backend (`threads` pool threads) whose own cache holds `capacity` positions.
    public convenience init(model: LanguageModel, capacity: Int, numerics: Numerics = .exact, threads: Int = 1) {
        self.init(model: model, capacity: capacity, backend: CPUBackend(numerics: numerics, threads: threads))
    }

    public init(model: LanguageModel, capacity: Int, backend: any ComputeBackend) {
        self.model = model
        self.config = model.config
        self.backend = backend
        cache = Transformer.makeCache(config: model.config, capacity: capacity, numerics: backend.numerics)
        invFreq = config.ropeInverseFrequencies()
        let c = model.config
        invFreqSliding = c.slidingRopeTheta.map { c.ropeInverseFrequencies(theta: $0) }
        reserve(tokens: 1)
    }

    /// A KV cache for this model: f16 entries in fast numerics (half the bytes a decode step reads at long
    /// contexts), f32 in exact numerics (to match the float reference).
    public static func makeCache(config c: ModelConfig, capacity: Int, numerics: Numerics) -> KVCache {
        KVCache(layerCount: c.layerCount, kvDim: c.kvDim, kvHeads: c.kvHeadCount, capacity: capacity, halfPrecision: numerics == .fast)
    }

    /// A new cache for another sequence of this model.
    public func makeCache(capacity: Int) -> KVCache {
        Transformer.makeCache(config: config, capacity: capacity, numerics: numerics)
    }

    deinit {
        for p in [x, xn, q, k, v, att, proj, gate, up, rope, ropeSliding, logitsBuf] { p?.deallocate() }
        visible?.deallocate()
        windowVisible?.deallocate()
    }

    /// Sizes the activation buffers for passes of up to `tokens` tokens in all (allocates only when growing).
    public func reserve(tokens: Int) {
        guard tokens > maxTokens else { return }
        for p in [x, xn, q, k, v, att, proj, gate, up, rope, ropeSliding] { p?.deallocate() }
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
        ropeSliding = invFreqSliding == nil ? nil : .allocate(capacity: tokens * c.headDim)
    }

    private func reserveLogits(rows: Int) {
        guard rows > logitsRows else { return }
        logitsBuf?.deallocate()
        logitsRows = rows
        logitsBuf = .allocate(capacity: rows * config.vocabSize)
    }

    /// The logits segment `i` of the last pass asked for (`[rows][vocab]`); valid until the next pass.
    public func logits(segment i: Int) -> UnsafeMutableBufferPointer<Float> {
        guard logitsCount[i] > 0 else { return UnsafeMutableBufferPointer(start: nil, count: 0) }
        return UnsafeMutableBufferPointer(start: logitsBuf + logitsStart[i] * config.vocabSize, count: logitsCount[i] * config.vocabSize)
    }

    /// One sequence's pass on this transformer's own cache: `tokens` at positions `start ..< start + T`.
    /// Returns the last token's logits (`allLogits == false`) or every token's, `[T][vocab]`; the buffer
    /// stays valid until the next call. `promptChunk` lets the products use the prompt kernels.
    @discardableResult
    public func forward(tokens: [Int32], start: Int, allLogits: Bool = false, mask: AttentionMask? = nil,
                        positions: [Int]? = nil, mlp: MLPRoute = .dense, promptChunk: Bool = false) -> UnsafeMutableBufferPointer<Float> {
        forward([PassSegment(cache: cache, tokens: tokens, start: start, positions: positions, mask: mask, mlp: mlp,
                             logits: allLogits ? .all : .last, isPromptChunk: promptChunk)])
        return logits(segment: 0)
    }

    /// Runs one pass over `segments`, writing each segment's K/V into its cache; the logits each asked
    /// for are read with `logits(segment:)`.
    public func forward(_ segments: [PassSegment]) {
        let c = config
        precondition(!segments.isEmpty)
        rowStart.removeAll(keepingCapacity: true)
        var T = 0
        for s in segments {
            precondition(!s.tokens.isEmpty)
            precondition(s.start <= s.cache.count, "a pass must start at or before the cached length")
            precondition(s.start + s.tokens.count <= s.cache.capacity, "context full: \(s.start + s.tokens.count) > \(s.cache.capacity)")
            rowStart.append(T)
            T += s.tokens.count
        }
        reserve(tokens: T)
        embed(segments)
        buildAttentionJobs(segments)
        for (l, layer) in model.layers.enumerated() {
            let sliding = c.isSliding(layer: l)
            let table = sliding ? (ropeSliding ?? rope!) : rope!
            // Attention block.
            layer.attnNorm.withUnsafeBufferPointer { backend.rmsNorm(x, weight: $0.baseAddress!, eps: c.rmsNormEps, out: xn, rows: T, width: c.hiddenSize) }
            project(layer.wq, xn, q, segments)
            project(layer.wk, xn, k, segments)
            project(layer.wv, xn, v, segments)
            addBias(layer.qBias, q, rows: T)
            addBias(layer.kBias, k, rows: T)
            addBias(layer.vBias, v, rows: T)
            headNorm(layer.qNorm, q, rows: T * c.headCount)
            headNorm(layer.kNorm, k, rows: T * c.kvHeadCount)
            for (i, s) in segments.enumerated() {
                for t in 0..<s.tokens.count {
                    let r = rowStart[i] + t
                    applyRope(q + r * c.qDim, heads: c.headCount, table: table + r * c.headDim)
                    applyRope(k + r * c.kvDim, heads: c.kvHeadCount, table: table + r * c.headDim)
                    s.cache.store(layer: l, position: s.start + t, keys: k + r * c.kvDim, values: v + r * c.kvDim)
                }
            }
            backend.attend(layer: l, jobs: sliding ? windowJobs : jobs, q: q, out: att, heads: c.headCount,
                           kvHeads: c.kvHeadCount, headDim: c.headDim, scale: c.scoreScale)
            project(layer.wo, att, proj, segments)
            addResidual(proj, norm: layer.postAttentionNorm, rows: T)
            // MLP block.
            layer.ffnNorm.withUnsafeBufferPointer { backend.rmsNorm(x, weight: $0.baseAddress!, eps: c.rmsNormEps, out: xn, rows: T, width: c.hiddenSize) }
            mlp(layer: l, segments)
            addResidual(proj, norm: layer.postMLPNorm, rows: T)
        }
        for s in segments { s.cache.commitWrite(start: s.start, end: s.start + s.tokens.count) }
        outputHead(segments)
    }

    /// Embedding rows and the rotary table (cos at [2i], sin at [2i+1]) of every token of the pass.
    private func embed(_ segments: [PassSegment]) {
        let c = config
        for (i, s) in segments.enumerated() {
            for (t, id) in s.tokens.enumerated() {
                precondition(id >= 0 && Int(id) < c.vocabSize, "token id \(id) out of range")
                let r = rowStart[i] + t
                let row = x + r * c.hiddenSize
                model.tokenEmbedding.dequantizeRow(Int(id), into: row)
                if let scale = c.embeddingScale { for j in 0..<c.hiddenSize { row[j] *= scale } }
                let pos = Float(s.positions?[t] ?? (s.start + t))
                Self.fillRope(rope + r * c.headDim, position: pos, inverseFrequencies: invFreq)
                if let sliding = ropeSliding, let inv = invFreqSliding { Self.fillRope(sliding + r * c.headDim, position: pos, inverseFrequencies: inv) }
            }
        }
    }

    /// One token's rotary table: (cos, sin) of position × each inverse frequency, pair by pair.
    private static func fillRope(_ table: UnsafeMutablePointer<Float>, position: Float, inverseFrequencies inv: [Float]) {
        for j in inv.indices {
            let a = position * inv[j]
            table[2 * j] = cos(a)
            table[2 * j + 1] = sin(a)
        }
    }

    /// x += y, or x += rmsNorm(y) with `norm`'s weights (the post-norms; xn is free at both call sites).
    private func addResidual(_ y: UnsafeMutablePointer<Float>, norm: [Float]?, rows: Int) {
        let h = config.hiddenSize
        var src = UnsafePointer(y)
        if let norm {
            norm.withUnsafeBufferPointer { backend.rmsNorm(y, weight: $0.baseAddress!, eps: config.rmsNormEps, out: xn, rows: rows, width: h) }
            src = UnsafePointer(xn)
        }
        for i in 0..<(rows * h) { x[i] += src[i] }
    }

    /// A projection's bias added to each of `rows` rows.
    private func addBias(_ bias: [Float]?, _ y: UnsafeMutablePointer<Float>, rows: Int) {
        guard let bias else { return }
        let n = bias.count
        for r in 0..<rows { for j in 0..<n { y[r * n + j] += bias[j] } }
    }

    /// RMSNorm of every head vector (`rows` of headDim), in place (Gemma 3's q/k norms).
    private func headNorm(_ weight: [Float]?, _ y: UnsafeMutablePointer<Float>, rows: Int) {
        guard let weight else { return }
        weight.withUnsafeBufferPointer { backend.rmsNorm(y, weight: $0.baseAddress!, eps: config.rmsNormEps, out: y, rows: rows, width: config.headDim) }
    }

    /// One attention job per segment, with the masked segments' visibility rows (used by every layer).
    private func buildAttentionJobs(_ segments: [PassSegment]) {
        var bytes = 0
        for s in segments where s.mask != nil { bytes += s.tokens.count * (s.start + s.tokens.count) }
        if bytes > visibleCapacity {
            visible?.deallocate()
            visibleCapacity = bytes
            visible = .allocate(capacity: bytes)
        }
        jobs.removeAll(keepingCapacity: true)
        var offset = 0
        for (i, s) in segments.enumerated() {
            let n = s.tokens.count, width = s.start + n
            var rows: UnsafePointer<UInt8>? = nil
            if let mask = s.mask {
                let base = visible! + offset
                for t in 0..<n {
                    let row = base + t * width
                    for j in 0..<(s.start + t + 1) { row[j] = j < mask.from || mask.visible(t, j) ? 1 : 0 }
                }
                rows = UnsafePointer(base)
                offset += n * width
            }
            jobs.append(AttentionJob(cache: s.cache, row: rowStart[i], tokens: n, start: s.start, visible: rows, vstride: width))
        }
        buildWindowJobs(segments)
    }

    /// The sliding-window layers' jobs: a query at position p also loses the slots whose position is
    /// p − window or less (slots before the segment hold their own positions; the segment's slots hold
    /// `positions` when given). Segments whose every query sees its whole causal range reuse `jobs`.
    private func buildWindowJobs(_ segments: [PassSegment]) {
        windowJobs.removeAll(keepingCapacity: true)
        guard let window = config.slidingWindow else { return }
        func position(_ s: PassSegment, _ slot: Int) -> Int { slot >= s.start ? (s.positions?[slot - s.start] ?? slot) : slot }
        var bytes = 0
        windowNeeded.removeAll(keepingCapacity: true)
        for s in segments {
            let n = s.tokens.count
            var latest = 0
            for t in 0..<n { latest = max(latest, position(s, s.start + t)) }
            windowNeeded.append(latest >= window)
            if latest >= window { bytes += n * (s.start + n) }
        }
        if bytes > windowVisibleCapacity {
            windowVisible?.deallocate()
            windowVisibleCapacity = bytes
            windowVisible = .allocate(capacity: bytes)
        }
        var offset = 0
        for (i, s) in segments.enumerated() {
            guard windowNeeded[i] else { windowJobs.append(jobs[i]); continue }
            let n = s.tokens.count, width = s.start + n
            let base = windowVisible! + offset
            for t in 0..<n {
                let row = base + t * width, p = position(s, s.start + t)
                for j in 0..<(s.start + t + 1) {
                    let masked = s.mask.map { j >= $0.from && !$0.visible(t, j) } ?? false
                    row[j] = !masked && position(s, j) > p - window ? 1 : 0
                }
            }
            offset += n * width
            windowJobs.append(AttentionJob(cache: s.cache, row: rowStart[i], tokens: n, start: s.start, visible: UnsafePointer(base), vstride: width))
        }
    }

    /// y = W·x for every row of the pass: runs of ordinary segments in one product, prompt chunks each
    /// through the prompt kernels.
    private func project(_ w: WeightMatrix, _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>,
                         _ segments: [PassSegment], where include: (PassSegment) -> Bool = { _ in true }) {
        forEachRun(segments, where: include) { first, rows, prompt in
            let xin = input + first * w.cols, yout = output + first * w.rows
            if prompt { backend.matmulPrompt(w, xin, yout, tokens: rows) } else { backend.matmul(w, xin, yout, tokens: rows) }
        }
    }

    /// Calls `body(firstRow, rows, isPromptChunk)` for each maximal run of consecutive included segments
    /// that are not prompt chunks, and for each included prompt chunk alone.
    private func forEachRun(_ segments: [PassSegment], where include: (PassSegment) -> Bool, _ body: (Int, Int, Bool) -> Void) {
        var runStart = -1, runRows = 0
        for (i, s) in segments.enumerated() {
            let n = s.tokens.count
            if include(s) && !s.isPromptChunk {
                if runStart < 0 { runStart = rowStart[i]; runRows = 0 }
                runRows += n
                continue
            }
            if runStart >= 0 { body(runStart, runRows, false); runStart = -1 }
            if include(s) { body(rowStart[i], n, true) }
        }
        if runStart >= 0 { body(runStart, runRows, false) }
    }

    /// The MLP of every segment: dense ones batched (their observers see their own rows), then each
    /// sparse one on its own rows (using the dense scratch, free by then).
    private func mlp(layer l: Int, _ segments: [PassSegment]) {
        let layer = model.layers[l], n = config.intermediateSize, h = config.hiddenSize
        let isDense: (PassSegment) -> Bool = { if case .sparse = $0.mlp { false } else { true } }
        project(layer.gate, xn, gate, segments, where: isDense)
        notify(segments) { o, rows, first in o.observe(layer: l, gate: gate + first * n, tokens: rows) }
        project(layer.up, xn, up, segments, where: isDense)
        forEachRun(segments, where: isDense) { first, rows, _ in backend.activate(config.activation, gate + first * n, up + first * n, count: rows * n) }
        notify(segments) { o, rows, first in o.observe(layer: l, activation: gate + first * n, tokens: rows) }
        project(layer.down, gate, proj, segments, where: isDense)
        // Griffin's MLPs all together (they share their weight reads), the other sparse ones each alone.
        // (`griffinRuns` is empty here: emptied after every use, so it holds no MLP between passes.)
        for (i, s) in segments.enumerated() {
            guard case .sparse(let sparse) = s.mlp else { continue }
            if let griffin = sparse as? GriffinMLP {
                griffinRuns.append(GriffinRun(mlp: griffin, row: rowStart[i], tokens: s.tokens.count))
            } else {
                sparse.run(layer: l, input: xn + rowStart[i] * h, output: proj + rowStart[i] * h, tokens: s.tokens.count, in: self)
            }
        }
        GriffinMLP.runBatch(layer: l, griffinRuns, input: xn, output: proj, in: self)
        griffinRuns.removeAll(keepingCapacity: true)
    }

    private func notify(_ segments: [PassSegment], _ call: (any MLPObserver, Int, Int) -> Void) {
        for (i, s) in segments.enumerated() {
            if case .observed(let o) = s.mlp { call(o, s.tokens.count, rowStart[i]) }
        }
    }

    /// The final norm and the output projection of the rows whose logits were asked for, in one product.
    private func outputHead(_ segments: [PassSegment]) {
        let h = config.hiddenSize
        logitsStart.removeAll(keepingCapacity: true)
        logitsCount.removeAll(keepingCapacity: true)
        var rows = 0
        for s in segments {
            let n = s.logits == .none ? 0 : s.logits == .last ? 1 : s.tokens.count
            logitsStart.append(rows)
            logitsCount.append(n)
            rows += n
        }
        guard rows > 0 else { return }
        reserveLogits(rows: rows)
        // Gather the wanted rows of the residual stream, normed, into xn (free by now).
        model.outputNorm.withUnsafeBufferPointer { w in
            for (i, s) in segments.enumerated() where logitsCount[i] > 0 {
                let first = rowStart[i] + s.tokens.count - logitsCount[i]
                backend.rmsNorm(x + first * h, weight: w.baseAddress!, eps: config.rmsNormEps, out: xn + logitsStart[i] * h,
                                rows: logitsCount[i], width: h)
            }
        }
        backend.matmul(model.output, xn, logitsBuf, tokens: rows)
    }

    /// Scratch buffers the sparse MLPs may use during their `run`: `[maxTokens][intermediate]` each.
    public var mlpScratch: (gate: UnsafeMutablePointer<Float>, up: UnsafeMutablePointer<Float>) { (gate, up) }

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
