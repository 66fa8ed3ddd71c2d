import ArgumentParser
import SiriusEngine
import SiriusMethod

extension SparsityKind: ExpressibleByArgument {}
extension CATSMode: ExpressibleByArgument {}
extension AcceptanceRule: ExpressibleByArgument {}

/// The decoding method and its knobs (sirius-method.md §11 vocabulary; defaults in `MethodDefaults`).
struct MethodOptions: ParsableArguments {
    @Option(help: "full, griffin@D, cats@D (the sparse model alone after a dense prefill), sirius/griffin@D or sirius/cats@D (sparse drafts corrected by the full model); without @D the density is --density.")
    var method: String = "full"
    @Option(help: "Fraction of MLP neurons kept (0.5 = 50 % sparsity), for methods written without @D.")
    var density: Double = MethodDefaults.density
    @Option(help: "CATS neuron choice: topk (as the paper's code) or threshold (per-layer thresholds from --calibration).")
    var catsMode: CATSMode = MethodDefaults.catsMode
    @Option(help: "CATS thresholds made by `sirius-worker calibrate` (for --cats-mode threshold).")
    var calibration: String?
    @Option(help: "Sirius period K: K-1 sparse drafts, then one dense pass over K tokens.")
    var period: Int = MethodDefaults.period
    @Option(help: "Sirius acceptance threshold τ on the dense probability.")
    var threshold: Double = MethodDefaults.threshold
    @Option(help: "threshold (the paper's rule), threshold-or-argmax (also accept the dense argmax), argmax (lossless).")
    var acceptance: AcceptanceRule = MethodDefaults.acceptance
    @Option(help: "Softmax temperature of the acceptance probability.")
    var acceptanceTemperature: Double = MethodDefaults.acceptanceTemperature
    @Option(help: "Sirius tree width W (W-way beam drafting verified in one pass); 1 = no tree.")
    var treeWidth: Int = MethodDefaults.treeWidth
    @Option(help: ArgumentHelp("Adaptive period (an option, not the paper's setting): end a period after the first draft whose probability under the sparse model is below CONF, up to K drafts.", valueName: "conf"))
    var adaptivePeriod: Double?
    // Earlier spellings, kept working: `--method sirius --sparse cats`, `--kernel-size K`.
    @Option(help: .hidden) var sparse: SparsityKind?
    @Option(help: .hidden) var kernelSize: Int?

    func validate() throws {
        _ = try spec()
    }

    /// The knobs the method syntax does not name.
    var base: MethodSpec {
        MethodSpec(kind: .sirius, sparsity: sparse ?? .griffin, density: density, catsMode: catsMode,
                   period: kernelSize ?? period, threshold: threshold, acceptance: acceptance,
                   acceptanceTemperature: acceptanceTemperature, treeWidth: treeWidth, adaptivePeriod: adaptivePeriod)
    }

    /// The method `text` (default `--method`) with these options; also reads the earlier names
    /// `griffin`, `cats`, `sirius` (with `--sparse`), `sirius-griffin`, `sirius-cats`.
    func spec(_ text: String? = nil) throws -> MethodSpec {
        var name = text ?? method
        switch name {
        case "sirius": name = "sirius/\((sparse ?? .griffin).rawValue)"
        case "sirius-griffin": name = "sirius/griffin"
        case "sirius-cats": name = "sirius/cats"
        default: break
        }
        var b = base
        if name.hasSuffix("cats") || name.contains("cats@") {
            b.calibration = try calibration.map { try CATSCalibration.load(path: $0) }
        }
        do {
            var m = try MethodSpec.parse(name, base: b)
            if !name.contains("@") && m.isSparse { m.name = m.syntax }
            return m
        } catch let e as MethodError {
            throw ValidationError(e.description)
        }
    }
}

/// The `sirius` JSON object of a generation: raw counters and the rates computed from them.
func methodJSON(_ o: MethodOutcome, method: MethodSpec) -> [String: Any] {
    let c = o.counters
    var j: [String: Any] = [
        "method": method.name,
        "periods": c.periods, "advanced_tokens": c.advancedTokens, "final_period_advance": c.finalPeriodAdvance,
        "rollbacks": c.rollbacks, "rolled_back_tokens": c.rolledBackTokens, "sparse_steps": c.sparseSteps,
        "dense_passes": c.densePasses, "tokens_verified": c.tokensVerified,
        "prefill_seconds": o.timings.prefillSeconds, "sparse_seconds": o.timings.sparseSeconds,
        "verify_seconds": o.timings.verifySeconds,
    ]
    if let d = o.modelDensity { j["model_density"] = d }
    if let d = o.paramDensity { j["param_density"] = d }
    if method.kind == .sirius { j["period"] = method.period }
    if let aal = c.aal {
        j["aal"] = aal
        if method.kind == .sirius, let d = o.paramDensity {
            j["effective_density"] = DecodeCounters.effectiveDensity(period: method.period, paramDensity: d, aal: aal)
        }
    }
    return j
}
