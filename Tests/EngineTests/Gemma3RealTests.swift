import Foundation
import SiriusEngine
import SiriusMethod
import Testing
import TestSupport

/// The real Gemma-3-270M (Q4_K_M GGUF: Q5_0, Q4_K, Q6_K and Q8_0 weights; GELU MLP; 5 sliding-window
/// layers of 512 positions to 1 global) against transformers: greedy continuations and the tokenizer
/// (fixtures from tools/make_gemma3_fixtures.py; one prompt is longer than the window).
@Suite("Gemma-3-270M against transformers")
struct Gemma3RealTests {
    static func model() throws -> LanguageModel { try ModelLoader.load(path: try GemmaModel.require()) }

    @Test("the loaded configuration is Gemma 3's")
    func configuration() throws {
        let c = try Self.model().config
        #expect(c.architecture == "gemma3" && c.activation == .geluTanh && c.ropeStyle == .halfSplit)
        #expect(c.layerCount == 18 && c.hiddenSize == 640 && c.headDim == 256 && c.headCount == 4 && c.kvHeadCount == 1)
        #expect(c.slidingWindow == 512 && c.slidingRopeTheta == 10_000 && c.ropeTheta == 1_000_000)
        #expect((0..<18).filter { !c.isSliding(layer: $0) } == [5, 11, 17])
        #expect(c.embeddingScale == Float(Double(640).squareRoot()) && c.scoreScale == 1.0 / 16)
    }

    @Test("exact numerics: 32 greedy tokens equal transformers' for every prompt", arguments: 0..<6)
    func greedyMatchesTransformers(prompt i: Int) throws {
        let fixture = try GreedyFixture.load("gemma3_greedy.json")
        #expect(fixture.cases.count == 6 && fixture.cases.contains { $0.prompt_ids.count > 512 })
        let c = fixture.cases[i]
        let (first, out) = greedyContinuation(try Self.model(), prompt: c.prompt_ids, count: fixture.new_tokens)
        for (id, v) in zip(c.first_logits_top5_ids, c.first_logits_top5_values) {
            #expect(abs(first[Int(id)] - v) < 2e-3 * max(1, abs(v)), "logit \(id): \(first[Int(id)]) vs \(v)")
        }
        #expect(out == c.output_ids, "prompt \(c.prompt.prefix(40)) (\(c.prompt_ids.count) tokens)")
    }

    @Test("the tokenizer equals transformers' on the corpus, and reads Gemma's special tokens")
    func tokenizerMatchesTransformers() throws {
        let tok = try Tokenizer(ggufPath: try GemmaModel.require())
        let (entries, withSpecial) = try TokFixtures.expected("gemma3")
        #expect(entries.count >= 200)
        let bad = corpusMismatches(tok, entries)
        #expect(bad.isEmpty, "\(bad.count) mismatches:\n\(bad.prefix(20).joined(separator: "\n"))")
        for (text, ids) in withSpecial { #expect(tok.encode(text) == ids, "default specials: \(text.debugDescription)") }
        #expect(tok.vocabSize == 262_144 && tok.bosID == 2 && tok.addsBOSByDefault)
        #expect(tok.eosIDs.contains(1))
    }

    @Test("the chat format is Gemma's turn template (detected from the vocabulary) and equals transformers' rendering")
    func chatFormatMatchesTransformers() throws {
        let tok = try Tokenizer(ggufPath: try GemmaModel.require())
        #expect(tok.chatFormat == .gemma(bos: "<bos>"))
        // <end_of_turn> ends a generation like the eos token.
        #expect(tok.eosIDs.contains(try #require(tok.tokenID("<end_of_turn>"))))
        try checkChat(tok, "gemma3", file: "gemma3_chat_expected.json")
    }

    /// `--acceptance argmax`: Sirius's committed ids equal the engine's full greedy decoding (which the
    /// test above ties to transformers), Griffin and CATS on the GELU MLP, width 1 and 2, period 4 and 16.
    @Test("argmax acceptance: sirius equals full greedy on Gemma-3-270M", arguments: [SparsityKind.griffin, .cats])
    func argmaxEqualsGreedy(kind: SparsityKind) throws {
        let fixture = try GreedyFixture.load("gemma3_greedy.json")
        let model = try Self.model()
        let weights = SparseWeights(model: model)
        var rollbacks = 0
        for i in [1, 3] {
            let c = fixture.cases[i]
            for width in [1, 2] {
                for period in [4, 16] {
                    let r = try SiriusRig.run(model, prompt: c.prompt_ids, method: SiriusRig.sirius(kind, period: period, width: width),
                                              maxNew: fixture.new_tokens, weights: weights)
                    rollbacks += r.counters.rollbacks
                    #expect(r.generation.outputIDs == c.output_ids, "\(kind) K=\(period) W=\(width) prompt \(i)")
                    print("[sirius] Gemma case \(i) \(kind) K=\(period) W=\(width): AAL \(r.counters.aal ?? 0), \(r.counters.rollbacks) rollbacks")
                }
            }
        }
        #expect(rollbacks > 0)
    }
}
