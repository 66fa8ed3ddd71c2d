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
