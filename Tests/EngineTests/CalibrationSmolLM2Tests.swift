import Foundation
import SiriusEngine
import SiriusMethod
import Testing
import TestSupport

/// CATS calibration on the real SmolLM2-135M-Instruct: thresholds calibrated on some prompts realise
/// the target density on other prompts — within ±2 % (relative) over all layers, within ±5 % in every
/// layer. Per layer ±2 % does not hold on held-out prompts: measured here (10 calibration prompts,
/// 9 held-out, 64 decode steps each, 3 refinements) layer 0 realises 0.521 and layers 1–4 and 27–29
/// 0.511–0.513 for a target of 0.5; GSM8K 40 / 40 with EOS stops gave 3 % at worst
/// (`sirius-worker calibrate --limit 40 --held-out 40 --refinements 2`). See the in-sample check below.
@Suite("CATS calibration on SmolLM2")
struct CalibrationSmolLM2Tests {
    /// The prompts of the committed fixtures (CSQA questions, the greedy-decoding prompts), split
    /// into calibration and held-out sets that mix both kinds.
    static func prompts() throws -> (calibration: [String], heldOut: [String]) {
        let dir = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
        struct CSQA: Decodable { struct E: Decodable { var question: String }; var examples: [E] }
        struct Greedy: Decodable { struct C: Decodable { var prompt: String }; var cases: [C] }
        let csqa = try JSONDecoder().decode(CSQA.self, from: Data(contentsOf: dir.appendingPathComponent("csqa/prompts12.json")))
        let greedy = try JSONDecoder().decode(Greedy.self, from: Data(contentsOf: dir.appendingPathComponent("smollm2_greedy.json")))
        let all = csqa.examples.map(\.question) + greedy.cases.map(\.prompt)
        let even = all.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
        let odd = all.enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
        return (even, odd)
    }

    @Test("held-out density within ±2 % of the target (0.5) over all layers, ±5 % in each")
    func perLayerHeldOutDensity() throws {
        let path = try DevelopmentModel.require()
        let model = try ModelLoader.load(path: path)
        let tokenizer = try Tokenizer(gguf: try GGUFFile(path: path))
        let (cal, held) = try Self.prompts()
        let encode = { (p: String) in tokenizer.encode(p) }
        let t = Transformer(model: model, capacity: 512, numerics: .exact)
        // No EOS stop: every prompt gives the same number of decode rows.
        let calibration = try CATSCalibrator.calibrate(transformer: t, prompts: cal.map(encode), density: 0.5, decodeTokens: 64,
                                                       refinements: 3, model: "SmolLM2-135M-Instruct")
        let m = try CATSCalibrator.measure(transformer: t, calibration: calibration, prompts: held.map(encode), decodeTokens: 64)
        let perLayer = (0..<model.config.layerCount).map { m.density(layer: $0) }
        print("[calibration] SmolLM2 held-out density \(m.density) over \(m.layerSteps / model.config.layerCount) steps; per layer \(perLayer.map { String(format: "%.4f", $0) })")
        #expect(m.layerSteps == 64 * held.count * model.config.layerCount)
        for (l, d) in perLayer.enumerated() {
            #expect(abs(d - 0.5) <= 0.05 * 0.5, "layer \(l): held-out density \(d)")
        }
        #expect(abs(m.density - 0.5) <= 0.02 * 0.5)
        // The calibration prompts themselves, decoded sparse with the final thresholds, are no better
        // per layer (layers 5–8 at 0.486–0.489): each refinement changes the tokens the sparse model
        // generates and the rows every later layer sees, so per-layer quantiles do not converge to
        // ±2 % — an honest limit of per-layer thresholds, stated in the closing note of issue 10.
        let own = try CATSCalibrator.measure(transformer: t, calibration: calibration, prompts: cal.map(encode), decodeTokens: 64)
        let ownPerLayer = (0..<model.config.layerCount).map { own.density(layer: $0) }
        print("[calibration] SmolLM2 density on the calibration prompts \(own.density), per layer \(ownPerLayer.map { String(format: "%.4f", $0) })")
        #expect(abs(own.density - 0.5) <= 0.02 * 0.5)
        for (l, d) in ownPerLayer.enumerated() {
            #expect(abs(d - 0.5) <= 0.05 * 0.5, "layer \(l): density \(d) on the calibration prompts")
        }
    }
}
