import Foundation

/// Which contextual-sparsity method drafts (sirius-method.md §2, §11).
public enum SparsityKind: String, Sendable, Codable, CaseIterable {
    /// Coarse: neurons scored on the prompt during the dense prefill, frozen for the generation (§2.1).
    case griffin
    /// Fine: neurons chosen per token from |silu(gate)| (§2.2).
    case cats
}

/// How CATS picks a token's active neurons.
public enum CATSMode: String, Sendable, Codable, CaseIterable {
    /// The `density × D` largest |silu(gate)| (as the reference runs it).
    case topk
    /// |silu(gate)| above a per-layer threshold calibrated for the target density (as CATS does).
    case threshold
}

/// Per-layer CATS thresholds for one target density, as saved by `sirius-worker calibrate`.
public struct CATSCalibration: Codable, Sendable, Equatable {
    public var density: Double
    public var thresholds: [Float]
    /// Model file the thresholds were measured on, and the number of activation rows per layer used.
    public var model: String
    public var samples: Int

    public init(density: Double, thresholds: [Float], model: String, samples: Int) {
        self.density = density; self.thresholds = thresholds; self.model = model; self.samples = samples
    }

    public static func load(path: String) throws -> CATSCalibration {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw ModelLoadError(file: path, problem: "cannot read the calibration file", fix: "create it with `sirius-worker calibrate --density D --out \(path)`")
        }
        do { return try JSONDecoder().decode(CATSCalibration.self, from: d) } catch {
            throw ModelLoadError(file: path, problem: "not a calibration file (\(error))", fix: "recreate it with `sirius-worker calibrate`")
        }
    }

    public func save(path: String) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        try e.encode(self).write(to: URL(fileURLWithPath: path))
    }
}

/// A sparse MLP configuration: method, density (fraction of MLP neurons kept) and CATS options.
public struct SparsityConfig: Sendable, Equatable {
    public var kind: SparsityKind
    public var density: Double
    public var catsMode: CATSMode
    public var calibration: CATSCalibration?

    public init(kind: SparsityKind, density: Double, catsMode: CATSMode = .topk, calibration: CATSCalibration? = nil) {
        self.kind = kind; self.density = density; self.catsMode = catsMode; self.calibration = calibration
    }

    /// Neurons kept per layer: floor(density · D), at least 1.
    public func keptNeurons(_ d: Int) -> Int { max(1, min(d, Int((density * Double(d)).rounded(.down)))) }

    /// The paper's parameter-count density (§5.2): 1 − s·P_mlp/P_total for Griffin (gate, up and down
    /// pruned), 1 − s·(2/3)·P_mlp/P_total for CATS (gate dense), with s = 1 − density.
    public func paperDensity(_ c: ModelConfig) -> Double {
        let mlp = Double(c.layerCount * 3 * c.hiddenSize * c.intermediateSize)
        let perLayer = 2 * c.hiddenSize + c.hiddenSize * (c.qDim + 2 * c.kvDim) + c.qDim * c.hiddenSize + 3 * c.hiddenSize * c.intermediateSize
        // The paper counts embedding and lm_head separately even when tied (§5.2).
        let total = Double(2 * c.vocabSize * c.hiddenSize + c.hiddenSize + c.layerCount * perLayer)
        let s = 1 - density
        return 1 - s * (kind == .griffin ? 1 : 2.0 / 3.0) * mlp / total
    }
}
