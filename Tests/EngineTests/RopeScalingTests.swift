import Foundation
import SiriusEngine
import Testing
import TestSupport

/// tools/make_dequant_fixtures.py: transformers' `ROPE_INIT_FUNCTIONS["llama3"]` for three configurations.
struct RopeFixture: Decodable {
    struct Case: Decodable {
        var head_dim: Int
        var heads: Int
        var theta: Double
        var factor: Double
        var low: Double
        var high: Double
        var original: Int
        var inv_freq: [Float]
        var unscaled_inv_freq: [Float]

        var scaling: Llama3RopeScaling {
            Llama3RopeScaling(factor: factor, lowFreqFactor: low, highFreqFactor: high, originalContextLength: original)
        }
        func config(scaled: Bool) -> ModelConfig {
            ModelConfig(vocabSize: 10, hiddenSize: head_dim * heads, intermediateSize: 8, layerCount: 1, headCount: heads,
                        kvHeadCount: heads, headDim: head_dim, contextLength: 131072, rmsNormEps: 1e-5, ropeTheta: theta,
                        ropeScaling: scaled ? .llama3(scaling) : nil, ropeStyle: .halfSplit, tiedEmbeddings: true)
        }
    }
    var cases: [Case]
    static func load() throws -> RopeFixture {
        try JSONDecoder().decode(RopeFixture.self, from: Data(contentsOf: fixtureURL("dequant/rope_llama3.json")))
    }
}

/// Largest relative difference. transformers computes the frequencies in float32 (`base ** (arange/d)`),
/// the engine in Double rounded once, so a few float32 ulps (≈ 1.2e-7 each) apart: tolerance 2e-6.
func maxRelDiff(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).map { abs($0 - $1) / max(abs($1), .leastNormalMagnitude) }.max() ?? .infinity
}

@Suite("RoPE frequencies and Llama-3 scaling")
struct RopeScalingTests {
    static let tol: Float = 2e-6

    @Test("ropeInverseFrequencies equals transformers' llama3 rope init (and the unscaled one)")
    func inverseFrequenciesMatchTransformers() throws {
        let f = try RopeFixture.load()
        #expect(f.cases.count == 3)
        for c in f.cases {
            let scaled = c.config(scaled: true).ropeInverseFrequencies()
            let plain = c.config(scaled: false).ropeInverseFrequencies()
            #expect(scaled.count == c.head_dim / 2 && plain.count == c.head_dim / 2)
            #expect(maxRelDiff(scaled, c.inv_freq) <= Self.tol, "head_dim \(c.head_dim) factor \(c.factor): \(maxRelDiff(scaled, c.inv_freq))")
            #expect(maxRelDiff(plain, c.unscaled_inv_freq) <= Self.tol, "unscaled head_dim \(c.head_dim)")
            // The fixture exercises all three regimes: kept, smoothly interpolated, divided by factor.
            let ratios = zip(c.inv_freq, c.unscaled_inv_freq).map { Double($0 / $1) }
            #expect(ratios.contains { abs($0 - 1) < 1e-6 })
            #expect(ratios.contains { abs($0 - 1 / c.factor) < 1e-6 })
            #expect(ratios.contains { $0 > 1 / c.factor + 1e-3 && $0 < 1 - 1e-3 })
        }
    }

    @Test("rope_freqs.weight (llama.cpp's per-pair divisors) reproduces the llama3 frequencies")
    func ropeFreqsTensor() throws {
        let c = try RopeFixture.load().cases[0]
        var cfg = c.config(scaled: false)
        cfg.ropeFreqFactors = zip(c.unscaled_inv_freq, c.inv_freq).map { $0 / $1 }
        // Two float32 roundings more than the direct path (the factor and the division).
        #expect(maxRelDiff(cfg.ropeInverseFrequencies(), c.inv_freq) <= 2 * Self.tol)
    }

    /// A tiny model whose head dimension (64) and theta match fixture case 1 (Llama 3.2 parameters).
    func scaledTiny() throws -> (TinyLlama, RopeFixture.Case) {
        let c = try RopeFixture.load().cases[1]
        var spec = TinyLlamaSpec.kQuant(seed: 13)
        spec.ropeTheta = c.theta
        try #require(spec.headDim == c.head_dim)
        return (TinyLlama(spec), c)
    }

    @Test("llama3 scaling from GGUF metadata: config, frequencies, and logits vs the reference")
    func ggufLlama3Metadata() throws {
        let (tiny, c) = try scaledTiny()
        var w = tiny.ggufWriter(TinyWeightTypes(.f32))
        w.set("llama.rope.scaling.type", .string("llama3"))
        w.set("llama.rope.scaling.factor", .f32(Float(c.factor)))
        w.set("llama.rope.scaling.low_freq_factor", .f32(Float(c.low)))
        w.set("llama.rope.scaling.high_freq_factor", .f32(Float(c.high)))
        w.set("llama.rope.scaling.original_context_length", .u32(UInt32(c.original)))
        let dir = try TempDir("rope")
        defer { dir.remove() }
        let model = try ModelLoader.load(path: try dir.write(w.bytes(), to: "r.gguf"))
        #expect(model.config.ropeScaling == .llama3(c.scaling))
        #expect(model.config.ropeTheta == c.theta)
        #expect(maxRelDiff(model.config.ropeInverseFrequencies(), c.inv_freq) <= Self.tol)
        try checkLogits(model, tiny.ggufReference(TinyWeightTypes(.f32)), invFreq: c.inv_freq, tokens: 20)
    }

    @Test("llama3 scaling from config.json (integer-valued JSON numbers too): config and logits")
    func safetensorsLlama3Config() throws {
        let (tiny, c) = try scaledTiny()
        let dir = try TempDir("rope-st")
        defer { dir.remove() }
        // Real config.json files write e.g. "factor": 32.0 or 32, "rope_theta": 500000.0 or 500000.
        try tiny.writeSafetensors(to: dir.path, dtype: "F32", config: [
            "rope_theta": Int(c.theta),
            "rope_scaling": ["rope_type": "llama3", "factor": Int(c.factor), "low_freq_factor": c.low,
                             "high_freq_factor": Int(c.high), "original_max_position_embeddings": c.original] as [String: Any],
        ])
        let model = try ModelLoader.load(path: dir.path)
        #expect(model.config.ropeTheta == c.theta)
        #expect(model.config.ropeScaling == .llama3(c.scaling))
        #expect(maxRelDiff(model.config.ropeInverseFrequencies(), c.inv_freq) <= Self.tol)
        try checkLogits(model, tiny.safetensorsReference(dtype: "F32"), invFreq: c.inv_freq, tokens: 20)
    }

    func checkLogits(_ model: LanguageModel, _ reference: ReferenceLlama, invFreq: [Float], tokens n: Int) throws {
        var ref = reference
        ref.invFreq = invFreq.map(Double.init)
        let tokens = TinyLlama.tokens(n, vocab: model.config.vocabSize, seed: 9)
        let expected = ref.logits(tokens)
        let got = Transformer(model: model, capacity: 32).logits(tokens, start: 0, all: true)
        for i in tokens.indices { #expect(Compare.relDiff(got[i], expected[i]) <= Tol.exact, "position \(i)") }
        // The scaling is visible: the unscaled reference (as built, from rope_theta alone) disagrees.
        let unscaled = reference.logits(tokens)
        #expect(Compare.relDiff(unscaled[n - 1], expected[n - 1]) > 10 * Tol.exact)
    }
}
