import Foundation
import SiriusEngine
import SiriusMethod
import Testing
import TestSupport

/// tools/make_arch_fixtures.py: tiny random models of the other families made with transformers' own
/// classes (Gemma 3: GELU-tanh MLP, q/k norms, post-norms, scaled embeddings, sliding-window layers with
/// their own RoPE base), saved by `save_pretrained` and, where GGUF can describe the model, written as
/// llama.cpp's converter writes it; with transformers' greedy continuation of a prompt longer than the
/// sliding window.
struct ArchitectureFixture: Decodable {
    var name: String
    var architecture: String
    /// The GGUF's `general.architecture` when it differs (llama.cpp writes Mistral as llama).
    var gguf_architecture: String?
    var gguf: Bool
    var sliding_window: Int
    var layer_types: [String]
    var prompt_ids: [Int32]
    var output_ids: [Int32]
    var first_logits: [Float]

    static let names = ["gemma3", "gemma3_layer_types", "qwen2", "qwen2_window", "mistral", "mistral_no_window"]

    static func directory(_ name: String) throws -> String { try fixtureURL("arch/" + name).path }

    static func load(_ name: String) throws -> ArchitectureFixture {
        try JSONDecoder().decode(ArchitectureFixture.self,
                                 from: Data(contentsOf: URL(fileURLWithPath: try directory(name) + "/expected.json")))
    }

    /// The checkpoint directory, and the GGUF file when the fixture has one.
    func paths() throws -> [String] {
        let d = try Self.directory(name)
        return gguf ? [d, d + "/model.gguf"] : [d]
    }
}

