import Foundation
import SiriusEngine
import SiriusMethod
import Testing
import TestSupport

/// CATS threshold calibration (issue 3): per-layer (1 − density) quantiles of |silu(gate)|.
@Suite("CATS threshold calibration")
struct CalibrationTests {
    /// Thresholds calibrated on some random prompts (dense prefill + greedy decode, as CATS; and then
    /// refined once on the sparse model's own decode rows) make CATS in threshold mode keep the target
    /// fraction of neurons within ±2 % (relative, so also within ±0.02) on held-out prompts during
    /// sparse decoding (active neurons / (layer steps · D), as `CATSMLP` counts them).
    @Test("calibrated thresholds realise the target density within ±2 % on held-out prompts", arguments: [0.3, 0.5, 0.7])
    func heldOutDensity(density: Double) throws {
        let model = try SiriusRig.tinyModel(.f32, seed: 61, layers: 3)
        let c = model.config
        let lengths = [3, 5, 8, 12, 16, 20, 6, 10, 14, 4, 9, 18]
        let calibrationPrompts = SiriusRig.prompts(lengths, vocab: c.vocabSize, seed: 1001)
        let heldOut = SiriusRig.prompts(lengths.reversed(), vocab: c.vocabSize, seed: 2002)
        let t = Transformer(model: model, capacity: 64)
        let hist = try CATSCalibrator.collect(transformer: t, prompts: calibrationPrompts, decodeTokens: 24)
        #expect(hist.rows == Array(repeating: lengths.reduce(0, +) + 24 * lengths.count, count: c.layerCount))
        let cal = CATSCalibrator.calibration(from: hist, density: density, model: "tiny")
        #expect(cal.thresholds.count == c.layerCount && cal.thresholds.allSatisfy { $0 > 0 })
        #expect(cal.density == density && cal.samples == hist.rows[0])
        // On the calibration set itself the quantile is exact up to interpolation inside one bin.
        for l in 0..<c.layerCount {
            #expect(abs(hist.fractionAbove(layer: l, threshold: cal.thresholds[l]) - density) < 0.002)
        }
        let m = try CATSCalibrator.measure(transformer: t, calibration: cal, prompts: heldOut, decodeTokens: 24)
        #expect(m.layerSteps == 24 * heldOut.count * c.layerCount)
        #expect(m.perLayerSteps.reduce(0, +) == m.layerSteps && m.perLayerActive.reduce(0, +) == m.activeNeurons)
        let perLayer = (0..<c.layerCount).map { m.density(layer: $0) }
        print("[calibration] target \(density): held-out density \(m.density), per layer \(perLayer), thresholds \(cal.thresholds)")
        #expect(abs(m.density - density) <= 0.02 * density, "held-out density \(m.density) for target \(density)")
        // One round of recalibration on the sparse model's own decode rows (the default of `calibrate`).
        let refined = try CATSCalibrator.calibrate(transformer: t, prompts: calibrationPrompts, density: density, decodeTokens: 24)
        let sparseRows = try CATSCalibrator.collect(transformer: t, prompts: calibrationPrompts, decodeTokens: 24,
                                                    prefillRows: false, sparse: cal)
        #expect(sparseRows.rows == Array(repeating: 24 * lengths.count, count: c.layerCount))
        #expect(refined.samples == 24 * lengths.count)
        let mr = try CATSCalibrator.measure(transformer: t, calibration: refined, prompts: heldOut, decodeTokens: 24)
        print("[calibration] target \(density): refined held-out density \(mr.density)")
        #expect(abs(mr.density - density) <= 0.02 * density, "refined held-out density \(mr.density) for target \(density)")
        // Lower density, higher thresholds.
        let denser = CATSCalibrator.calibration(from: hist, density: min(1, density + 0.1))
        #expect(zip(denser.thresholds, cal.thresholds).allSatisfy { $0 < $1 })
    }

    /// The same calibration through the one-call API, saved and loaded as JSON, drives `--cats-mode
    /// threshold` in a Sirius run (argmax acceptance keeps the output equal to full greedy).
    @Test("calibration round-trips through JSON and drives CATS threshold mode in Sirius")
    func roundTripAndSirius() throws {
        let model = try SiriusRig.tinyModel(.f32, seed: 62)
        let prompts = SiriusRig.prompts([6, 9, 12, 15], vocab: model.config.vocabSize, seed: 77)
        let t = Transformer(model: model, capacity: 64)
        let cal = try CATSCalibrator.calibrate(transformer: t, prompts: prompts, density: 0.5, decodeTokens: 16, refinements: 2,
                                               model: "tiny.gguf")
        let dir = try TempDir("calibration")
        defer { dir.remove() }
        let path = dir.path + "/cal.json"
        try cal.save(path: path)
        let loaded = try CATSCalibration.load(path: path)
        #expect(loaded == cal)
        #expect(throws: MethodError.self) { try CATSCalibration.load(path: dir.path + "/missing.json") }
        let prompt = TinyLlama.tokens(7, vocab: model.config.vocabSize, seed: 5)
        var method = SiriusRig.sirius(.cats, period: 6)
        method.catsMode = .threshold
        method.calibration = loaded
        let r = try SiriusRig.run(model, prompt: prompt, method: method, maxNew: 30)
        #expect(r.generation.outputIDs == (try SiriusRig.fullGreedy(model, prompt: prompt, maxNew: 30)))
    }

    /// Quantiles of a known distribution: the histogram's interpolated quantile is within one bin
    /// (< 0.8 %) of the exact order statistic.
    @Test("histogram quantiles match exact order statistics within a bin")
    func histogramQuantiles() {
        let width = 1000
        var rng = SeededRandom(seed: 9)
        // Gate pre-activations spread over [−6, 6].
        let gate = (0..<(3 * width)).map { _ in (rng.nextUnit() * 2 - 1) * 6 }
        let hist = GateMagnitudeHistogram(layerCount: 1, width: width)
        gate.withUnsafeBufferPointer { hist.add(layer: 0, gate: $0.baseAddress!, tokens: 3) }
        let mags = gate.map { abs($0 / (1 + expf(-$0))) }.sorted()
        for q in [0.1, 0.3, 0.5, 0.7, 0.9] {
            let exact = mags[Int(q * Double(mags.count)) - 1]
            let got = hist.quantile(layer: 0, fraction: q)
            #expect(abs(got - exact) <= 0.008 * exact + 1e-6, "q \(q): \(got) vs \(exact)")
            let above = Double(mags.filter { $0 > got }.count) / Double(mags.count)
            #expect(abs(above - (1 - q)) < 0.002)
        }
        #expect(hist.quantile(layer: 0, fraction: 0) < 0)
    }
}
