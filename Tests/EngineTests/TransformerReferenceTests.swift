import CKernels
import Foundation
import SiriusEngine
import Testing
import TestSupport

/// Tolerances against the scalar reference (which computes in Double over the very same dequantised
/// weights, so the only differences are float32 rounding and summation order):
/// - exact numerics: max |Δlogit| ≤ 2e-5 · max(1, max |logit|). Observed ≤ 1.1e-6 on every type and path
///   (float32 carries ~7 digits; the tiny models chain ~10 products over ≤ 256-long sums), so 20× margin,
///   while every bug tried in `sensitivity()` moves the logits by more than 1e-3.
/// - fast numerics (8-bit activations for Q4_0/Q4_1/Q8_0): ≤ 0.1 · max(1, max |logit|) and the same argmax
///   in ≥ 10 of 12 positions. Each activation is rounded to 1/254 of its block's largest magnitude
///   (≈ 0.2–0.5 % per product), compounding over the layers; observed ≤ 0.035. The fast kernels' exact
///   semantics are pinned separately, to 1e-5, by `fastMatvecModel`.
enum Tol {
    static let exact: Float = 2e-5
    static let fast: Float = 0.1
}

/// Types whose rows must be 256 long get the K-quant model shape.
func tinySpec(for type: GGMLType, tied: Bool, seed: UInt64 = 1) -> TinyLlamaSpec {
    type == .q4_K || type == .q6_K ? .kQuant(tied: tied, seed: seed) : .small(tied: tied, seed: seed)
}

let allWeightTypes: [GGMLType] = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q8_0, .q4_K, .q6_K]

@Suite("Transformer (exact numerics) against the scalar reference")
struct TransformerReferenceTests {
    static let tokenCount = 12

    /// Decode (token by token, mat-vec kernels) and prefill (one pass: sgemm, and per-token mat-vecs),
    /// threads 1 and 2, tied and untied output, GQA (4 heads over 2 KV heads), interleaved RoPE (GGUF).
    @Test("GGUF model: decode and prefill logits equal the reference", arguments: allWeightTypes, [false, true])
    func ggufLogitsMatchReference(type: GGMLType, tied: Bool) throws {
        let tiny = TinyLlama(tinySpec(for: type, tied: tied, seed: 3))
        let (model, ref) = try tiny.loadGGUF(TinyWeightTypes(type))
        #expect(model.config.ropeStyle == .interleaved)
        #expect(model.config.tiedEmbeddings == tied)
        #expect(model.config.kvHeadCount == 2 && model.config.headCount == 4)
        let tokens = TinyLlama.tokens(Self.tokenCount, vocab: tiny.spec.vocab, seed: 99)
        let expected = ref.logits(tokens)
        try checkAllPaths(model, tokens: tokens, expected: expected, label: "\(type) tied=\(tied)")
    }

    @Test("mixed storage types (as real quantised files have) equal the reference")
    func mixedTypes() throws {
        for (spec, types) in [(TinyLlamaSpec.kQuant(seed: 5), TinyWeightTypes(layers: .q4_K, embedding: .q6_K, output: .q8_0)),
                              (.small(seed: 5), TinyWeightTypes(layers: .q4_1, embedding: .f16, output: .q8_0)),
                              (.small(tied: true, seed: 6), TinyWeightTypes(layers: .q8_0, embedding: .q4_0, output: .q4_0))] {
            let tiny = TinyLlama(spec)
            let (model, ref) = try tiny.loadGGUF(types)
            let tokens = TinyLlama.tokens(9, vocab: spec.vocab, seed: 4)
            try checkAllPaths(model, tokens: tokens, expected: ref.logits(tokens), label: "\(types)")
        }
    }