@Suite("other model families against transformers (tiny random models, exact numerics)")
struct ArchitectureTests {
    @Test("Gemma 3, Qwen2, Mistral: greedy ids and first-step logits equal transformers', safetensors and GGUF",
          arguments: ArchitectureFixture.names)
    func matchesTransformers(name: String) throws {
        let f = try ArchitectureFixture.load(name)
        if f.sliding_window > 0 { #expect(f.prompt_ids.count > f.sliding_window, "the prompt must be longer than the window") }
        for path in try f.paths() {
            let model = try ModelLoader.load(path: path)
            let c = model.config
            #expect(c.architecture == (path.hasSuffix(".gguf") ? f.gguf_architecture ?? f.architecture : f.architecture))
            #expect(c.activation == (f.architecture == "gemma3" ? .geluTanh : .silu))
            #expect(c.slidingWindow == (f.sliding_window > 0 ? f.sliding_window : nil))
            #expect((0..<c.layerCount).map { c.isSliding(layer: $0) } == f.layer_types.map { $0 == "sliding_attention" })
            if f.architecture == "qwen2" { #expect(model.layers.allSatisfy { $0.qBias != nil && $0.kBias != nil && $0.vBias != nil }) }
            let (first, ids) = greedyContinuation(model, prompt: f.prompt_ids, count: f.output_ids.count)
            let diff = zip(first, f.first_logits).map { abs($0 - $1) }.max() ?? .infinity
            #expect(first.count == f.first_logits.count)
            #expect(diff <= 1e-4, "\(path): first-step logits differ by \(diff)")
            #expect(ids == f.output_ids, "\(path)")
        }
    }

    @Test("the fixtures would catch a missing window (Gemma, Qwen2, Mistral) or missing biases (Qwen2)")
    func windowsAndBiasesMatter() throws {
        for name in ["qwen2_window", "mistral", "qwen2"] {
            let f = try ArchitectureFixture.load(name)
            let m = try ModelLoader.load(path: try ArchitectureFixture.directory(name))
            var c = m.config
            var layers = m.layers
            if name == "qwen2" {
                for i in layers.indices { layers[i].qBias = nil; layers[i].kBias = nil; layers[i].vBias = nil }
            } else {
                c.slidingWindow = nil
            }
            let w = LanguageModel(config: c, tokenEmbedding: m.tokenEmbedding, outputNorm: m.outputNorm, output: m.output, layers: layers, source: m.source)
            let (first, ids) = greedyContinuation(w, prompt: f.prompt_ids, count: f.output_ids.count)
            let diff = zip(first, f.first_logits).map { abs($0 - $1) }.max() ?? 0
            #expect(diff > 1e-3 || ids != f.output_ids, "\(name): \(diff)")
        }
    }

    @Test("the Gemma fixtures would catch a missing window, a wrong local RoPE base or a wrong score scale")
    func fixturesAreSensitive() throws {
        let f = try ArchitectureFixture.load("gemma3_layer_types")
        let m = try ModelLoader.load(path: try ArchitectureFixture.directory(f.name))
        let changes: [(String, (inout ModelConfig) -> Void)] = [
            ("no window", { $0.slidingWindow = nil }),
            ("global base everywhere", { $0.slidingRopeTheta = nil }),
            ("1/sqrt(head_dim)", { $0.attentionScale = nil }),
        ]
        for (what, change) in changes {
            var wrong = m.config
            change(&wrong)
            let w = LanguageModel(config: wrong, tokenEmbedding: m.tokenEmbedding, outputNorm: m.outputNorm, output: m.output,
                               layers: m.layers, source: m.source)
            let (first, _) = greedyContinuation(w, prompt: f.prompt_ids, count: 1)
            let diff = zip(first, f.first_logits).map { abs($0 - $1) }.max() ?? 0
            #expect(diff > 1e-3, "\(what): \(diff)")
        }
    }

    @Test("Gemma 3: a token's logits do not depend on the other sequences of its pass", arguments: Numerics.allCases)
    func gemma3PassesAreBatchInvariant(numerics: Numerics) throws {
        let f = try ArchitectureFixture.load("gemma3")
        let model = try ModelLoader.load(path: try ArchitectureFixture.directory(f.name))
        let t = Transformer(model: model, capacity: 64, numerics: numerics)
        let prompts: [[Int32]] = [f.prompt_ids, Array(f.prompt_ids.reversed()), Array(f.prompt_ids.prefix(5))]
        // Alone: prefill then one decode step each.
        var alone: [[Float]] = []
        for p in prompts {
            let cache = t.makeCache(capacity: 64)
            t.forward([PassSegment(cache: cache, tokens: p, start: 0, logits: .none)])
            t.forward([PassSegment(cache: cache, tokens: [7], start: p.count, logits: .last)])
            alone.append(Array(t.logits(segment: 0)))
        }
        // Together: the prefills in one pass, then the decode steps in one pass.
        let caches = prompts.map { _ in t.makeCache(capacity: 64) }
        t.forward(zip(prompts, caches).map { PassSegment(cache: $1, tokens: $0, start: 0, logits: .none) })
        t.forward(zip(prompts, caches).map { PassSegment(cache: $1, tokens: [7], start: $0.count, logits: .last) })
        for i in prompts.indices { #expect(Array(t.logits(segment: i)) == alone[i], "sequence \(i)") }
    }

    /// Sirius with argmax acceptance equals full greedy decoding on the tiny sliding-window models (prompt
    /// and generation past the window): the window composes with the verification pass, the KV
    /// rewrite and rollback, and the tree pass (W 2), for Griffin and CATS on GELU (Gemma) and SiLU.
    @Test("argmax acceptance: sirius equals full greedy past the sliding window", arguments: ["gemma3", "gemma3_layer_types", "mistral", "qwen2_window"])
    func siriusArgmaxEqualsGreedyPastTheWindow(name: String) throws {
        let f = try ArchitectureFixture.load(name)
        let model = try ModelLoader.load(path: try ArchitectureFixture.directory(name))
        let maxNew = 24
        let full = try SiriusRig.fullGreedy(model, prompt: f.prompt_ids, maxNew: maxNew)
        #expect(Array(full.prefix(f.output_ids.count)) == f.output_ids)
        var rollbacks = 0
        for kind in [SparsityKind.griffin, .cats] {
            for width in [1, 2] {
                for period in [4, 16] {
                    let r = try SiriusRig.run(model, prompt: f.prompt_ids, method: SiriusRig.sirius(kind, period: period, width: width), maxNew: maxNew)
                    rollbacks += r.counters.rollbacks
                    #expect(r.generation.outputIDs == full, "\(name) \(kind) K=\(period) W=\(width)")
                }
            }
        }
        #expect(rollbacks > 0)
    }
}
