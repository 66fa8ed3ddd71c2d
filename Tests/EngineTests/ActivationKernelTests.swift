import CKernels
import Foundation
import SiriusEngine
import Testing
import TestSupport

/// The vectorised SiLU and softmax-probability kernels against double precision, on the AVX2 path and
/// the portable one.
@Suite("Activation kernels", .serialized)
struct ActivationKernelTests {
    @Test("silu(g)·u and silu(g) within a few ulp of double precision, including the extremes")
    func silu() {
        var rng = SeededRandom(seed: 9)
        var g = (0..<1000).map { _ in (rng.nextUnit() * 2 - 1) * 30 }
        g += [0, -0.0, 1e-30, -1e-30, 87, -87, 88.5, -88.5, 100, -100, 1e4, -1e4, .infinity, 3]   // odd tail length
        let u = g.indices.map { _ in rng.nextUnit() * 4 - 2 }
        for scalar in [false, true] {
            KernelSelection.shared.with(scalar: scalar) {
                var a = g, b = g
                ck_silu_mul(&a, u, Int64(g.count))
                ck_silu_mul(&b, nil, Int64(g.count))
                for i in g.indices where g[i].isFinite {
                    let x = Double(g[i]), s = x / (1 + Foundation.exp(-x))
                    #expect(abs(Double(b[i]) - s) <= 4e-7 * max(1, abs(s)), "silu(\(g[i])) = \(b[i]), want \(s) (scalar \(scalar))")
                    #expect(abs(Double(a[i]) - s * Double(u[i])) <= 1e-6 * max(1, abs(s * Double(u[i]))), "silu·u at \(g[i]) (scalar \(scalar))")
                }
                #expect(b[g.firstIndex(of: .infinity)!] == .infinity)
            }
        }
    }

    /// Float sums of 49k terms: relative error of order 1e-5, far below any acceptance threshold's scale.
    @Test("softmax(z/T)[token] within 1e-4 (relative) of double precision", arguments: [1.0 as Float, 0.5, 2])
    func softmaxAt(temperature: Float) {
        var rng = SeededRandom(seed: 4)
        let z = (0..<49_157).map { _ in (rng.nextUnit() * 2 - 1) * 12 }
        let m = Double(z.max()!)
        let e = z.map { Foundation.exp((Double($0) - m) / Double(temperature)) }
        let total = e.reduce(0, +)
        for scalar in [false, true] {
            KernelSelection.shared.with(scalar: scalar) {
                for token in [0, 17, z.firstIndex(of: z.max()!)!, z.count - 1] {
                    let p = ck_softmax_at(z, Int64(z.count), 1 / temperature, Int64(token))
                    #expect(abs(Double(p) - e[token] / total) <= 1e-4 * e[token] / total, "token \(token) scalar \(scalar): \(p) vs \(e[token] / total)")
                }
            }
        }
    }
}

/// The neuron-major accumulation of the CATS down projection (Q8_0 rows), vectorised, against doubles
/// and against the portable path.
@Suite("Sparse down accumulation", .serialized)
struct AccumulateRowsTests {
    @Test("ck_accumulate_rows on Q8_0 rows equals Σ coef·row (listed rows, zero coefficients skipped)", arguments: [576, 96, 32])
    func q8_0Rows(cols: Int) {
        var rng = SeededRandom(seed: UInt64(cols))
        let rowsCount = 40
        let rowBytes = cols / 32 * 34
        var w = [UInt8](repeating: 0, count: rowsCount * rowBytes)
        var deq = [Float](repeating: 0, count: rowsCount * cols)
        for r in 0..<rowsCount {
            let x = (0..<cols).map { _ in (rng.nextUnit() * 2 - 1) * 3 }
            w.withUnsafeMutableBytes { ck_quantize_row_q8_0(x, Int64(cols), $0.baseAddress! + r * rowBytes) }
            deq.withUnsafeMutableBufferPointer { d in
                w.withUnsafeBytes { ck_dequantize(Int32(GGMLType.q8_0.rawValue), $0.baseAddress! + r * rowBytes, d.baseAddress! + r * cols, Int64(cols)) }
            }
        }
        let list: [Int32] = [3, 0, 39, 7, 7, 12, 25, 1, 30]
        var coef = list.map { _ in rng.nextUnit() * 2 - 1 }
        coef[4] = 0
        let y0 = (0..<cols).map { _ in rng.nextUnit() }
        let expected = (0..<cols).map { j in
            list.indices.reduce(Double(y0[j])) { $0 + Double(coef[$1]) * Double(deq[Int(list[$1]) * cols + j]) }
        }
        var results: [[Float]] = []
        for (scalar, limited) in [(false, false), (false, true), (true, false)] {
            results.append(KernelSelection.shared.with(scalar: scalar) {
                ck_limit_avx512(limited ? 1 : 0)
                defer { ck_limit_avx512(0) }
                var y = y0
                ck_accumulate_rows(Int32(GGMLType.q8_0.rawValue), w, rowBytes, Int64(cols), coef, list, Int64(list.count), &y)
                return y
            })
        }
        // The AVX-512 and AVX2 accumulations add in the same order: bit-identical.
        #expect(Compare.bitsEqual(results[0], results[1]))
        for y in results {
            let err = (0..<cols).map { abs(Double(y[$0]) - expected[$0]) }.max()!
            #expect(err <= 1e-5, "max error \(err)")
        }
    }

