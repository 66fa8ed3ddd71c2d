import CKernels
import COpenBLAS
import Dispatch

/// The CPU implementation of `ComputeBackend`: C kernels (AVX2 / AVX-512 chosen at run time, scalar
/// fallback) spread over the engine's own thread pool. Single-token products are mat-vecs over the
/// quantised rows; multi-token products use integer kernels (fast numerics) or float kernels that decode
/// each weight block once per four tokens (exact), both bit-identical per token to the mat-vec; prompt
/// chunks in exact numerics dequantise tiles of rows and call OpenBLAS `sgemm` (formats.md §4).
/// One owner (the engine thread); not Sendable.
public final class CPUBackend: ComputeBackend {
    public let numerics: Numerics
    public let threads: Int
    /// Token count from which prompt chunks go through sgemm instead of the per-token kernels.
    public var gemmMinTokens = 8
    private var tiles: [UnsafeMutablePointer<Float>]
    private var tileCapacity: Int
    private var q8: UnsafeMutablePointer<ck_q8_block>
    /// Helper threads for `threads > 1` (nil with one thread), and the task they run.
    private let pool: OpaquePointer?
    private let job = ChunkJob()
    private var q8Capacity: Int

    /// OpenBLAS's kernels for the exact prompt chunks, chosen once per process before the first backend
    /// exists: SkylakeX's on CPUs with AVX-512, Haswell's on other CPUs with AVX2 and FMA
    /// (`ck_blas_pin_kernels`), so results do not depend on which CPU model the library recognises.
    public static let blasKernels: String = String(cString: ck_blas_pin_kernels())

    public init(numerics: Numerics, threads: Int = 1) {
        self.numerics = numerics
        self.threads = max(1, threads)
        tileCapacity = 1 << 16
        tiles = (0..<max(1, threads)).map { _ in .allocate(capacity: 1 << 16) }
        q8Capacity = 1024
        q8 = .allocate(capacity: q8Capacity)
        _ = CPUBackend.blasKernels
        openblas_set_num_threads(1)
        pool = self.threads > 1 ? ck_pool_create(Int32(self.threads)) : nil
    }

    deinit {
        if let pool { ck_pool_destroy(pool) }
        for p in scores { p.deallocate() }
        for p in attnJobs { p.deallocate() }
        for t in tiles { t.deallocate() }
        q8.deallocate()
    }

    /// Quantised copy of `x` for fast numerics (valid until the next call).
    func quantize(_ x: UnsafePointer<Float>, count: Int) -> UnsafePointer<ck_q8_block> {
        let blocks = count / 32
        if blocks > q8Capacity {
            q8.deallocate()
            q8Capacity = blocks
            q8 = .allocate(capacity: blocks)
        }
        ck_quantize_q8(x, Int64(count), q8)
        return UnsafePointer(q8)
    }

