import Foundation

/// The decoding methods and their knobs, one vocabulary for the engine, the workers, the protocol and the
/// coordinator (sirius-method.md §11): `density` is the fraction of MLP neurons kept, `period` K, `threshold`
/// τ, acceptance rule and temperature, tree width W, CATS mode and calibration.
public enum MethodKind: String, Codable, Sendable, CaseIterable {
    /// Dense decoding with the full model.
    case full
    /// Dense prefill, then the sparse model alone (the Griffin / CATS baselines).
    case sparse
    /// Sparse drafting corrected by the full model.
    case sirius
}

/// Which contextual-sparsity method drafts (sirius-method.md §2).
public enum SparsityKind: String, Codable, Sendable, CaseIterable {
    /// Coarse: neurons scored on the prompt during the dense prefill, frozen for the generation (§2.1).
    case griffin
    /// Fine: neurons chosen per token from |silu(gate)| (§2.2).
    case cats
}

/// How CATS picks a token's active neurons.
public enum CATSMode: String, Codable, Sendable, CaseIterable {
    /// The `density × D` largest |silu(gate)| (as the reference runs it).
    case topk
    /// |silu(gate)| above a per-layer threshold calibrated for the target density (as CATS does).
    case threshold
}

/// How drafts are accepted against the dense verification (sirius-method.md §11).
public enum AcceptanceRule: String, Codable, Sendable, CaseIterable {
    /// The paper's rule: accept while softmax(z/T)[draft] ≥ τ.
    case threshold
    /// Also accept a draft that is the dense argmax when its probability is below τ.
    case thresholdOrArgmax = "threshold-or-argmax"
    /// Lossless: accept only the dense argmax (output equals full greedy decoding).
    case argmax
}

/// The defaults of every knob, in one place.
public enum MethodDefaults {
    public static let density = 0.5
    public static let period = 16
    public static let threshold = 0.1
    /// Users get the rule that also keeps a draft equal to the dense argmax; runs that reproduce the
    /// paper's tables pass `--acceptance threshold` and say so (sirius-method.md §11).
    public static let acceptance = AcceptanceRule.thresholdOrArgmax
    public static let acceptanceTemperature = 0.6
    public static let treeWidth = 1
    public static let catsMode = CATSMode.topk
}

