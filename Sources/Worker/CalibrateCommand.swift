import ArgumentParser
import Foundation
import SiriusEngine
import SiriusMethod

struct CalibrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate",
        abstract: "Calibrate per-layer CATS thresholds for a target density (for --cats-mode threshold).",
        discussion: """
            Runs the dense model over sample prompts (prefill plus --decode-tokens greedy steps), takes each \
            layer's (1 - density) quantile of |silu(gate)| as its threshold, recalibrates --refinements times on \
            the sparse model's own decode steps, then measures the density CATS realises with the thresholds \
            during sparse decoding of held-out prompts from the same file.

            The prompt file holds one prompt per line, or JSON lines with a "question" (or "prompt", "text").

            Examples:
              sirius-worker calibrate --density 0.5 --prompt-file gsm8k/test.jsonl --limit 20 --out cats-0.5.json
              sirius-worker generate --method cats --cats-mode threshold --calibration cats-0.5.json --prompt 'Q: ...'
            """)

    @OptionGroup var engine: EngineOptions
    @Option(help: "Fraction of MLP neurons to keep (0.5 = 50 % sparsity).") var density: Double = 0.5
    @Option(help: "Prompts: one per line, or JSON lines with \"question\".") var promptFile: String
    @Option(help: "Calibrate on the first N prompts of the file.") var limit: Int = 20
    @Option(help: "Measure on the next N prompts (0 = no measurement).") var heldOut: Int?
    @Option(help: "Greedy decode steps after each prompt's prefill (calibration and measurement).") var decodeTokens: Int = 32
    @Flag(help: "Wrap each prompt as one user message in the model's chat format.") var chat = false
    @Flag(help: "Calibrate on the decode steps' rows only (not the prompts' prefill rows).") var decodeOnly = false
    @Option(help: "Rounds of recalibration on the sparse model's own decode rows (0 = dense rows only, as CATS).") var refinements: Int = 1
    @Option(help: "Write the calibration (JSON) to this file.") var out: String?
    @Flag(help: "Print one JSON object instead of a table.") var json = false

    func validate() throws {
        guard density > 0 && density <= 1 else { throw ValidationError("--density must be in (0, 1]") }
        guard limit >= 1 else { throw ValidationError("--limit must be at least 1") }
        guard (heldOut ?? 0) >= 0 else { throw ValidationError("--held-out must be >= 0") }
        guard refinements >= 0 else { throw ValidationError("--refinements must be >= 0") }
        guard decodeTokens >= 0 else { throw ValidationError("--decode-tokens must be >= 0") }
    }

    /// The prompts of a file: JSON lines (with "question", "prompt" or "text") or plain lines.
    static func prompts(file: String) throws -> [String] {
        guard let d = FileManager.default.contents(atPath: file) else {
            throw ValidationError("--prompt-file \(file): cannot read the file")
        }
        return try String(decoding: d, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true).compactMap { line in
            let s = String(line)
            guard s.first == "{" else { return s.trimmingCharacters(in: .whitespaces).isEmpty ? nil : s }
            guard let o = try JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any],
                  let q = (o["question"] ?? o["prompt"] ?? o["text"]) as? String else {
                throw ValidationError("--prompt-file \(file): a JSON line without a \"question\", \"prompt\" or \"text\" string")
            }
            return q
        }
    }

    func run() throws {
        let texts = try Self.prompts(file: promptFile)
        let nHeld = heldOut ?? limit
        guard texts.count >= limit + nHeld else {
            throw ValidationError("--prompt-file has \(texts.count) prompts; --limit \(limit) and --held-out \(nHeld) need \(limit + nHeld)")
        }
        let loaded = try LoadedModel(path: engine.model)
        let ids = try texts.prefix(limit + nHeld).map { try loaded.promptIDs($0, chat: chat) }
        let context = loaded.model.config.contextLength
        let capacity = min(context, (ids.map(\.count).max() ?? 0) + decodeTokens + 1)
        let t = Transformer(model: loaded.model, capacity: capacity, numerics: engine.numerics, threads: engine.threads)
        guard ids.allSatisfy({ $0.count < capacity }) else { throw ValidationError("a prompt does not fit the model's context (\(context) tokens)") }
        let eos = loaded.tokenizer.eosIDs
        let clock = ContinuousClock()
        let t0 = clock.now
        var hist = try CATSCalibrator.collect(transformer: t, prompts: Array(ids.prefix(limit)), decodeTokens: decodeTokens, eosIDs: eos,
                                             prefillRows: !decodeOnly)
        var cal = CATSCalibrator.calibration(from: hist, density: density, model: engine.model)
        let downT = NeuronMajorDown(model: loaded.model)
        for _ in 0..<refinements {
            hist = try CATSCalibrator.collect(transformer: t, prompts: Array(ids.prefix(limit)), decodeTokens: decodeTokens,
                                              eosIDs: eos, prefillRows: false, sparse: cal, downT: downT)
            cal = CATSCalibrator.calibration(from: hist, density: density, model: engine.model)
        }
        let calibrateSeconds = (clock.now - t0).seconds
        if let out { try cal.save(path: out) }
        var measured: CATSDensityMeasurement?
        let t1 = clock.now
        if nHeld > 0 {
            measured = try CATSCalibrator.measure(transformer: t, calibration: cal, prompts: Array(ids.suffix(nHeld)),
                                                  decodeTokens: decodeTokens, eosIDs: eos, downT: downT)
        }
        let measureSeconds = (clock.now - t1).seconds
        let layers = 0..<cal.thresholds.count
        if json {
            var obj: [String: Any] = [
                "density": density, "thresholds": cal.thresholds.map(Double.init), "samples": cal.samples,
                "calibration_prompts": limit, "decode_only": decodeOnly, "refinements": refinements, "held_out_prompts": nHeld, "decode_tokens": decodeTokens,
                "calibration_fraction_above": layers.map { hist.fractionAbove(layer: $0, threshold: cal.thresholds[$0]) },
                "calibrate_seconds": calibrateSeconds, "model": engine.model,
            ]
            if let out { obj["out"] = out }
            if let m = measured {
                obj["held_out"] = ["density": m.density, "per_layer": layers.map { m.density(layer: $0) },
                                   "layer_steps": m.layerSteps, "active_neurons": m.activeNeurons, "seconds": measureSeconds]
            }
            try printJSON(obj)
        } else {
            print("layer  threshold  held-out density")
            for l in layers {
                let d = measured.map { String(format: "%.4f", $0.density(layer: l)) } ?? "-"
                print(String(format: "%5d  %9.5f  ", l, cal.thresholds[l]) + d)
            }
            var line = String(format: "target density %.3f: thresholds from %d rows per layer (%d prompts, %.1f s)",
                              density, cal.samples, limit, calibrateSeconds)
            if let m = measured {
                line += String(format: "; held-out density %.4f over %d prompts (%d sparse steps, %.1f s)",
                               m.density, nHeld, m.layerSteps / max(1, cal.thresholds.count), measureSeconds)
            }
            print(line)
            if let out { printErr("wrote \(out)") }
        }
    }
}
