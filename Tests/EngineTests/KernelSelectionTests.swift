import CKernels
import Foundation
import SiriusEngine
import Testing
import TestSupport

/// The AVX2/FMA/F16C kernels against the portable scalar ones. `ck_force_scalar` applies to the
/// calling thread (and the pool helpers working for it), so switching here never changes the kernels
/// of another suite comparing bits at the same time; `KernelSelection.shared.with(scalar:)` also
/// resets the switch when the body ends.
/// On a CPU without AVX2 both runs use the scalar kernels and the comparisons hold trivially.
@Suite("AVX2 and scalar kernels agree", .serialized)
struct KernelSelectionTests {
    static let kernelTol: Float = 1e-5
    /// Whole-model logits, fast numerics, AVX2 vs scalar kernels (see transformerScalarVsSIMD).
    static let fastModelTol: Float = 2e-2

    func run<T>(scalar: Bool, _ body: () throws -> T) rethrows -> T {
        try KernelSelection.shared.with(scalar: scalar, body)
    }

    @Test("ck_force_scalar switches ck_has_avx2 off and back")
    func forceScalarSwitch() {
        let native = run(scalar: false) { ck_has_avx2() }
        let forced = run(scalar: true) { ck_has_avx2() }
        #expect(forced == 0)
        #expect(run(scalar: false) { ck_has_avx2() } == native)
        #if arch(x86_64)
        print("[numerics] this CPU uses the AVX2 kernels: \(native == 1)")
        #endif
    }

    /// The switches belong to the thread that sets them (and its pool helpers): while another thread
    /// holds the scalar kernels, this thread's products keep the native bits, and that thread's
    /// (at 1 and 2 threads) are the scalar bits. So a switching test cannot disturb a test that
    /// compares bits at the same time.
    @Test("kernel switches are per thread and reach the pool's helpers")
    func switchesArePerThread() throws {
        #if arch(x86_64)
        try #require(run(scalar: false) { ck_has_avx2() } == 1, "this check needs a CPU with the AVX2 kernels")
        #endif
        let rows = 64, cols = 256
        let (m, _) = matrix(.q4_1, rows: rows, cols: cols, seed: 91)
        var rng = SeededRandom(seed: 5)
        let x = (0..<(3 * cols)).map { _ in (rng.nextUnit() * 2 - 1) * 3 }
        @Sendable func product(threads: Int) -> [Float] {
            let b = CPUBackend(numerics: .exact, threads: threads)
            var y = [Float](repeating: .nan, count: 3 * rows)
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { b.matmul(m, xp.baseAddress!, $0.baseAddress!, tokens: 3) } }
            return y
        }
        let native = run(scalar: false) { product(threads: 1) }
        let scalar = run(scalar: true) { product(threads: 1) }
        try #require(!Compare.bitsEqual(native, scalar), "the data must tell the two kernel sets apart")

