import CKernels
import COpenBLAS
import Dispatch

/// How activations meet quantised weights.
public enum Numerics: String, Sendable, CaseIterable {
    /// Float activations against dequantised weights (matches the float reference).
    case exact
    /// Activations quantised to 8 bits per block of 32, integer dot products (llama.cpp style).
    case fast
}

/// Matrix kernels used by the forward pass. Single-token products are mat-vecs over the quantised rows;
/// multi-token products dequantise a tile of rows and call OpenBLAS `sgemm` (formats.md §4).
public final class MatMul {
    public let numerics: Numerics
    public let threads: Int
    /// Token count from which multi-token products go through sgemm instead of per-token mat-vecs.
    public var gemmMinTokens = 8
    private var tiles: [UnsafeMutablePointer<Float>]
    private var tileCapacity: Int
    private var q8: UnsafeMutablePointer<ck_q8_block>
    /// Helper threads for `threads > 1` (nil with one thread), and the task they run.
    private let pool: OpaquePointer?
    private let job = ChunkJob()
    private var q8Capacity: Int

    public init(numerics: Numerics, threads: Int = 1) {
        self.numerics = numerics
        self.threads = max(1, threads)
        tileCapacity = 1 << 16
        tiles = (0..<max(1, threads)).map { _ in .allocate(capacity: 1 << 16) }
        q8Capacity = 1024
        q8 = .allocate(capacity: q8Capacity)
        openblas_set_num_threads(1)
        pool = self.threads > 1 ? ck_pool_create(Int32(self.threads)) : nil
    }

    deinit {
        if let pool { ck_pool_destroy(pool) }
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

    /// Y[T, rows] = X[T, cols] · Wᵀ for `tokens` rows of X (row stride `cols`, output stride `rows`).
    public func matmul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, tokens: Int) {
        if tokens == 1 {
            matvec(w, x, y)
            return
        }
        // Fast numerics: integer products, each weight block decoded once per four tokens.
        if numerics == .fast && w.cols % 32 == 0 && (w.type == .q4_0 || w.type == .q4_1 || w.type == .q8_0) {
            let nb = w.cols / 32
            let xq = quantize(x, count: tokens * w.cols)   // T consecutive rows → T·nb blocks
            precondition(nb * tokens <= q8Capacity)
            parallelRows(w.rows) { r0, r1 in
                _ = ck_matmul_q8(Int32(w.type.rawValue), w.data, w.rowBytes, xq, Int64(tokens), y, Int64(w.rows),
                                 Int64(w.cols), Int64(r0), Int64(r1))
            }
            return
        }
        if tokens < gemmMinTokens {
            for t in 0..<tokens { matvec(w, x + t * w.cols, y + t * w.rows) }
            return
        }
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
