import Foundation
import SiriusEngine
import Testing
import TestSupport

struct GreedyFixture: Decodable {
    struct Case: Decodable {
        var prompt: String
        var chat: Bool
        var rendered: String
        var prompt_ids: [Int32]
        var output_ids: [Int32]
        var first_logits_top5_ids: [Int32]
        var first_logits_top5_values: [Float]
    }
    var new_tokens: Int
    var cases: [Case]

    static func load(_ name: String = "smollm2_greedy.json") throws -> GreedyFixture {
        let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent(name)
        return try JSONDecoder().decode(GreedyFixture.self, from: Data(contentsOf: url))
    }
}

/// The acceptance test of the engine: greedy continuations of the real SmolLM2 GGUF equal those of
/// Hugging Face transformers (fp32, dequantised weights; fixtures from tools/make_greedy_fixtures.py).
@Suite("SmolLM2 against transformers")
struct SmolLM2GreedyTests {
    @Test("exact numerics: 48 greedy tokens equal transformers' for every prompt")
    func greedyMatchesTransformers() throws {
        let fixture = try GreedyFixture.load()
        let model = try ModelLoader.load(path: try DevelopmentModel.require())
        #expect(fixture.cases.count >= 6)
        for c in fixture.cases {
            let (first, out) = greedyContinuation(model, prompt: c.prompt_ids, count: fixture.new_tokens)
            // First-step logits agree closely with the reference's.
            for (id, v) in zip(c.first_logits_top5_ids, c.first_logits_top5_values) {
                #expect(abs(first[Int(id)] - v) < 2e-3 * max(1, abs(v)), "logit \(id) for \(c.prompt.prefix(30))")
            }
            #expect(out == c.output_ids, "prompt \(c.prompt.prefix(40)) (chat: \(c.chat))")
        }
    }
}