        let holding = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        // Written by the other thread before `holding` is signalled, read after: the semaphore orders it.
        final class Box: @unchecked Sendable { var products: [[Float]] = [] }
        let other = Box()
        let t = Thread {
            ck_force_scalar(1)
            other.products = [product(threads: 1), product(threads: 2)]
            holding.signal()
            release.wait()
            ck_force_scalar(0)
        }
        t.start()
        holding.wait()
        // The other thread has the scalar kernels on now; this one does not.
        let here = [product(threads: 1), product(threads: 2)]
        release.signal()
        #expect(here.allSatisfy { Compare.bitsEqual($0, native) }, "this thread kept its kernels")
        #expect(other.products.count == 2 && other.products.allSatisfy { Compare.bitsEqual($0, scalar) }, "the other thread and its helpers ran scalar")
    }

    func matrix(_ type: GGMLType, rows: Int, cols: Int, seed: UInt64) -> (WeightMatrix, [Float]) {
        var rng = SeededRandom(seed: seed)
        let w = (0..<(rows * cols)).map { _ in rng.nextUnit() * 2 - 1 }
        let bytes = RefQuant.quantize(w, rows: rows, cols: cols, as: type)
        let buf = WeightBuffer(size: bytes.count)
        bytes.withUnsafeBytes { buf.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return (WeightMatrix(type: type, rows: rows, cols: cols, data: UnsafeRawPointer(buf.pointer), owner: buf),
                RefQuant.dequantize(bytes, type: type, count: rows * cols))
    }

    /// The vectorised dequantisation (sgemm tiles of prompt chunks) gives the scalar kernel's values bit for bit.
    @Test("row dequantisation equals the scalar blocks bit for bit", arguments: [GGMLType.q4_0, .q4_1, .q8_0])
    func dequantizeRowsEqualsScalar(type: GGMLType) {
        let rows = 9, cols = 320
        let (m, _) = matrix(type, rows: rows, cols: cols, seed: 500 + UInt64(type.rawValue))
        var fast = [Float](repeating: .nan, count: rows * cols), slow = fast
        fast.withUnsafeMutableBufferPointer { ck_dequantize_rows(Int32(type.rawValue), m.data, m.rowBytes, Int64(cols), 0, Int64(rows), $0.baseAddress!) }
        slow.withUnsafeMutableBufferPointer { out in
            for r in 0..<rows { ck_dequantize(Int32(type.rawValue), m.data + r * m.rowBytes, out.baseAddress! + r * cols, Int64(cols)) }
        }
        #expect(Compare.bitsEqual(fast, slow))
    }

    /// The batching guarantee at kernel level: a multi-token product gives every token the bits of the
    /// one-token product, for every token count (groups of four or eight and every remainder), type,
    /// numerics and thread count, on the CPU's kernels and on the scalar ones. The Q4 / Q8_0 rows are
    /// 38 blocks long, so the AVX-512 exact kernel splits each row into three block ranges (its
    /// accumulators carried between them) and its rows into chunks of 16 with a remainder.
    @Test("multi-token products equal one-token products bit for bit, T = 1…17", arguments: allWeightTypes)
    func multiTokenEqualsSingleToken(type: GGMLType) {
        let rows = 70, cols = type == .q4_K || type == .q6_K ? 512 : [.q4_0, .q4_1, .q8_0].contains(type) ? 1216 : 288
        let (m, _) = matrix(type, rows: rows, cols: cols, seed: 300 + UInt64(type.rawValue))
        var rng = SeededRandom(seed: 17)
        let x = (0..<(17 * cols)).map { _ in (rng.nextUnit() * 2 - 1) * 3 }
        for scalar in [false, true] {
            run(scalar: scalar) {
                for numerics in Numerics.allCases {
                    for threads in [1, 2] {
                        let b = CPUBackend(numerics: numerics, threads: threads)
                        var one = [Float](repeating: .nan, count: 17 * rows)
                        x.withUnsafeBufferPointer { xp in
                            one.withUnsafeMutableBufferPointer { yp in
                                for t in 0..<17 { b.matvec(m, xp.baseAddress! + t * cols, yp.baseAddress! + t * rows) }
                            }
                        }
                        for T in 1...17 {
                            var many = [Float](repeating: .nan, count: T * rows)
                            x.withUnsafeBufferPointer { xp in many.withUnsafeMutableBufferPointer { b.matmul(m, xp.baseAddress!, $0.baseAddress!, tokens: T) } }
                            #expect(Compare.bitsEqual(many, Array(one.prefix(T * rows))),
                                    "\(type) \(numerics) T=\(T) threads=\(threads) scalar=\(scalar)")
                        }
                    }
                }
            }
        }
    }

    /// Griffin's batched gate and up: each (row, token) a mask names gets the one-token product's bits,
    /// and nothing else is written, for every type, numerics, thread count and kernel set.
    @Test("masked products equal one-token products bit for bit and write only the masked entries", arguments: allWeightTypes)
    func maskedEqualsSingleToken(type: GGMLType) {
        let rows = 70, cols = type == .q4_K || type == .q6_K ? 512 : 288, T = 7
        let (m, _) = matrix(type, rows: rows, cols: cols, seed: 700 + UInt64(type.rawValue))
        var rng = SeededRandom(seed: 23)
        let x = (0..<(T * cols)).map { _ in (rng.nextUnit() * 2 - 1) * 3 }
        // Rows in ascending order (as Griffin lists them), each with its own token subset; row 0 and
        // row 69 (the edges) included, some rows wanted by every token, some by one.
        let listed: [Int32] = [0, 3, 4, 10, 17, 31, 32, 50, 68, 69]
        let masks: [UInt64] = listed.enumerated().map { i, r in i % 3 == 0 ? (1 << UInt64(T)) - 1 : UInt64(r * 37 + 11) & ((1 << UInt64(T)) - 1) | 1 << UInt64(i % T) }
        for scalar in [false, true] {
            run(scalar: scalar) {
                for numerics in Numerics.allCases {
                    for threads in [1, 2] {
                        let b = CPUBackend(numerics: numerics, threads: threads)
                        var one = [Float](repeating: .nan, count: T * rows)
                        var masked = [Float](repeating: .nan, count: T * rows)
                        x.withUnsafeBufferPointer { xp in
                            one.withUnsafeMutableBufferPointer { yp in
                                for t in 0..<T { b.matvec(m, xp.baseAddress! + t * cols, yp.baseAddress! + t * rows) }
                            }
                            listed.withUnsafeBufferPointer { lp in
                                masks.withUnsafeBufferPointer { mp in
                                    masked.withUnsafeMutableBufferPointer {
                                        b.matmulMasked(m, xp.baseAddress!, tokens: T, rows: lp.baseAddress!, masks: mp.baseAddress!,
                                                       count: listed.count, $0.baseAddress!)
                                    }
                                }
                            }
                        }
                        var want = [Float](repeating: .nan, count: T * rows)
                        for (i, r) in listed.enumerated() {
                            for t in 0..<T where masks[i] & (1 << UInt64(t)) != 0 { want[t * rows + Int(r)] = one[t * rows + Int(r)] }
                        }
                        #expect(Compare.bitsEqual(masked, want), "\(type) \(numerics) threads=\(threads) scalar=\(scalar)")
                    }
                }
            }
        }
    }

    /// On AVX-512 VNNI, a fast one-token product over Q4_0 / Q4_1 / Q8_0 rows (all rows, or listed ones)
    /// runs the multi-token tile kernel with one token; it must give the 256-bit kernels' bits (what a CPU
    /// without AVX-512 computes), for every row count (whole tiles and remainders), odd and even block
    /// counts, row ranges split over threads, and lists with repeats in any order. On a CPU without
    /// AVX-512 VNNI both runs take the 256-bit kernels.
    @Test("fast one-token products on AVX-512 equal the AVX2 kernels bit for bit (all rows and row lists)",
          arguments: [GGMLType.q4_0, .q4_1, .q8_0])
    func oneTokenWideEqualsAVX2(type: GGMLType) {
        for (rows, cols) in [(70, 288), (5, 32), (131, 1216), (64, 96)] {
            let (m, _) = matrix(type, rows: rows, cols: cols, seed: 900 + UInt64(rows) + UInt64(type.rawValue))
            var rng = SeededRandom(seed: UInt64(rows))
            let x = (0..<cols).map { _ in (rng.nextUnit() * 2 - 1) * 3 }
            let list: [Int32] = (0..<(rows + 9)).map { i in Int32((i * 37 + 11) % rows) } + [0, Int32(rows - 1), 0]
            func products(limited: Bool, threads: Int) -> [Float] {
                KernelSelection.shared.with(scalar: false) {
                    ck_limit_avx512(limited ? 1 : 0)
                    defer { ck_limit_avx512(0) }
                    let b = CPUBackend(numerics: .fast, threads: threads)
                    var y = [Float](repeating: .nan, count: rows), z = [Float](repeating: .nan, count: list.count)
                    x.withUnsafeBufferPointer { xp in
                        y.withUnsafeMutableBufferPointer { b.matvec(m, xp.baseAddress!, $0.baseAddress!) }
                        list.withUnsafeBufferPointer { lp in
                            z.withUnsafeMutableBufferPointer { b.matvecRows(m, rows: lp.baseAddress!, count: list.count, xp.baseAddress!, $0.baseAddress!) }
                        }
                    }
                    return y + z
                }
            }
            let narrow = products(limited: true, threads: 1)
            #expect(!narrow.contains { $0.isNaN }, "\(type) \(rows)×\(cols): every entry written")
            for threads in [1, 2] {
                #expect(Compare.bitsEqual(products(limited: false, threads: threads), narrow), "\(type) \(rows)×\(cols) threads=\(threads)")
            }
        }
    }

    @Test("mat-vec kernels (exact and fast, all rows and row lists) agree with each other and the reference",
          arguments: allWeightTypes)
    func matvecKernels(type: GGMLType) {
        let rows = 70, cols = type == .q4_K || type == .q6_K ? 512 : 288
        let (m, deq) = matrix(type, rows: rows, cols: cols, seed: 100 + UInt64(type.rawValue))
        var rng = SeededRandom(seed: 5)
        let x = (0..<cols).map { _ in (rng.nextUnit() * 2 - 1) * 2 }
        let reference = (0..<rows).map { r in Float((0..<cols).reduce(0.0) { $0 + Double(deq[r * cols + $1]) * Double(x[$1]) }) }
        let list: [Int32] = [69, 0, 5, 5, 33]
        func products(_ numerics: Numerics) -> (all: [Float], listed: [Float]) {
            let mm = CPUBackend(numerics: numerics, threads: 1)
            var y = [Float](repeating: .nan, count: rows), z = [Float](repeating: .nan, count: list.count)
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { mm.matvec(m, xp.baseAddress!, $0.baseAddress!) }
                list.withUnsafeBufferPointer { lp in
                    z.withUnsafeMutableBufferPointer { mm.matvecRows(m, rows: lp.baseAddress!, count: list.count, xp.baseAddress!, $0.baseAddress!) }
                }
            }
            return (y, z)
        }
        for numerics in Numerics.allCases {
            let simd = run(scalar: false) { products(numerics) }
            let scalar = run(scalar: true) { products(numerics) }
            #expect(Compare.relDiff(simd.all, scalar.all) <= Self.kernelTol, "\(type) \(numerics): AVX2 vs scalar")
            // A listed row is computed by the same kernel as in the full product.
            let listedSIMD = Compare.bitsEqual(simd.listed, list.map { simd.all[Int($0)] })
            let listedScalar = Compare.bitsEqual(scalar.listed, list.map { scalar.all[Int($0)] })
            #expect(listedSIMD && listedScalar, "\(type) \(numerics): row-list kernel vs full kernel")
            if numerics == .exact {
                #expect(Compare.relDiff(simd.all, reference) <= Self.kernelTol, "\(type) AVX2 vs reference")
                #expect(Compare.relDiff(scalar.all, reference) <= Self.kernelTol, "\(type) scalar vs reference")
            }
        }
    }

    @Test("activation quantisation (fast numerics) is bit-identical in both kernels, ties and zero blocks included")
    func quantizeQ8() {
        var rng = SeededRandom(seed: 12)
        var x = (0..<256).map { _ in (rng.nextUnit() * 2 - 1) * 5 }
        for j in 32..<64 { x[j] = 0 }                                  // an all-zero block (d = 0)
        for j in 64..<96 { x[j] = Float(j - 80) * 0.5 }                // many exact .5 ties after scaling
        x[64] = 127                                                     // amax 127 → d = 1, ties stay ties
        func quantize() -> [ck_q8_block] {
            var out = [ck_q8_block](repeating: ck_q8_block(), count: 8)
            x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { ck_quantize_q8(xp.baseAddress!, 256, $0.baseAddress!) } }
            return out
        }
        let a = run(scalar: false) { quantize() }, b = run(scalar: true) { quantize() }
        for i in 0..<8 {
            let qa = withUnsafeBytes(of: a[i].q) { Array($0) }, qb = withUnsafeBytes(of: b[i].q) { Array($0) }
            #expect(a[i].d.bitPattern == b[i].d.bitPattern && a[i].s.bitPattern == b[i].s.bitPattern && qa == qb, "block \(i)")
        }
        // Model: d = amax/127, q = round-half-even(x/d), s = d·Σq.
        for i in 0..<8 {
            let xb = Array(x[(32 * i)..<(32 * i + 32)])
            let d = xb.map(abs).max()! / 127, id: Float = d != 0 ? 1 / d : 0
            let q = xb.map { Int8(($0 * id).rounded(.toNearestOrEven)) }
            let qa = withUnsafeBytes(of: a[i].q) { $0.map { Int8(bitPattern: $0) } }
            #expect(a[i].d == d && qa == q && a[i].s == d * Float(q.reduce(0) { $0 + Int($1) }), "block \(i) vs model")
        }
    }

    @Test("ck_dot and ck_axpy agree across kernels for every length 0…70")
    func dotAndAxpy() {
        var rng = SeededRandom(seed: 3)
        let a = (0..<70).map { _ in rng.nextUnit() - 0.5 }, b = (0..<70).map { _ in rng.nextUnit() - 0.5 }
        for n in 0...70 {
            let ref = (0..<n).reduce(0.0) { $0 + Double(a[$1]) * Double(b[$1]) }
            for scalar in [false, true] {
                let (d, y) = run(scalar: scalar) { () -> (Float, [Float]) in
                    var y = b
                    let d = ck_dot(a, b, Int64(n))
                    ck_axpy(0.75, a, &y, Int64(n))
                    return (d, y)
                }
                #expect(abs(Double(d) - ref) <= 1e-5, "dot n=\(n) scalar=\(scalar)")
                let expectY = (0..<70).map { $0 < n ? b[$0] + 0.75 * a[$0] : b[$0] }
                #expect(Compare.maxAbsDiff(y, expectY) <= 1e-6, "axpy n=\(n) scalar=\(scalar)")
            }
        }
    }

    @Test("Transformer logits with the scalar kernels equal the AVX2 ones", arguments: allWeightTypes)
    func transformerScalarVsSIMD(type: GGMLType) throws {
        let tiny = TinyLlama(tinySpec(for: type, tied: type == .q8_0, seed: 61))
        let (model, ref) = try tiny.loadGGUF(TinyWeightTypes(type))
        let tokens = TinyLlama.tokens(8, vocab: tiny.spec.vocab, seed: 2)
        let expected = ref.logits(tokens)
        for numerics in Numerics.allCases {
            func logits() -> (prefill: [[Float]], decode: [[Float]]) {
                let p = Transformer(model: model, capacity: 16, numerics: numerics, threads: 2)
                let d = Transformer(model: model, capacity: 16, numerics: numerics, threads: 2)
                return (p.logits(tokens, start: 0, all: true), tokens.enumerated().map { d.logits([$1], start: $0)[0] })
            }
            let simd = run(scalar: false) { logits() }, scalar = run(scalar: true) { logits() }
            // The two paths sum in different orders (and the SIMD attention has its own exp), so each
            // may sit up to Tol.exact from the truth on its own side: they agree within twice that. In
            // fast numerics a last-bit difference upstream can move an activation across a quantisation
            // boundary (one 1/127 step of its block) further on: the bound is then that step's effect
            // (the products themselves agree within `kernelTol`: matvecKernels).
            let tol = numerics == .exact ? 2 * Tol.exact : Self.fastModelTol
            for i in tokens.indices {
                #expect(Compare.relDiff(simd.prefill[i], scalar.prefill[i]) <= tol, "\(type) \(numerics) prefill \(i)")
                #expect(Compare.relDiff(simd.decode[i], scalar.decode[i]) <= tol, "\(type) \(numerics) decode \(i)")
                if numerics == .exact {
                    #expect(Compare.relDiff(scalar.decode[i], expected[i]) <= Tol.exact, "\(type) scalar decode vs reference \(i)")
                    #expect(Compare.relDiff(simd.decode[i], expected[i]) <= Tol.exact, "\(type) SIMD decode vs reference \(i)")
                    #expect(Compare.relDiff(simd.prefill[i], expected[i]) <= Tol.exact, "\(type) SIMD prefill vs reference \(i)")
                }
            }
        }
    }

    /// Exact prompt chunks go through OpenBLAS's sgemm, whose bits depend on the kernels the library
    /// picks for the CPU (Prescott, its generic fallback on a CPU it does not know, gives other bits
    /// than Haswell, and SkylakeX others again). The engine chooses by the CPU's class — SkylakeX's with
    /// AVX-512, Haswell's with AVX2 — so a prompt's K/V and logits are the same bits on every machine of
    /// the class: the product below has the bits it had where it was recorded (OpenBLAS 0.3.21, Debian 12).
    @Test("exact prompt chunks run the OpenBLAS kernels of the CPU's class, with the same bits on every machine of it")
    func promptChunksUsePinnedBLASKernels() throws {
        let backend = CPUBackend(numerics: .exact, threads: 1)
        let expected = [2: "SkylakeX", 1: "Haswell"][Int(ck_cpu_level())]
        if ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil, let expected {
            #expect(CPUBackend.blasKernels == expected)
        } else {
            print("[numerics] OpenBLAS kernels chosen by the library or OPENBLAS_CORETYPE: \(CPUBackend.blasKernels)")
        }
        let rows = 48, cols = 576, tokens = 16
        let (m, w) = matrix(.q4_1, rows: rows, cols: cols, seed: 77)
        var rng = SeededRandom(seed: 78)
        let x = (0..<(tokens * cols)).map { _ in rng.nextUnit() * 2 - 1 }
        var y = [Float](repeating: .nan, count: tokens * rows)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { backend.matmulPrompt(m, xp.baseAddress!, $0.baseAddress!, tokens: tokens) }
        }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for v in y { h = (h ^ UInt64(v.bitPattern)) &* 0x100_0000_01b3 }
        print("[numerics] prompt-chunk product bits: \(String(h, radix: 16)) with OpenBLAS \(CPUBackend.blasKernels)")
        if let bits = Self.promptBits[CPUBackend.blasKernels] {
            #expect(h == bits, "sgemm's bits changed: another OpenBLAS, or other kernels than \(CPUBackend.blasKernels)'s")
        }
        // Whatever the kernels, the values are the product's (the reference-dequantised rows in doubles).
        for t in 0..<tokens {
            for r in 0..<rows {
                var ref = 0.0
                for c in 0..<cols { ref += Double(w[r * cols + c]) * Double(x[t * cols + c]) }
                #expect(abs(Double(y[t * rows + r]) - ref) < 1e-4, "token \(t) row \(r)")
            }
        }
    }
    static let promptBits: [String: UInt64] = ["Haswell": 0x8dae_c218_8fc2_be9d, "SkylakeX": 0xa3b3_6ada_26f0_81a6]
}
