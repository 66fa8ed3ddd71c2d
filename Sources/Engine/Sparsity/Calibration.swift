import Foundation
import SiriusMethod

/// Per-layer histograms of |act(gate)| (the model's activation: SiLU, or Gemma's GELU) over dense MLP
/// rows, for CATS threshold calibration (sirius-method.md §2.2: t_ℓ = the (1 − density) quantile of
/// |act(gate)| over a calibration set).
///
/// Bins are the top 16 bits of the float's bit pattern (sign clear: 8 exponent bits, 7 mantissa bits),
/// which are ordered like the values: each bin spans 1/128 of an octave (< 0.8 % of its value), and
/// a quantile is interpolated linearly inside its bin. Memory is fixed (32768 counters per layer)
/// however many rows are added, so calibration sets of any size fit.
public final class GateMagnitudeHistogram {
    public static let binCount = 1 << 15
    public let layerCount: Int
    public let width: Int
    public let activation: GatedActivation
    /// Rows added per layer.
    public private(set) var rows: [Int]
    private var counts: [[Int]]

    public init(layerCount: Int, width: Int, activation: GatedActivation = .silu) {
        self.layerCount = layerCount; self.width = width; self.activation = activation
        rows = Array(repeating: 0, count: layerCount)
        counts = Array(repeating: Array(repeating: 0, count: Self.binCount), count: layerCount)
    }

    /// Adds `tokens` rows of gate pre-activations (`[tokens][width]`) of one layer.
    public func add(layer l: Int, gate: UnsafePointer<Float>, tokens: Int) {
        rows[l] += tokens
        counts[l].withUnsafeMutableBufferPointer { c in
            for i in 0..<(tokens * width) {
                let x = gate[i]
                let m = abs(activation(x))
                c[Self.bin(m)] += 1
            }
        }
    }

    static func bin(_ m: Float) -> Int {
        guard m.isFinite else { return binCount - 1 }
        return Int(m.bitPattern >> 16) & (binCount - 1)
    }

    static func lowerBound(_ b: Int) -> Float { Float(bitPattern: UInt32(b) << 16) }

    /// The value t with a fraction `fraction` of the layer's magnitudes at or below it (linear inside
    /// the bin). `fraction <= 0` gives −1 (every neuron stays active: magnitudes are ≥ 0 > −1).
    public func quantile(layer l: Int, fraction: Double) -> Float {
        let total = rows[l] * width
        guard total > 0 else { return 0 }
        let target = fraction * Double(total)
        guard target > 0 else { return -1 }
        var below = 0.0
        for (b, n) in counts[l].enumerated() where n > 0 {
            if below + Double(n) >= target {
                let f = (target - below) / Double(n)
                let lo = Self.lowerBound(b)
                let hi = b + 1 < Self.binCount ? Self.lowerBound(b + 1) : lo
                return lo + Float(f) * (hi - lo)
            }
            below += Double(n)
        }
        return Self.lowerBound(Self.binCount - 1)
    }

    /// Fraction of the layer's magnitudes strictly above `t` (bin-resolution estimate, for reports).
    public func fractionAbove(layer l: Int, threshold t: Float) -> Double {
        let total = rows[l] * width
        guard total > 0 else { return 0 }
        if t < 0 { return 1 }
        let tb = Self.bin(t)
        var above = 0.0
        for b in (tb + 1)..<Self.binCount { above += Double(counts[l][b]) }
        // Inside t's own bin, assume the values are spread evenly.
        let lo = Self.lowerBound(tb), hi = tb + 1 < Self.binCount ? Self.lowerBound(tb + 1) : lo
        if hi > lo { above += Double(counts[l][tb]) * Double((hi - t) / (hi - lo)) }
        return above / Double(total)
    }
}

/// The realised density of CATS in threshold mode: active neurons over every (layer, sparse step).
public struct CATSDensityMeasurement: Sendable, Equatable {
    public var activeNeurons: Int
    public var layerSteps: Int
    public var width: Int
    /// Per layer: active neurons and steps.
    public var perLayerActive: [Int]
    public var perLayerSteps: [Int]
    public var density: Double { layerSteps > 0 ? Double(activeNeurons) / Double(layerSteps * width) : 0 }
    public func density(layer l: Int) -> Double {
        perLayerSteps[l] > 0 ? Double(perLayerActive[l]) / Double(perLayerSteps[l] * width) : 0
    }
}

/// Shows the dense MLP's gate rows to a histogram.
final class GateRecorder: MLPObserver {
    let histogram: GateMagnitudeHistogram
    init(_ h: GateMagnitudeHistogram) { histogram = h }
    func observe(layer: Int, gate: UnsafePointer<Float>, tokens: Int) { histogram.add(layer: layer, gate: gate, tokens: tokens) }
}

/// A CATS MLP whose gate rows also go to a histogram: the activations the sparse model really sees.
final class GateRecordingMLP: SparseMLP {
    let inner: CATSMLP
    let histogram: GateMagnitudeHistogram
    private var gate: [Float]

    init(_ inner: CATSMLP, _ h: GateMagnitudeHistogram) {
        self.inner = inner; histogram = h
        gate = [Float](repeating: 0, count: inner.d)
    }

    var density: Double { inner.density }
    var modelDensity: Double { inner.modelDensity }

    func run(layer l: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, tokens n: Int, in transformer: Transformer) {
        let w = transformer.model.layers[l].gate, h = transformer.config.hiddenSize
        gate.withUnsafeMutableBufferPointer { g in
            for r in 0..<n {
                transformer.backend.matmul(w, input + r * h, g.baseAddress!, tokens: 1)
                histogram.add(layer: l, gate: g.baseAddress!, tokens: 1)
            }
        }
        inner.run(layer: l, input: input, output: output, tokens: n, in: transformer)
    }
}

