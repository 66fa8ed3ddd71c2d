import CKernels
import Foundation
import SiriusEngine
import SiriusMethod
import Testing
import TestSupport

/// CATS's step: the choice of active neurons (a bit-wise search or a radix select, no sort) and the
/// step's MLP, each against an independent computation.
@Suite("CATS step")
struct CATSStepTests {
    /// The reference choice: sort by magnitude (largest first, ties by index), keep k, list ascending.
    static func referenceTopK(_ mag: [Float], _ k: Int) -> [Int32] {
        let order = mag.indices.sorted { mag[$0] != mag[$1] ? mag[$0] > mag[$1] : $0 < $1 }
        return order.prefix(k).sorted().map(Int32.init)
    }

    static func select(_ g: [Float], tokens: Int, k: Int, threshold: Float? = nil) -> (active: [Int32], mag: [Float]) {
        let d = g.count / tokens
        var mag = [Float](repeating: .nan, count: d)
        var active = [Int32](repeating: -1, count: d)
        let n = ck_cats_select(g, Int64(tokens), Int64(d), Int64(k), threshold ?? 0, threshold == nil ? 0 : 1, &mag, &active)
        return (Array(active.prefix(Int(n))), mag)
    }

    /// On the CPU's widest choice (AVX-512 where present) and on the radix select (`ck_limit_avx512`).
    @Test("top-k equals a sort's choice: random magnitudes, ties (lower index wins), zeros, k at the ends",
          arguments: [1536, 128, 37], [false, true])
    func topKEqualsSort(d: Int, limited: Bool) {
        ck_limit_avx512(limited ? 1 : 0)
        defer { ck_limit_avx512(0) }
        var rng = SeededRandom(seed: UInt64(d))
        // Values drawn from a few levels make many exact ties; the rest are continuous, some tiny and zero.
        let levels: [Float] = [0, 1e-30, 0.25, 0.5, 3]
        for trial in 0..<20 {
            let tokens = trial % 3 == 2 ? 2 : 1
            let g = (0..<(tokens * d)).map { i -> Float in
                let v = trial % 2 == 0 ? levels[Int(rng.nextUnit() * Float(levels.count)) % levels.count] : (rng.nextUnit() * 2 - 1) * 5
                return i % 2 == 0 ? v : -v
            }
            let mag = (0..<d).map { j in (0..<tokens).reduce(Float(0)) { $0 + abs(g[$1 * d + j]) } }
            for k in [1, d / 4, d / 2, d - 1, d] {
                let (active, m) = Self.select(g, tokens: tokens, k: k)
                #expect(m == mag, "magnitudes summed in row order")
                #expect(active == Self.referenceTopK(mag, k), "d \(d) trial \(trial) k \(k)")
            }
        }
    }

    @Test("threshold mode lists exactly the neurons above the threshold, ascending", arguments: [false, true])
    func thresholdMode(limited: Bool) {
        ck_limit_avx512(limited ? 1 : 0)
        defer { ck_limit_avx512(0) }
        var rng = SeededRandom(seed: 9)
        let g = (0..<300).map { _ in (rng.nextUnit() * 2 - 1) * 2 }
        let (active, mag) = Self.select(g, tokens: 1, k: 10, threshold: 0.8)
        #expect(active == mag.indices.filter { mag[$0] > 0.8 }.map(Int32.init))
        #expect(active.count > 10, "the threshold, not k, decides")
    }

    /// A CATS step on a quantised tiny model against the dense MLP restricted to the neurons the step
    /// chose, computed in doubles from the dequantised weights; the choice itself is checked against the
    /// doubles' magnitudes (the chosen neurons are the largest, up to float rounding).
    @Test("a step equals the dense MLP restricted to its active neurons, in doubles", arguments: [0.5, 0.3])
    func stepEqualsRestrictedDenseMLP(density: Double) throws {
        let model = try SiriusRig.tinyModel(.q4_0, seed: 21)
        let c = model.config
        let t = Transformer(model: model, capacity: 16)
        let mlp = CATSMLP(model: model, density: density, down: NeuronMajorDown(model: model))
        var rng = SeededRandom(seed: 13)
        func row(_ w: WeightMatrix, _ r: Int) -> [Float] {
            var out = [Float](repeating: 0, count: w.cols)
            out.withUnsafeMutableBufferPointer { w.dequantizeRow(r, into: $0.baseAddress!) }
            return out
        }
        for l in 0..<c.layerCount {
            let x = (0..<c.hiddenSize).map { _ in rng.nextUnit() * 2 - 1 }
            var y = [Float](repeating: .nan, count: c.hiddenSize)
            t.reserve(tokens: 1)
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { mlp.run(layer: l, input: xp.baseAddress!, output: $0.baseAddress!, tokens: 1, in: t) } }
            let active = mlp.lastActive
            #expect(active.count == Int((density * Double(c.intermediateSize)).rounded(.down)))
            let layer = model.layers[l]
            let dot = { (w: [Float]) in zip(w, x).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }
            let act = (0..<c.intermediateSize).map { j -> Double in let g = dot(row(layer.gate, j)); return g / (1 + Foundation.exp(-g)) }
            // Chosen neurons are the largest |silu(gate)| (a margin for the float gate's rounding).
            let chosen = Set(active.map(Int.init))
            let smallestChosen = chosen.map { abs(act[$0]) }.min()!
            let largestOther = (0..<c.intermediateSize).filter { !chosen.contains($0) }.map { abs(act[$0]) }.max() ?? 0
            #expect(smallestChosen >= largestOther - 1e-4, "layer \(l): chosen \(smallestChosen) vs not chosen \(largestOther)")
            var h: [Int: Double] = [:]
            for j in chosen { h[j] = act[j] * dot(row(layer.up, j)) }
            let downRows = (0..<c.hiddenSize).map { row(layer.down, $0) }
            let ref = (0..<c.hiddenSize).map { r in h.reduce(0.0) { $0 + $1.value * Double(downRows[r][$1.key]) } }
            let scale = max(1, ref.map(abs).max()!)
            let err = (0..<c.hiddenSize).map { abs(Double(y[$0]) - ref[$0]) }.max()!
            // The neuron-major down rows are requantised to Q8_0: error of that order, not more.
            #expect(err <= 0.02 * scale, "layer \(l): max error \(err) (scale \(scale))")
        }
    }
}
