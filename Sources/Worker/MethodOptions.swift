import ArgumentParser
import SiriusEngine

extension SparsityKind: ExpressibleByArgument {}
extension CATSMode: ExpressibleByArgument {}
extension AcceptanceRule: ExpressibleByArgument {}

/// The decoding method and its parameters (sirius-method.md §11 vocabulary and defaults).
struct MethodOptions: ParsableArguments {
    @Option(help: "full, griffin, cats (sparse model alone after a dense prefill) or sirius (sparse drafts corrected by the full model).")
    var method: String = "full"
    @Option(help: "The sparse model Sirius drafts with: griffin or cats.")
    var sparse: SparsityKind = .griffin
    @Option(help: "Fraction of MLP neurons kept (0.5 = 50 % sparsity).")
    var density: Double = 0.5
    @Option(help: "CATS neuron choice: topk (as the paper's code) or threshold (per-layer thresholds from --calibration).")
    var catsMode: CATSMode = .topk
    @Option(help: "CATS thresholds made by `sirius-worker calibrate` (for --cats-mode threshold).")
    var calibration: String?
    @Option(help: "Sirius period K: K-1 sparse drafts, then one dense pass over K tokens.")
    var kernelSize: Int = 16
    @Option(help: "Sirius acceptance threshold τ on the dense probability.")
    var threshold: Float = 0.1
    @Option(help: "threshold (the paper's rule), threshold-or-argmax (also accept the dense argmax), argmax (lossless).")
    var acceptance: AcceptanceRule = .thresholdOrArgmax
    @Option(help: "Softmax temperature of the acceptance probability.")
    var acceptanceTemperature: Float = 0.6
    @Option(help: "Sirius tree width W (W-way beam drafting verified in one pass); 1 = no tree.")
    var treeWidth: Int = 1

    func validate() throws {
        guard ["full", "griffin", "cats", "sirius"].contains(method) else {
            throw ValidationError("--method must be full, griffin, cats or sirius (got '\(method)')")
        }
        guard density > 0 && density <= 1 else { throw ValidationError("--density must be in (0, 1]") }
        guard kernelSize >= 2 && kernelSize <= 64 else { throw ValidationError("--kernel-size must be between 2 and 64") }
        guard treeWidth >= 1 && treeWidth <= 16 else { throw ValidationError("--tree-width must be between 1 and 16") }
        guard threshold >= 0 && threshold <= 1 else { throw ValidationError("--threshold must be in [0, 1]") }
        guard acceptanceTemperature > 0 else { throw ValidationError("--acceptance-temperature must be > 0") }
        if catsMode == .threshold && calibration == nil && (method == "cats" || (method == "sirius" && sparse == .cats)) {
            throw ValidationError("--cats-mode threshold needs --calibration FILE (make one with `sirius-worker calibrate --density \(density) --out FILE`)")
        }
    }

    /// The method for a given name (so `bench` can run several from one set of options).
    func decodingMethod(_ name: String? = nil) throws -> DecodingMethod {
        let cal = try calibration.map { try CATSCalibration.load(path: $0) }
        func sparsity(_ kind: SparsityKind) -> SparsityConfig {
            SparsityConfig(kind: kind, density: density, catsMode: kind == .cats ? catsMode : .topk, calibration: cal)
        }
        switch name ?? method {
        case "full": return .full
        case "griffin": return .sparse(sparsity(.griffin))
        case "cats": return .sparse(sparsity(.cats))
        case "sirius", "sirius-griffin": return .sirius(sparsity(name == "sirius-griffin" ? .griffin : sparse), siriusParams)
        case "sirius-cats": return .sirius(sparsity(.cats), siriusParams)
        default: throw ValidationError("unknown method '\(name ?? method)'")
        }
    }

    var siriusParams: SiriusParams {
        SiriusParams(period: kernelSize, threshold: threshold, acceptance: acceptance,
                     acceptanceTemperature: acceptanceTemperature, treeWidth: treeWidth)
    }

    /// Extra cache slots a method needs beyond prompt + new tokens (a Sirius period's drafts).
    func extraCapacity(_ m: DecodingMethod) -> Int {
        if case .sirius(_, let p) = m { return (p.period - 1) * p.treeWidth + 1 }
        return 0
    }
}

/// The `sirius` JSON object of a generation: raw counters and the rates computed from them.
func siriusJSON(_ o: MethodOutcome, method: DecodingMethod) -> [String: Any] {
    let c = o.counters
    var j: [String: Any] = [
        "method": method.name,
        "periods": c.periods, "advanced_tokens": c.advancedTokens, "final_period_advance": c.finalPeriodAdvance,
        "rollbacks": c.rollbacks, "rolled_back_tokens": c.rolledBackTokens, "sparse_steps": c.sparseSteps,
        "dense_passes": c.densePasses, "tokens_verified": c.tokensVerified,
        "prefill_seconds": c.prefillSeconds, "sparse_seconds": c.sparseSeconds, "verify_seconds": c.verifySeconds,
    ]
    if let d = o.modelDensity { j["model_density"] = d }
    if let d = o.paperDensity { j["param_density"] = d }
    if let aal = c.aal {
        j["aal"] = aal
        if case .sirius(_, let p) = method, let d = o.paperDensity {
            j["effective_density"] = DecodeCounters.effectiveDensity(period: p.period, density: d, aal: aal)
            j["kernel_size"] = p.period
        }
    }
    return j
}