/// CATS threshold calibration: |silu(gate)| per layer over the dense prefill and some greedy dense
/// decode steps of sample prompts; each layer's threshold is the (1 − density) quantile, so that a
/// fraction `density` of its neurons stays active on average.
public enum CATSCalibrator {
    /// Collects the histograms: for every prompt, a dense prefill plus up to `decodeTokens` greedy
    /// decode steps (stopping early at an id of `eosIDs`). With `prefillRows == false` only the decode
    /// steps' rows count (the rows CATS is applied to). With `sparse`, the decode steps run CATS in
    /// threshold mode with those thresholds (the rows are then the gate activations the sparse model
    /// really sees, which refines a calibration); otherwise they are dense. Uses the transformer's cache.
    public static func collect(transformer t: Transformer, prompts: [[Int32]], decodeTokens: Int,
                               eosIDs: Set<Int32> = [], prefillRows: Bool = true, sparse: CATSCalibration? = nil,
                               downT: NeuronMajorDown? = nil) throws -> GateMagnitudeHistogram {
        let c = t.config
        let hist = GateMagnitudeHistogram(layerCount: c.layerCount, width: c.intermediateSize, activation: c.activation)
        let recorder = GateRecorder(hist)
        var decodeRoute = MLPRoute.observed(recorder)
        if let sparse {
            let cats = CATSMLP(model: t.model, density: sparse.density, mode: .threshold, calibration: sparse,
                               down: downT ?? NeuronMajorDown(model: t.model))
            decodeRoute = .sparse(GateRecordingMLP(cats, hist))
        }
        for p in prompts {
            try PlainDecoder.checkFits(p.count, decodeTokens + 1, t)
            t.cache.reset()
            var logits = t.forward(tokens: p, start: 0, mlp: prefillRows ? .observed(recorder) : .dense, promptChunk: true)
            var next = argmax(UnsafeBufferPointer(logits))
            var steps = 0
            while steps < decodeTokens && !eosIDs.contains(next) && t.cache.count < t.cache.capacity {
                steps += 1
                logits = t.forward(tokens: [next], start: t.cache.count, mlp: decodeRoute)
                next = argmax(UnsafeBufferPointer(logits))
            }
        }
        return hist
    }

    /// Per-layer thresholds for `density` from collected histograms.
    public static func calibration(from hist: GateMagnitudeHistogram, density: Double, model: String = "") -> CATSCalibration {
        precondition(density > 0 && density <= 1, "density must be in (0, 1]")
        let thresholds = (0..<hist.layerCount).map { hist.quantile(layer: $0, fraction: 1 - density) }
        return CATSCalibration(density: density, thresholds: thresholds, model: model, samples: hist.rows.min() ?? 0)
    }

    /// Collects and calibrates in one call: thresholds from the dense rows (prefill and decode, as
    /// CATS does), then `refinements` rounds that recalibrate on the decode rows of the sparse model
    /// running with the previous round's thresholds. The sparse model's activations drift from the
    /// dense ones (its hidden states and its tokens differ), so the dense thresholds alone keep a
    /// little more than `density` during sparse decoding; a round or two removes most of that.
    public static func calibrate(transformer: Transformer, prompts: [[Int32]], density: Double, decodeTokens: Int,
                                 eosIDs: Set<Int32> = [], refinements: Int = 1, model: String = "",
                                 downT: NeuronMajorDown? = nil) throws -> CATSCalibration {
        var hist = try collect(transformer: transformer, prompts: prompts, decodeTokens: decodeTokens, eosIDs: eosIDs)
        var cal = calibration(from: hist, density: density, model: model)
        let down = refinements > 0 ? (downT ?? NeuronMajorDown(model: transformer.model)) : downT
        for _ in 0..<refinements {
            hist = try collect(transformer: transformer, prompts: prompts, decodeTokens: decodeTokens, eosIDs: eosIDs,
                               prefillRows: false, sparse: cal, downT: down)
            cal = calibration(from: hist, density: density, model: model)
        }
        return cal
    }

    /// The density CATS in threshold mode realises with `calibration`: dense prefill, then up to
    /// `decodeTokens` greedy sparse decode steps per prompt (the CATS baseline), counting the active
    /// neurons of every layer at every sparse step.
    public static func measure(transformer t: Transformer, calibration: CATSCalibration, prompts: [[Int32]],
                               decodeTokens: Int, eosIDs: Set<Int32> = [], downT: NeuronMajorDown? = nil) throws -> CATSDensityMeasurement {
        let mlp = CATSMLP(model: t.model, density: calibration.density, mode: .threshold, calibration: calibration,
                          down: downT ?? NeuronMajorDown(model: t.model))
        for p in prompts {
            try PlainDecoder.checkFits(p.count, decodeTokens + 1, t)
            t.cache.reset()
            var logits = t.forward(tokens: p, start: 0, promptChunk: true)
            var next = argmax(UnsafeBufferPointer(logits))
            var steps = 0
            while steps < decodeTokens && !eosIDs.contains(next) && t.cache.count < t.cache.capacity {
                steps += 1
                logits = t.forward(tokens: [next], start: t.cache.count, mlp: .sparse(mlp))
                next = argmax(UnsafeBufferPointer(logits))
            }
        }
        return CATSDensityMeasurement(activeNeurons: mlp.activeNeurons.reduce(0, +), layerSteps: mlp.layerSteps.reduce(0, +),
                                      width: t.config.intermediateSize, perLayerActive: mlp.activeNeurons, perLayerSteps: mlp.layerSteps)
    }
}

#if canImport(Glibc)
import Glibc
#endif