    /// Griffin's batched down: several tokens, each with its own rows and coefficients, over the output
    /// split into thread ranges, give every token the bits of ck_accumulate_rows on it alone.
    @Test("ck_accumulate_rows_tokens gives each token the bits of ck_accumulate_rows alone", arguments: [576, 96])
    func severalTokens(cols: Int) {
        var rng = SeededRandom(seed: UInt64(cols) + 1)
        let rowsCount = 50, rowBytes = cols / 32 * 34, nb = cols / 32
        var w = [UInt8](repeating: 0, count: rowsCount * rowBytes)
        for r in 0..<rowsCount {
            let x = (0..<cols).map { _ in (rng.nextUnit() * 2 - 1) * 3 }
            w.withUnsafeMutableBytes { ck_quantize_row_q8_0(x, Int64(cols), $0.baseAddress! + r * rowBytes) }
        }
        let lists: [[Int32]] = [[0, 2, 9, 30, 49], [1, 2, 3, 4, 5, 6, 7, 8, 40], [49], (0..<50).map(Int32.init)]
        let coefs = lists.map { $0.map { _ in rng.nextUnit() * 2 - 1 } }
        let y0 = lists.map { _ in (0..<cols).map { _ in rng.nextUnit() } }
        for (scalar, limited) in [(false, false), (false, true), (true, false)] {
            KernelSelection.shared.with(scalar: scalar) {
                ck_limit_avx512(limited ? 1 : 0)
                defer { ck_limit_avx512(0) }
                var alone = y0
                for t in lists.indices {
                    ck_accumulate_rows(Int32(GGMLType.q8_0.rawValue), w, rowBytes, Int64(cols), coefs[t], lists[t], Int64(lists[t].count), &alone[t])
                }
                let outs = y0.map { v -> UnsafeMutablePointer<Float> in
                    let p = UnsafeMutablePointer<Float>.allocate(capacity: cols)
                    p.initialize(from: v, count: cols)
                    return p
                }
                defer { outs.forEach { $0.deallocate() } }
                let cs = coefs.map { c -> UnsafeMutablePointer<Float> in
                    let p = UnsafeMutablePointer<Float>.allocate(capacity: c.count); p.initialize(from: c, count: c.count); return p
                }
                let rs = lists.map { l -> UnsafeMutablePointer<Int32> in
                    let p = UnsafeMutablePointer<Int32>.allocate(capacity: l.count); p.initialize(from: l, count: l.count); return p
                }
                defer { cs.forEach { $0.deallocate() }; rs.forEach { $0.deallocate() } }
                var cp: [UnsafePointer<Float>?] = cs.map { UnsafePointer($0) }
                var rp: [UnsafePointer<Int32>?] = rs.map { UnsafePointer($0) }
                var counts = lists.map { Int64($0.count) }
                var op: [UnsafeMutablePointer<Float>?] = outs
                // Two uneven thread ranges of blocks, as a 2-thread split would give.
                let cut = nb / 2 + 1
                for (b0, b1) in [(0, cut), (cut, nb)] {
                    ck_accumulate_rows_tokens(Int32(GGMLType.q8_0.rawValue), w, rowBytes, Int64(b0), Int64(b1), Int64(lists.count),
                                              &cp, &rp, &counts, &op)
                }
                for t in lists.indices {
                    #expect(Compare.bitsEqual(Array(UnsafeBufferPointer(start: outs[t], count: cols)), alone[t]),
                            "token \(t) scalar=\(scalar) limited=\(limited)")
                }
            }
        }
    }
}
