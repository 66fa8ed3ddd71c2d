import Foundation
import SiriusEngine
import Testing
import TestSupport

/// tools/make_hf_config_fixtures.py: tiny random Llamas saved by transformers' `save_pretrained`, in the
/// current config layout (`rope_parameters`) and the older one (top-level `rope_theta` + `rope_scaling`),
/// with transformers' greedy continuation and first-step logits read back from each directory.
struct HFCheckpointFixture: Decodable {
    struct Rope: Decodable {
        var rope_type: String
        var rope_theta: Double
        var factor: Double?
        var low_freq_factor: Double?
        var high_freq_factor: Double?
        var original_max_position_embeddings: Int?
    }
    var name: String
    var legacy_layout: Bool
    var tied: Bool
    var rope: Rope
    var prompt_ids: [Int32]
    var output_ids: [Int32]
    var first_logits: [Float]
    var inv_freq: [Float]

    static let names = ["current_default", "legacy_default", "current_llama3", "legacy_llama3", "current_linear"]

    static func directory(_ name: String) throws -> String { try fixtureURL("hf_llama/" + name).path }

    static func load(_ name: String) throws -> HFCheckpointFixture {
        try JSONDecoder().decode(HFCheckpointFixture.self,
                                 from: Data(contentsOf: URL(fileURLWithPath: try directory(name) + "/expected.json")))
    }

    var expectedScaling: RopeScaling? {
        switch rope.rope_type {
        case "linear": .linear(factor: rope.factor!)
        case "llama3": .llama3(Llama3RopeScaling(factor: rope.factor!, lowFreqFactor: rope.low_freq_factor!,
                                                 highFreqFactor: rope.high_freq_factor!,
                                                 originalContextLength: rope.original_max_position_embeddings!))
        default: nil
        }
    }
}

/// One full prefill pass, then one-token greedy decode steps (exact numerics): the first step's logits
/// and the new ids.
func greedyContinuation(_ model: LanguageModel, prompt: [Int32], count: Int) -> (first: [Float], ids: [Int32]) {
    let t = Transformer(model: model, capacity: prompt.count + count + 1, numerics: .exact)
    var logits = t.forward(tokens: prompt, start: 0)
    let first = Array(logits)
    var out: [Int32] = [argmax(UnsafeBufferPointer(logits))]
    while out.count < count {
        logits = t.forward(tokens: [out.last!], start: t.cache.count)
        out.append(argmax(UnsafeBufferPointer(logits)))
    }
    return (first, out)
}

@Suite("checkpoints saved by transformers, both config layouts")
struct HFCheckpointTests {
    @Test("greedy ids and first-step logits equal transformers'", arguments: HFCheckpointFixture.names)
    func matchesTransformers(name: String) throws {
        let f = try HFCheckpointFixture.load(name)
        let model = try ModelLoader.load(path: try HFCheckpointFixture.directory(name))
        // The RoPE settings were read from the layout the file uses.
        #expect(model.config.ropeTheta == f.rope.rope_theta)
        #expect(model.config.ropeScaling == f.expectedScaling)
        #expect(model.config.tiedEmbeddings == f.tied)
        #expect(maxRelDiff(model.config.ropeInverseFrequencies(), f.inv_freq) <= 2e-6)
        let (first, ids) = greedyContinuation(model, prompt: f.prompt_ids, count: f.output_ids.count)
        let diff = zip(first, f.first_logits).map { abs($0 - $1) }.max() ?? .infinity
        #expect(first.count == f.first_logits.count)
        #expect(diff <= 1e-4, "first-step logits differ by \(diff)")
        #expect(ids == f.output_ids)
    }

    @Test("the fixtures would catch a wrong RoPE: the same weights at the fallback base 10000 give other logits")
    func fixturesAreSensitiveToTheRopeBase() throws {
        for name in ["current_default", "current_llama3"] {
            let f = try HFCheckpointFixture.load(name)
            let m = try ModelLoader.load(path: try HFCheckpointFixture.directory(name))
            var wrong = m.config
            wrong.ropeTheta = 10000
            wrong.ropeScaling = nil
            let w = LanguageModel(config: wrong, tokenEmbedding: m.tokenEmbedding, outputNorm: m.outputNorm, output: m.output,
                               layers: m.layers, source: m.source)
            let (first, _) = greedyContinuation(w, prompt: f.prompt_ids, count: 1)
            let diff = zip(first, f.first_logits).map { abs($0 - $1) }.max() ?? 0
            #expect(diff > 1e-2, "\(name): \(diff)")
        }
    }
}
