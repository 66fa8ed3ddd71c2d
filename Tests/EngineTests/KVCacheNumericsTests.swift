import Foundation
import SiriusEngine
import Testing
import TestSupport

/// The KV cache as the Sirius correction uses it: roll back with `trim(to:)`, overwrite a range by
/// forwarding again from an earlier start. Ordinary passes give every token the bits of a one-token pass
/// whatever the pass length, so those checks are bit for bit; prompt chunks through sgemm block by the
/// pass length, so those checks use `Tol.exact` instead.
@Suite("KV cache numerics")
struct KVCacheNumericsTests {
    func model(_ type: GGMLType = .q8_0, seed: UInt64 = 41) throws -> (TinyLlama, LanguageModel, ReferenceLlama) {
        let tiny = TinyLlama(tinySpec(for: type, tied: false, seed: seed))
        let (m, r) = try tiny.loadGGUF(TinyWeightTypes(type))
        return (tiny, m, r)
    }

    func snapshots(_ t: Transformer) -> [(keys: [Float], values: [Float])] {
        (0..<t.config.layerCount).map { t.cache.snapshot(layer: $0) }
    }

    @Test("trim(to:) then re-forwarding the rest gives identical logits", arguments: [GGMLType.q8_0, .q4_K])
    func trimAndReforward(type: GGMLType) throws {
        let (tiny, model, ref) = try model(type)
        let tokens = TinyLlama.tokens(10, vocab: tiny.spec.vocab, seed: 8)
        try KernelSelection.shared.stable {
            let t = Transformer(model: model, capacity: 32)
            let full = t.logits(tokens, start: 0, all: true)
            let fullCache = snapshots(t)
            for m in [9, 5, 1, 0, 7] {
                #expect(t.cache.trim(to: m) == tokens.count - m)
                #expect(t.cache.count == m)
                let again = t.logits(Array(tokens[m...]), start: m, all: true)
                try #require(again.count == tokens.count - m)
                for i in again.indices {
                    let same = Compare.bitsEqual(again[i], full[m + i])
                    #expect(same, "trim to \(m): position \(m + i) differs")
                }
                #expect(t.cache.count == tokens.count)
                let cache = snapshots(t)
                for l in cache.indices {
                    let same = Compare.bitsEqual(cache[l].keys, fullCache[l].keys) && Compare.bitsEqual(cache[l].values, fullCache[l].values)
                    #expect(same, "trim to \(m): layer \(l) cache differs")
                }
            }
            // Trimming to or past the end removes nothing.
            #expect(t.cache.trim(to: 10) == 0 && t.cache.trim(to: 50) == 0 && t.cache.count == 10)
            // With sgemm (prompt chunks), the re-forwarded logits still equal the reference.
            let g = Transformer(model: model, capacity: 32)
            _ = g.logits(tokens, start: 0, all: true, prompt: true)
            g.cache.trim(to: 3)
            let again = g.logits(Array(tokens[3...]), start: 3, all: true, prompt: true)
            let expected = ref.logits(tokens)
            for i in again.indices {
                #expect(Compare.relDiff(again[i], expected[3 + i]) <= Tol.exact)
            }
        }
    }

    @Test("rewriting a range leaves the cache equal to a fresh dense forward over the final sequence")
    func rewriteEqualsFreshForward() throws {
        let (tiny, model, ref) = try model(.q4_0)
        let a = TinyLlama.tokens(12, vocab: tiny.spec.vocab, seed: 1)
        let b = TinyLlama.tokens(6, vocab: tiny.spec.vocab, seed: 2)
        let start = 4
        let final = Array(a[..<start]) + b
        KernelSelection.shared.stable {
            for gemm in [false, true] {
                let t = Transformer(model: model, capacity: 32)
                let fresh = Transformer(model: model, capacity: 32)
                _ = t.logits(a, start: 0, prompt: gemm)
                // Draft-like single steps past the end, then the verification pass over the range.
                _ = t.logits([a[0]], start: 12)
                _ = t.logits([a[1]], start: 13)
                let rewritten = t.logits(b, start: start, all: true, prompt: gemm)
                #expect(t.cache.count == final.count)
                let dense = fresh.logits(final, start: 0, all: true, prompt: gemm)
                for l in 0..<model.config.layerCount {
                    let x = t.cache.snapshot(layer: l), y = fresh.cache.snapshot(layer: l)
                    if gemm {
                        #expect(Compare.relDiff(x.keys, y.keys) <= Tol.exact && Compare.relDiff(x.values, y.values) <= Tol.exact)
                    } else {
                        let same = Compare.bitsEqual(x.keys, y.keys) && Compare.bitsEqual(x.values, y.values)
                        #expect(same, "layer \(l): rewritten cache differs from the fresh one")
                    }
                }
                for i in b.indices {
                    let d = Compare.relDiff(rewritten[i], dense[start + i])
                    #expect(gemm ? d <= Tol.exact : d == 0, "gemm=\(gemm) position \(start + i): \(d)")
                }
                // Both equal the reference's rotated keys and values.
                let trace = ref.run(final)
                for l in 0..<model.config.layerCount {
                    let x = t.cache.snapshot(layer: l)
                    let rk = trace.keys[l].flatMap { $0.map(Float.init) }, rv = trace.values[l].flatMap { $0.map(Float.init) }
                    #expect(Compare.relDiff(x.keys, rk) <= Tol.exact, "layer \(l) keys vs reference")
                    #expect(Compare.relDiff(x.values, rv) <= Tol.exact, "layer \(l) values vs reference")
                }
            }
        }
    }

    @Test("a multi-token pass's logits equal token-by-token decoding bit for bit (prompt chunks: within tolerance)",
          arguments: [GGMLType.f16, .q4_1, .q6_K, .q8_0, .f32])
    func prefillEqualsDecode(type: GGMLType) throws {
        let (tiny, model, _) = try model(type, seed: 77)
        let tokens = TinyLlama.tokens(11, vocab: tiny.spec.vocab, seed: 3)
        for split in [0, 1, 4, 10] {
            // Prefill tokens[..<split] + ... as one pass from `split`, after decoding the first `split`.
            let step = Transformer(model: model, capacity: 32)
            var last: [Float] = []
            for (i, tok) in tokens.enumerated() { last = step.logits([tok], start: i)[0] }
            let pass = Transformer(model: model, capacity: 32)
            for i in 0..<split { _ = pass.logits([tokens[i]], start: i) }
            let multi = pass.logits(Array(tokens[split...]), start: split)[0]
            #expect(Compare.bitsEqual(multi, last), "\(type) split \(split): \(Compare.relDiff(multi, last))")
            let chunk = Transformer(model: model, capacity: 32)
            for i in 0..<split { _ = chunk.logits([tokens[i]], start: i) }
            let d = Compare.relDiff(chunk.logits(Array(tokens[split...]), start: split, prompt: true)[0], last)
            #expect(d <= Tol.exact, "\(type) prompt chunk split \(split): \(d)")
        }
    }
}