    /// y[0..<rows] = W · x for one token.
    public func matvec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        if numerics == .fast && w.cols % 32 == 0 {
            let xq = quantize(x, count: w.cols)
            matvecQ(w, xq, x, y)
        } else {
            parallelRows(w.rows) { r0, r1 in
                ck_matvec_f32(Int32(w.type.rawValue), w.data, w.rowBytes, x, y + r0, Int64(w.cols), Int64(r0), Int64(r1))
            }
        }
    }

    /// y = W · x with `x` already quantised (fast numerics).
    func matvecQ(_ w: WeightMatrix, _ xq: UnsafePointer<ck_q8_block>, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        parallelRows(w.rows) { r0, r1 in
            ck_matvec_q8(Int32(w.type.rawValue), w.data, w.rowBytes, xq, x, y + r0, Int64(w.cols), Int64(r0), Int64(r1))
        }
    }

    /// y[i] = W_{rows[i]} · x for the listed rows only (sparse up projection over active neurons).
    public func matvecRows(_ w: WeightMatrix, rows: UnsafePointer<Int32>, count: Int, _ x: UnsafePointer<Float>,
                           _ y: UnsafeMutablePointer<Float>) {
        if numerics == .fast && w.cols % 32 == 0 {
            let xq = quantize(x, count: w.cols)
            parallelRows(count) { r0, r1 in
                ck_matvec_q8_rows(Int32(w.type.rawValue), w.data, w.rowBytes, xq, x, y + r0, Int64(w.cols), rows + r0, Int64(r1 - r0))
            }
        } else {
            parallelRows(count) { r0, r1 in
                ck_matvec_f32_rows(Int32(w.type.rawValue), w.data, w.rowBytes, x, y + r0, Int64(w.cols), rows + r0, Int64(r1 - r0))
            }
        }
    }

    /// Y[T, rows] = X[T, cols] · Wᵀ for `tokens` rows of X (row stride `cols`, output stride `rows`); each
    /// token's row equals `matvec` on that token alone.
    public func matmul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, tokens: Int) {
        if tokens == 1 {
            matvec(w, x, y)
            return
        }
        if matmulQ8(w, x, y, tokens: tokens) { return }
        parallelRows(w.rows) { r0, r1 in
            ck_matmul_f32(Int32(w.type.rawValue), w.data, w.rowBytes, x, Int64(w.cols), Int64(tokens), y, Int64(w.rows),
                          Int64(w.cols), Int64(r0), Int64(r1))
        }
    }

    /// Fast numerics on Q4_0 / Q4_1 / Q5_0 / Q8_0 / Q4_K / Q6_K rows: integer products (Q4/Q8: each weight
    /// block decoded once per four tokens). False when the weights are another type or the numerics exact.
    private func matmulQ8(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, tokens: Int) -> Bool {
        let blockCols: Int
        switch w.type {
        case .q4_0, .q4_1, .q5_0, .q8_0: blockCols = 32
        case .q4_K, .q6_K: blockCols = 256
        default: return false
        }
        guard numerics == .fast && w.cols % blockCols == 0 else { return false }
        let xq = quantize(x, count: tokens * w.cols)   // T consecutive rows → T·nb blocks
        precondition(w.cols / 32 * tokens <= q8Capacity)
        parallelRows(w.rows) { r0, r1 in
            _ = ck_matmul_q8(Int32(w.type.rawValue), w.data, w.rowBytes, xq, Int64(tokens), y, Int64(w.rows),
                             Int64(w.cols), Int64(r0), Int64(r1))
        }
        return true
    }

    /// A prompt chunk: as `matmul`, except that from `gemmMinTokens` tokens on, products the integer
    /// kernels do not cover dequantise tiles of rows and run sgemm.
    public func matmulPrompt(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, tokens: Int) {
        guard tokens >= gemmMinTokens else { return matmul(w, x, y, tokens: tokens) }
        if matmulQ8(w, x, y, tokens: tokens) { return }
        // Dequantise a tile of rows (per thread), then sgemm: Y[:, r0..<r1] = X · tileᵀ.
        let rowsPerTile = max(16, min(w.rows, (1 << 16) / w.cols))
        if rowsPerTile * w.cols > tileCapacity {
            for t in tiles { t.deallocate() }
            tileCapacity = rowsPerTile * w.cols
            tiles = (0..<threads).map { _ in .allocate(capacity: tileCapacity) }
        }
        let tileCount = (w.rows + rowsPerTile - 1) / rowsPerTile
        let tiles = self.tiles
        parallelChunks(tileCount, minimum: 2) { worker, i0, i1 in
            let buffer = tiles[worker]
            for i in i0..<i1 {
                let r0 = i * rowsPerTile, r1 = min(w.rows, r0 + rowsPerTile)
                let b: UnsafePointer<Float>
                if w.type == .f32 {
                    b = (w.data + r0 * w.rowBytes).assumingMemoryBound(to: Float.self)
                } else {
                    ck_dequantize_rows(Int32(w.type.rawValue), w.data, w.rowBytes, Int64(w.cols), Int64(r0), Int64(r1), buffer)
                    b = UnsafePointer(buffer)
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(tokens), Int32(r1 - r0), Int32(w.cols),
                            1, x, Int32(w.cols), b, Int32(w.cols), 0, y + r0, Int32(w.rows))
            }
        }
    }

    public func matmulMasked(_ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int, rows: UnsafePointer<Int32>,
                             masks: UnsafePointer<UInt64>, count: Int, _ y: UnsafeMutablePointer<Float>) {
        precondition(tokens <= 64, "at most 64 tokens per masked product")
        // Fast numerics quantise every token's row as `matvec` would (the same blocks, the same bits).
        let xq: UnsafePointer<ck_q8_block>? = numerics == .fast && w.cols % 32 == 0 ? quantize(x, count: tokens * w.cols) : nil
        parallelRows(count) { r0, r1 in
            ck_matmul_masked(Int32(w.type.rawValue), w.data, w.rowBytes, x, Int64(w.cols), xq, Int64(tokens), Int64(w.cols),
                             rows + r0, masks + r0, Int64(r1 - r0), y, Int64(w.rows))
        }
    }

    public func accumulateRows(_ w: WeightMatrix, tokens: Int, coefficients: UnsafePointer<UnsafePointer<Float>>,
                               rows: UnsafePointer<UnsafePointer<Int32>>, counts: UnsafePointer<Int64>,
                               into y: UnsafePointer<UnsafeMutablePointer<Float>>) {
        let (be, _) = w.type.blockGeometry!
        // Optional pointers as the C declaration sees them (same layout).
        let c = UnsafeRawPointer(coefficients).assumingMemoryBound(to: UnsafePointer<Float>?.self)
        let r = UnsafeRawPointer(rows).assumingMemoryBound(to: UnsafePointer<Int32>?.self)
        let out = UnsafeRawPointer(y).assumingMemoryBound(to: UnsafeMutablePointer<Float>?.self)
        parallelChunks(w.cols / be, minimum: 2) { _, b0, b1 in
            ck_accumulate_rows_tokens(Int32(w.type.rawValue), w.data, w.rowBytes, Int64(b0), Int64(b1), Int64(tokens), c, r, counts, out)
        }
    }

    public func accumulateRows(_ w: WeightMatrix, coefficients: UnsafePointer<Float>, rows: UnsafePointer<Int32>?, count: Int,
                               into y: UnsafeMutablePointer<Float>) {
        // The output's elements split over the threads in whole blocks: each element sums its rows in the
        // same order whatever the split.
        let (be, bb) = w.type.blockGeometry!
        parallelChunks(w.cols / be, minimum: 2) { _, b0, b1 in
            ck_accumulate_rows(Int32(w.type.rawValue), w.data + b0 * bb, w.rowBytes, Int64((b1 - b0) * be),
                               coefficients, rows, Int64(count), y + b0 * be)
        }
    }

    public func activate(_ activation: GatedActivation, _ g: UnsafeMutablePointer<Float>, _ u: UnsafePointer<Float>?, count: Int) {
        switch activation {
        case .silu: ck_silu_mul(g, u, Int64(count))
        case .geluTanh: ck_gelu_tanh_mul(g, u, Int64(count))
        }
    }

    public func rmsNorm(_ x: UnsafePointer<Float>, weight w: UnsafePointer<Float>, eps: Float, out: UnsafeMutablePointer<Float>,
                        rows: Int, width n: Int) {
        for t in 0..<rows {
            let xi = x + t * n, o = out + t * n
            let ss = ck_dot(xi, xi, Int64(n))
            let r = 1 / (ss / Float(n) + eps).squareRoot()
            for i in 0..<n { o[i] = w[i] * (xi[i] * r) }
        }
    }

    /// Tokens per attention work item at most.
    static let attentionChunk = 16
    /// Attention scratch, one per pool thread: the scores of one call's items; grown when a longer cache
    /// or a larger shared group comes (never per pass otherwise).
    private var scores: [UnsafeMutablePointer<Float>] = []
    private var scoresCapacity = 0
    /// The kernel's job records, one buffer per pool thread.
    private var attnJobs: [UnsafeMutablePointer<ck_attn_job>] = []
    private var attnJobsCapacity = 0
    /// The pass's work items (job, KV group, first token, tokens), reused.
    private var attentionItems: [(job: Int, group: Int, first: Int, count: Int)] = []
    /// Kernel calls: runs of `callOrder` (items of sequences that share one prefix and KV group go in one
    /// call, which reads the prefix once for all of them), reused.
    private var callOrder: [Int] = []
    private var calls: [(start: Int, count: Int)] = []
    private var grouped: [Bool] = []

    /// Work items are (job, KV group, run of up to `attentionChunk` tokens). Items whose caches share one
    /// prefix (a prefix cache entry) are grouped per KV group into calls of `ck_attend_gqa_jobs`, split in
    /// one part per thread; the calls are spread over the pool. A query's result does not depend on the
    /// grouping (see the kernel).
    public func attend(layer l: Int, jobs: [AttentionJob], q: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                       heads: Int, kvHeads: Int, headDim: Int, scale: Float) {
        let group = heads / kvHeads, qDim = heads * headDim
        let wanted = 2 * threads
        attentionItems.removeAll(keepingCapacity: true)
        for (j, job) in jobs.enumerated() {
            let chunksPerGroup = min(job.tokens, max(1, (wanted + kvHeads - 1) / kvHeads))
            let chunkTokens = min(Self.attentionChunk, (job.tokens + chunksPerGroup - 1) / chunksPerGroup)
            var t0 = 0
            while t0 < job.tokens {
                let n = min(chunkTokens, job.tokens - t0)
                for g in 0..<kvHeads { attentionItems.append((j, g, t0, n)) }
                t0 += n
            }
        }
        let items = attentionItems
        groupAttentionCalls(items, jobs)
        // Scratch: the largest call's scores.
        var need = 0, widest = 0
        for c in calls {
            var n = 0
            for k in c.start..<(c.start + c.count) {
                let item = items[callOrder[k]], job = jobs[item.job]
                n += item.count * group * ((job.start + item.first + item.count + 7) / 8 * 8)
            }
            need = max(need, n)
            widest = max(widest, c.count)
        }
        if need > scoresCapacity {
            for p in scores { p.deallocate() }
            scoresCapacity = need
            scores = (0..<threads).map { _ in .allocate(capacity: need) }
        }
        if widest > attnJobsCapacity {
            for p in attnJobs { p.deallocate() }
            attnJobsCapacity = widest
            attnJobs = (0..<threads).map { _ in .allocate(capacity: widest) }
        }
        let scores = self.scores, records = self.attnJobs, calls = self.calls, order = self.callOrder
        parallelChunks(calls.count, minimum: 2) { worker, c0, c1 in
            for call in calls[c0..<c1] {
                let first = items[order[call.start]], cache = jobs[first.job].cache
                let g = first.group
                var scratch = scores[worker]
                for k in 0..<call.count {
                    let item = items[order[call.start + k]], job = jobs[item.job]
                    let offset = (job.row + item.first) * qDim + g * group * headDim
                    let (kOwn, vOwn) = job.cache.base(layer: l, group: g)
                    records[worker][k] = ck_attn_job(q: q + offset, out: out + offset, ntok: Int64(item.count),
                                                     first_n: Int64(job.start + item.first + 1), k: kOwn, v: vOwn,
                                                     vis: job.visible.map { UnsafePointer($0 + item.first * job.vstride) },
                                                     vstride: Int64(job.vstride), scores: scratch)
                    scratch += item.count * group * ((job.start + item.first + item.count + 7) / 8 * 8)
                }
                let (k0, v0) = cache.shared.map { $0.base(layer: l, group: g) } ?? (nil, nil)
                ck_attend_gqa_jobs(records[worker], Int64(call.count), Int64(qDim), Int64(group), Int64(headDim), k0, v0,
                                   Int64(cache.sharedLength), cache.halfPrecision ? 1 : 0, Int64(headDim), scale)
            }
        }
    }

    /// Fills `calls` / `callOrder`: an item whose cache shares no prefix is a call alone; the items of
    /// caches that share one prefix (same entry, same length) and KV group form one call per thread.
    private func groupAttentionCalls(_ items: [(job: Int, group: Int, first: Int, count: Int)], _ jobs: [AttentionJob]) {
        callOrder.removeAll(keepingCapacity: true)
        calls.removeAll(keepingCapacity: true)
        func key(_ i: Int) -> (KVCache, Int)? {
            let c = jobs[items[i].job].cache
            return c.shared.map { ($0, c.sharedLength) }
        }
        for i in items.indices where key(i) == nil {
            calls.append((callOrder.count, 1))
            callOrder.append(i)
        }
        // Shared items, gathered group by group (few groups: a linear scan per group).
        grouped.removeAll(keepingCapacity: true)
        grouped.append(contentsOf: repeatElement(false, count: items.count))
        for i in items.indices where !grouped[i] {
            guard let (prefix, length) = key(i) else { continue }
            let start = callOrder.count
            for j in i..<items.count where !grouped[j] && items[j].group == items[i].group {
                if let (p, n) = key(j), p === prefix, n == length {
                    callOrder.append(j)
                    grouped[j] = true
                }
            }
            let m = callOrder.count - start, parts = min(m, threads)
            for p in 0..<parts {
                let a = start + m * p / parts, b = start + m * (p + 1) / parts
                calls.append((a, b - a))
            }
        }
    }

    /// Splits `rows` into contiguous ranges over the worker threads.
    @inline(__always)
    func parallelRows(_ rows: Int, minimum: Int = 64, _ body: (Int, Int) -> Void) {
        parallelChunks(rows, minimum: minimum) { _, r0, r1 in body(r0, r1) }
    }

    /// Splits `0..<count` into one contiguous range per thread; `body(worker, start, end)`. Runs on
    /// the engine's own thread pool (never the Swift cooperative pool).
    @inline(__always)
    func parallelChunks(_ count: Int, minimum: Int, _ body: (Int, Int, Int) -> Void) {
        guard let pool, count >= minimum else {
            body(0, 0, count)
            return
        }
        withoutActuallyEscaping(body) { f in
            job.body = f
            job.count = count
            ck_pool_run(pool, { ctx, worker, workers in
                let job = Unmanaged<ChunkJob>.fromOpaque(ctx!).takeUnretainedValue()
                let w = Int(worker), n = Int(workers)
                let r0 = job.count * w / n, r1 = job.count * (w + 1) / n
                if r1 > r0 { job.body?(w, r0, r1) }
            }, Unmanaged.passUnretained(job).toOpaque())
            job.body = nil
        }
    }
}

/// The task a pool runs: a range split over workers. Reused for every product (no allocation).
final class ChunkJob: @unchecked Sendable {
    var body: ((Int, Int, Int) -> Void)?
    var count = 0
}