    /// Half-split RoPE: the Hugging Face copy (un-permuted Q/K).
    @Test("safetensors model: decode and prefill logits equal the reference", arguments: ["F32", "F16", "BF16"], [false, true])
    func safetensorsLogitsMatchReference(dtype: String, tied: Bool) throws {
        let tiny = TinyLlama(.small(tied: tied, seed: 8))
        let (model, ref) = try tiny.loadSafetensors(dtype: dtype)
        #expect(model.config.ropeStyle == .halfSplit)
        #expect(model.config.tiedEmbeddings == tied)
        let tokens = TinyLlama.tokens(Self.tokenCount, vocab: tiny.spec.vocab, seed: 17)
        try checkAllPaths(model, tokens: tokens, expected: ref.logits(tokens), label: "\(dtype) tied=\(tied)")
    }

    func checkAllPaths(_ model: LanguageModel, tokens: [Int32], expected: [[Float]], label: String) throws {
        var worst: Float = 0
        defer { print("[numerics] \(label): worst exact relDiff \(worst)") }
        try KernelSelection.shared.stable {
            var decodeByThreads: [[[Float]]] = []
            for threads in [1, 2] {
                // Decode path: one token per pass.
                let t = Transformer(model: model, capacity: 64, numerics: .exact, threads: threads)
                var decoded: [[Float]] = []
                for (i, tok) in tokens.enumerated() {
                    let got = t.logits([tok], start: i)[0]
                    decoded.append(got)
                    let d = Compare.relDiff(got, expected[i])
                    worst = max(worst, d)
                    #expect(d <= Tol.exact, "\(label) decode threads=\(threads) pos \(i): \(d)")
                }
                #expect(t.cache.count == tokens.count)
                decodeByThreads.append(decoded)
                // A prompt chunk through sgemm (tokens ≥ gemmMinTokens), every position's logits.
                let p = Transformer(model: model, capacity: 64, numerics: .exact, threads: threads)
                #expect(tokens.count >= p.cpu.gemmMinTokens)
                let all = p.logits(tokens, start: 0, all: true, prompt: true)
                try #require(all.count == tokens.count)
                for i in tokens.indices {
                    let d = Compare.relDiff(all[i], expected[i])
                    #expect(d <= Tol.exact, "\(label) sgemm prefill threads=\(threads) pos \(i): \(d)")
                }
                // Last-only logits of the same pass: the head runs as a mat-vec (one row) instead of sgemm.
                let p2 = Transformer(model: model, capacity: 64, numerics: .exact, threads: threads)
                let lastOnly = Compare.relDiff(p2.logits(tokens, start: 0, prompt: true)[0], expected[tokens.count - 1])
                #expect(lastOnly <= Tol.exact, "\(label) last-only prefill threads=\(threads): \(lastOnly)")
                // An ordinary multi-token pass (the multi-token float kernels) equals decoding bit for bit.
                let m = Transformer(model: model, capacity: 64, numerics: .exact, threads: threads)
                let allM = m.logits(tokens, start: 0, all: true)
                for i in tokens.indices {
                    let same = Compare.bitsEqual(allM[i], decoded[i])
                    #expect(same, "\(label) mat-vec prefill vs decode, pos \(i)")
                }
                // sgemm even for two tokens.
                let g = Transformer(model: model, capacity: 64, numerics: .exact, threads: threads)
                g.cpu.gemmMinTokens = 1
                let two = g.logits(Array(tokens.prefix(2)), start: 0, all: true, prompt: true)
                #expect(Compare.relDiff(two[1], expected[1]) <= Tol.exact, "\(label) gemm T=2")
            }
            // Splitting rows over threads does not change any row's arithmetic.
            for i in tokens.indices {
                let same = Compare.bitsEqual(decodeByThreads[0][i], decodeByThreads[1][i])
                #expect(same, "\(label) threads 1 vs 2, pos \(i)")
            }
        }
    }

    // MARK: the checks can fail