/// One decoding method with all its settings. `name` labels it in result keys and reports (the method
/// syntax it was written in, e.g. `sirius/griffin@0.5`).
///
/// The JSON form holds only what the kind uses (and CATS mode, acceptance temperature and calibration
/// only when they differ from the defaults), so specs written by earlier builds read and hash the same.
public struct MethodSpec: Codable, Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var kind: MethodKind
    public var sparsity: SparsityKind
    public var density: Double
    public var catsMode: CATSMode
    public var calibration: CATSCalibration?
    public var period: Int
    public var threshold: Double
    public var acceptance: AcceptanceRule
    public var acceptanceTemperature: Double
    public var treeWidth: Int
    /// The adaptive period's confidence bound (an option, off by default and never used by the paper's
    /// runs): a period ends early, after the first draft whose probability under the sparse model is below
    /// it, so a period verifies 2 … `period` tokens. `nil`: every period drafts `period` − 1 tokens.
    public var adaptivePeriod: Double?

    public init(name: String? = nil, kind: MethodKind, sparsity: SparsityKind = .griffin,
                density: Double = MethodDefaults.density, catsMode: CATSMode = MethodDefaults.catsMode,
                calibration: CATSCalibration? = nil, period: Int = MethodDefaults.period,
                threshold: Double = MethodDefaults.threshold, acceptance: AcceptanceRule = MethodDefaults.acceptance,
                acceptanceTemperature: Double = MethodDefaults.acceptanceTemperature, treeWidth: Int = MethodDefaults.treeWidth,
                adaptivePeriod: Double? = nil) {
        self.adaptivePeriod = adaptivePeriod
        self.kind = kind; self.sparsity = sparsity; self.density = density; self.catsMode = catsMode
        self.calibration = calibration; self.period = period; self.threshold = threshold; self.acceptance = acceptance
        self.acceptanceTemperature = acceptanceTemperature; self.treeWidth = treeWidth
        self.name = ""
        self.name = name ?? syntax
    }

    public static let full = MethodSpec(kind: .full)

    /// The method syntax: `full`, `griffin@0.5`, `cats@0.5`, `sirius/griffin@0.5`, `sirius/cats@0.5`
    /// (`sirius/griffin@0.5,adaptive=0.6` with an adaptive period, so a name never hides it).
    public var syntax: String {
        switch kind {
        case .full: "full"
        case .sparse: "\(sparsity.rawValue)@\(Self.format(density))"
        case .sirius: "sirius/\(sparsity.rawValue)@\(Self.format(density))" + (adaptivePeriod.map { ",adaptive=\(Self.format($0))" } ?? "")
        }
    }

    public var description: String { name }

    /// Uses a sparse model (sparse baseline or Sirius drafts).
    public var isSparse: Bool { kind != .full }

    /// Extra KV-cache positions beyond prompt + new tokens: a Sirius period's drafts (all W·(K−1) tree
    /// nodes and the root).
    public var extraCachePositions: Int { kind == .sirius ? (period - 1) * treeWidth + 1 : 0 }

    public static func format(_ d: Double) -> String {
        d == d.rounded() ? String(Int(d)) : String(d)
    }

    /// Parses the method syntax; `base` supplies the knobs the syntax does not name (period, threshold,
    /// acceptance, temperature, tree width, CATS mode, calibration). A Sirius method may name its own
    /// period, threshold and tree width after a comma: `sirius/griffin@0.5,period=8,threshold=0.05`
    /// (the names a sweep gives its methods).
    public static func parse(_ text: String, base: MethodSpec = MethodSpec(kind: .sirius)) throws -> MethodSpec {
        let s = text.trimmingCharacters(in: .whitespaces)
        let pieces = s.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        let head = pieces[0]
        if head == "full" {
            guard pieces.count == 1 else { throw MethodError("\(text.debugDescription): full takes no options") }
            return .full
        }
        var rest = Substring(head)
        var kind = MethodKind.sparse
        if rest.hasPrefix("sirius/") { kind = .sirius; rest = rest.dropFirst("sirius/".count) }
        let parts = rest.split(separator: "@", omittingEmptySubsequences: false)
        guard let sp = parts.first.flatMap({ SparsityKind(rawValue: String($0)) }), parts.count <= 2 else {
            throw MethodError("bad method \(text.debugDescription): use full, griffin@D, cats@D, sirius/griffin@D or sirius/cats@D (D = density kept, 0–1), optionally followed by ,period=K ,threshold=T ,width=W ,adaptive=CONF for Sirius")
        }
        var density = base.density
        if parts.count == 2 {
            guard let d = Double(parts[1]) else {
                throw MethodError("bad density in \(text.debugDescription): \(String(parts[1]).debugDescription) is not a number; write e.g. \(sp.rawValue)@0.5")
            }
            density = d
        }
        var m = base
        m.kind = kind; m.sparsity = sp; m.density = density
        for option in pieces.dropFirst() {
            let kv = option.split(separator: "=", maxSplits: 1).map(String.init)
            guard kind == .sirius, kv.count == 2, let key = MethodOption(rawValue: kv[0]), let value = Double(kv[1]) else {
                throw MethodError("bad option \(option.debugDescription) in \(text.debugDescription): a Sirius method takes period=K, threshold=T, width=W or adaptive=CONF (e.g. sirius/griffin@0.5,period=8)")
            }
            try m.set(key, value)
        }
        m.name = s
        if kind == .sirius, let a = m.adaptivePeriod, !pieces.dropFirst().contains(where: { $0.hasPrefix("adaptive=") }) {
            m.name += ",adaptive=\(format(a))"
        }
        try m.validate()
        return m
    }

    /// Sets one knob by its option name (method syntax and sweeps).
    public mutating func set(_ option: MethodOption, _ value: Double) throws {
        switch option {
        case .density: density = value
        case .threshold: threshold = value
        case .adaptive: adaptivePeriod = value
        case .period, .width:
            guard value == value.rounded() else { throw MethodError("\(option.rawValue) must be a whole number, not \(value)") }
            if option == .period { period = Int(value) } else { treeWidth = Int(value) }
        }
    }

    /// Checks every knob's range; the error names the knob and its allowed values.
    public func validate() throws {
        guard density > 0 && density <= 1 else { throw MethodError("density \(density) of \(name) must be in (0, 1] (the fraction of MLP neurons kept)") }
        guard kind != .sirius || (2...64).contains(period) else { throw MethodError("period \(period) of \(name) must be between 2 and 64") }
        guard kind != .sirius || (1...16).contains(treeWidth) else { throw MethodError("tree width \(treeWidth) of \(name) must be between 1 and 16") }
        guard threshold >= 0 && threshold <= 1 else { throw MethodError("threshold \(threshold) of \(name) must be in [0, 1]") }
        if let a = adaptivePeriod, kind == .sirius {
            guard a > 0 && a < 1 else { throw MethodError("adaptive period bound \(a) of \(name) must be in (0, 1) (the sparse model's probability of its draft below which a period ends)") }
            guard treeWidth == 1 else { throw MethodError("\(name): the adaptive period needs tree width 1 (a chain of drafts), not \(treeWidth)") }
        }
        guard acceptanceTemperature > 0 else { throw MethodError("acceptance temperature of \(name) must be > 0") }
        if isSparse && sparsity == .cats && catsMode == .threshold && calibration == nil {
            throw MethodError("\(name) uses CATS threshold mode, which needs a calibration (make one with `sirius-worker calibrate --density \(density) --out FILE`, then pass --calibration FILE)")
        }
    }

    // MARK: JSON

    enum CodingKeys: String, CodingKey {
        case name, kind, sparsity, density, catsMode, calibration, period, threshold, acceptance, acceptanceTemperature, treeWidth
        case adaptivePeriod
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let kind = try c.decode(MethodKind.self, forKey: .kind)
        self.init(name: try c.decode(String.self, forKey: .name), kind: kind,
                  sparsity: try c.decodeIfPresent(SparsityKind.self, forKey: .sparsity) ?? .griffin,
                  density: try c.decodeIfPresent(Double.self, forKey: .density) ?? MethodDefaults.density,
                  catsMode: try c.decodeIfPresent(CATSMode.self, forKey: .catsMode) ?? MethodDefaults.catsMode,
                  calibration: try c.decodeIfPresent(CATSCalibration.self, forKey: .calibration),
                  period: try c.decodeIfPresent(Int.self, forKey: .period) ?? MethodDefaults.period,
                  threshold: try c.decodeIfPresent(Double.self, forKey: .threshold) ?? MethodDefaults.threshold,
                  acceptance: try c.decodeIfPresent(AcceptanceRule.self, forKey: .acceptance) ?? MethodDefaults.acceptance,
                  acceptanceTemperature: try c.decodeIfPresent(Double.self, forKey: .acceptanceTemperature) ?? MethodDefaults.acceptanceTemperature,
                  treeWidth: try c.decodeIfPresent(Int.self, forKey: .treeWidth) ?? MethodDefaults.treeWidth,
                  adaptivePeriod: try c.decodeIfPresent(Double.self, forKey: .adaptivePeriod))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(kind, forKey: .kind)
        guard kind != .full else { return }
        try c.encode(sparsity, forKey: .sparsity)
        try c.encode(density, forKey: .density)
        if catsMode != MethodDefaults.catsMode { try c.encode(catsMode, forKey: .catsMode) }
        try c.encodeIfPresent(calibration, forKey: .calibration)
        guard kind == .sirius else { return }
        try c.encode(period, forKey: .period)
        try c.encode(threshold, forKey: .threshold)
        try c.encode(treeWidth, forKey: .treeWidth)
        try c.encode(acceptance, forKey: .acceptance)
        if acceptanceTemperature != MethodDefaults.acceptanceTemperature { try c.encode(acceptanceTemperature, forKey: .acceptanceTemperature) }
        try c.encodeIfPresent(adaptivePeriod, forKey: .adaptivePeriod)
    }
}