    @Test("sensitivity: the wrong RoPE pairing, un-permuted GGUF rows, or a one-step weight change are caught")
    func sensitivity() throws {
        let tiny = TinyLlama(.small(seed: 3))
        let (model, ref) = try tiny.loadGGUF(TinyWeightTypes(.q8_0))
        let tokens = TinyLlama.tokens(8, vocab: tiny.spec.vocab, seed: 1)
        let expected = ref.logits(tokens)
        func worst(_ m: LanguageModel) -> Float {
            let t = Transformer(model: m, capacity: 16)
            let got = t.logits(tokens, start: 0, all: true)
            return tokens.indices.map { Compare.relDiff(got[$0], expected[$0]) }.max()!
        }
        #expect(worst(model) <= Tol.exact)
        // Half-split RoPE on GGUF-permuted weights (the "Q/K permutation trap").
        var cfg = model.config
        cfg.ropeStyle = .halfSplit
        let wrongStyle = LanguageModel(config: cfg, tokenEmbedding: model.tokenEmbedding, outputNorm: model.outputNorm,
                                    output: model.output, layers: model.layers, source: "test")
        let wrong = worst(wrongStyle)
        #expect(wrong > 100 * Tol.exact, "wrong RoPE style: \(wrong)")
        // A reference that forgets the permutation (HF rows with interleaved RoPE) disagrees too.
        var unpermuted = ref
        for i in unpermuted.layers.indices {
            unpermuted.layers[i].wq = RefQuant.dequantize(RefQuant.quantize(tiny.layers[i].wq, rows: 64, cols: 64, as: .q8_0), type: .q8_0, count: 64 * 64)
            unpermuted.layers[i].wk = RefQuant.dequantize(RefQuant.quantize(tiny.layers[i].wk, rows: 32, cols: 64, as: .q8_0), type: .q8_0, count: 32 * 64)
        }
        let u = unpermuted.logits(tokens)
        let unperm = tokens.indices.map { Compare.relDiff(u[$0], expected[$0]) }.max()!
        #expect(unperm > 100 * Tol.exact, "un-permuted rows: \(unperm)")
        // One quantised value of one attn_v row moved by a single step is visible in the logits.
        var nudged = ref
        nudged.layers[1].wv[5] += RefQuant.float(half: UInt16(0x2000))  // ≈ 0.0078, about one Q8_0 step here
        let n = nudged.logits(tokens)
        let nudge = tokens.indices.map { Compare.relDiff(n[$0], expected[$0]) }.max()!
        #expect(nudge > 10 * Tol.exact, "one-step change: \(nudge)")
        print("[numerics] sensitivity: wrong RoPE \(wrong), un-permuted \(unperm), one-step weight change \(nudge)")
        // Positions matter: the same tokens in another order give other last logits.
        #expect(Compare.relDiff(ref.logits(tokens.reversed()).last!, expected.last!) > 100 * Tol.exact)
    }

    @Test("the reference itself: GGUF layout with interleaved RoPE equals HF layout with half-split RoPE")
    func referenceLayoutsAgree() {
        let tiny = TinyLlama(.small(seed: 12))
        let tokens = TinyLlama.tokens(7, vocab: tiny.spec.vocab, seed: 2)
        let a = tiny.ggufReference(TinyWeightTypes(.f32)).logits(tokens)
        let b = tiny.safetensorsReference(dtype: "F32").logits(tokens)
        for i in tokens.indices { #expect(Compare.relDiff(a[i], b[i]) < 1e-6) }
    }
}

@Suite("Transformer, fast numerics")
struct FastNumericsTests {
    /// 8-bit activation quantisation affects the quantised weight types (Q4_0, Q4_1, Q5_0, Q8_0, Q4_K,
    /// Q6_K); F32/F16/BF16 use the float kernels in both modes, so there fast differs from exact only by
    /// its f16 KV cache.
    @Test("fast logits stay within tolerance of the reference; other types within the f16 cache's rounding of exact", arguments: allWeightTypes)
    func fastWithinTolerance(type: GGMLType) throws {
        let tiny = TinyLlama(tinySpec(for: type, tied: false, seed: 21))
        let (model, ref) = try tiny.loadGGUF(TinyWeightTypes(type))
        let tokens = TinyLlama.tokens(12, vocab: tiny.spec.vocab, seed: 5)
        let expected = ref.logits(tokens)
        KernelSelection.shared.stable {
            for threads in [1, 2] {
                let fast = Transformer(model: model, capacity: 32, numerics: .fast, threads: threads)
                let exact = Transformer(model: model, capacity: 32, numerics: .exact, threads: threads)
                var sameArgmax = 0
                var worst: Float = 0
                for (i, tok) in tokens.enumerated() {
                    let f = fast.logits([tok], start: i)[0]
                    let e = exact.logits([tok], start: i)[0]
                    worst = max(worst, Compare.relDiff(f, expected[i]))
                    if Compare.argmax(f) == Compare.argmax(expected[i]) { sameArgmax += 1 }
                    let same = Compare.bitsEqual(f, e)
                    if [.q4_0, .q4_1, .q5_0, .q8_0, .q4_K, .q6_K].contains(type) {
                        #expect(!same, "\(type): fast numerics should differ from exact")
                    } else {
                        // No integer kernel for this type: fast differs from exact only by its f16 KV cache.
                        #expect(Compare.relDiff(f, e) <= 1e-2, "\(type) pos \(i): fast should be within the f16 cache's rounding of exact")
                    }
                }
                print("[numerics] fast \(type) threads=\(threads): worst relDiff \(worst), argmax \(sameArgmax)/12")
                #expect(worst <= Tol.fast, "\(type) threads=\(threads): \(worst)")
                #expect(sameArgmax >= 10, "\(type): argmax agreed at \(sameArgmax)/12 positions")
            }
        }
    }

    /// The integer kernels against a Swift model of their arithmetic: x quantised per 32 (d = amax/127,
    /// q = round-half-even(x/d)), Σ_blocks d_w·d_x·Σ q_w q_x (+ m·d_x·Σ q_x for Q4_1), in Double.
    /// Tolerance 1e-5 relative: only float32 accumulation differs.
    @Test("fast mat-vec equals the 8-bit activation model of its arithmetic", arguments: [GGMLType.q4_0, .q4_1, .q5_0, .q8_0, .q4_K, .q6_K])
    func fastMatvecModel(type: GGMLType) throws {
        let rows = 96, cols = type == .q4_K || type == .q6_K ? 512 : 320
        var rng = SeededRandom(seed: 31)
        let w = (0..<(rows * cols)).map { _ in rng.nextUnit() * 2 - 1 }
        let x = (0..<cols).map { _ in (rng.nextUnit() * 2 - 1) * 3 }
        let bytes = RefQuant.quantize(w, rows: rows, cols: cols, as: type)
        let buf = WeightBuffer(size: bytes.count)
        bytes.withUnsafeBytes { buf.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let m = WeightMatrix(type: type, rows: rows, cols: cols, data: UnsafeRawPointer(buf.pointer), owner: buf)
        // Model of the kernel.
        var expected = [Double](repeating: 0, count: rows)
        let wq = RefQuant.dequantize(bytes, type: type, count: rows * cols)
        for b in 0..<(cols / 32) {
            let xb = Array(x[(32 * b)..<(32 * b + 32)])
            let amax = xb.map(abs).max()!
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            let q = xb.map { ($0 * id).rounded(.toNearestOrEven) }
            for r in 0..<rows {
                for j in 0..<32 { expected[r] += Double(wq[r * cols + 32 * b + j]) * Double(d) * Double(q[j]) }
            }
        }
        for threads in [1, 2] {
            let mm = CPUBackend(numerics: .fast, threads: threads)
            var y = [Float](repeating: .nan, count: rows)
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { mm.matvec(m, xp.baseAddress!, $0.baseAddress!) } }
            let exp = expected.map { Float($0) }
            #expect(Compare.relDiff(y, exp) <= 1e-5, "\(type) threads=\(threads): \(Compare.relDiff(y, exp))")
            // And it is not the float product (the model is what distinguishes them).
            let exact = (0..<rows).map { r in (0..<cols).reduce(0.0) { $0 + Double(wq[r * cols + $1]) * Double(x[$1]) } }
            #expect(Compare.maxAbsDiff(y, exact.map { Float($0) }) > 1e-4)
        }
    }
}