/// The knobs a method's name or a sweep may set.
public enum MethodOption: String, Codable, Sendable, CaseIterable {
    case density, period, threshold, width
    /// The adaptive period's confidence bound (`MethodSpec.adaptivePeriod`).
    case adaptive
}

/// A sweep: one knob over several values, expanding the methods that use it (sirius-coord start --sweep
/// density=0.3,0.5,0.7). `density` expands the sparse and Sirius methods, `period`, `threshold` and
/// `width` the Sirius methods; `full` stays once.
public struct MethodSweep: Codable, Sendable, Hashable {
    public var parameter: MethodOption
    public var values: [Double]

    public init(parameter: MethodOption, values: [Double]) { self.parameter = parameter; self.values = values }

    /// `density=0.3,0.4,0.5`.
    public static func parse(_ text: String) throws -> MethodSweep {
        let kv = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard kv.count == 2, let p = MethodOption(rawValue: kv[0].trimmingCharacters(in: .whitespaces)) else {
            throw MethodError("bad sweep \(text.debugDescription): write KNOB=V1,V2,… with KNOB one of \(MethodOption.allCases.map(\.rawValue).joined(separator: ", ")), e.g. density=0.3,0.4,0.5,0.6,0.7")
        }
        var values: [Double] = []
        for v in kv[1].split(separator: ",") {
            guard let d = Double(v.trimmingCharacters(in: .whitespaces)) else {
                throw MethodError("bad value \(String(v).debugDescription) in sweep \(text.debugDescription): values are numbers separated by commas")
            }
            values.append(d)
        }
        guard !values.isEmpty, Set(values).count == values.count else {
            throw MethodError("sweep \(text.debugDescription) needs one or more distinct values")
        }
        return MethodSweep(parameter: p, values: values)
    }

    /// Whether the sweep changes `m`.
    public func applies(to m: MethodSpec) -> Bool {
        switch parameter {
        case .density: m.kind != .full
        case .period, .threshold, .width, .adaptive: m.kind == .sirius
        }
    }

    /// The methods over the values, in order: each method the sweep applies to becomes one method per
    /// value (named by the method syntax, with the knob after a comma unless it is the density); the
    /// others stay once. Duplicate names are kept once.
    public func expand(_ methods: [MethodSpec]) throws -> [MethodSpec] {
        var out: [MethodSpec] = [], seen: Set<String> = []
        for m in methods {
            let variants: [MethodSpec]
            if applies(to: m) {
                variants = try values.map { v in
                    var x = m
                    try x.set(parameter, v)
                    x.name = parameter == .density || parameter == .adaptive ? x.syntax : "\(x.syntax),\(parameter.rawValue)=\(MethodSpec.format(v))"
                    try x.validate()
                    return x
                }
            } else {
                variants = [m]
            }
            for v in variants where seen.insert(v.name).inserted { out.append(v) }
        }
        return out
    }
}

/// A method or calibration that cannot be used: says what is wrong and what to write instead.
public struct MethodError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
