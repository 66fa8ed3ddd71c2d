/// Raw counters of one generation (sirius-method.md §5, §11): counts, never averages. The engine fills
/// them, the protocol carries them, the store keeps them as columns; AAL and effective density are
/// ratios of their sums, computed here and nowhere else.
///
/// `periods` and `advancedTokens` exclude each sequence's final period (§5.1), which is kept apart in
/// `finalPeriodAdvance` so nothing is lost. Zero for `full`; `sparseSteps` also counts the sparse
/// baseline's decode steps.
public struct DecodeCounters: Codable, Sendable, Equatable {
    public var periods = 0
    public var advancedTokens = 0
    public var finalPeriodAdvance = 0
    public var rollbacks = 0
    public var rolledBackTokens = 0
    public var sparseSteps = 0
    public var densePasses = 0
    public var tokensVerified = 0

    public init(periods: Int = 0, advancedTokens: Int = 0, finalPeriodAdvance: Int = 0, rollbacks: Int = 0,
                rolledBackTokens: Int = 0, sparseSteps: Int = 0, densePasses: Int = 0, tokensVerified: Int = 0) {
        self.periods = periods; self.advancedTokens = advancedTokens; self.finalPeriodAdvance = finalPeriodAdvance
        self.rollbacks = rollbacks; self.rolledBackTokens = rolledBackTokens; self.sparseSteps = sparseSteps
        self.densePasses = densePasses; self.tokensVerified = tokensVerified
    }

    enum CodingKeys: String, CodingKey {
        case periods, advancedTokens, finalPeriodAdvance, rollbacks, rolledBackTokens, sparseSteps, densePasses, tokensVerified
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func int(_ k: CodingKeys) throws -> Int { try c.decodeIfPresent(Int.self, forKey: k) ?? 0 }
        self.init(periods: try int(.periods), advancedTokens: try int(.advancedTokens), finalPeriodAdvance: try int(.finalPeriodAdvance),
                  rollbacks: try int(.rollbacks), rolledBackTokens: try int(.rolledBackTokens), sparseSteps: try int(.sparseSteps),
                  densePasses: try int(.densePasses), tokensVerified: try int(.tokensVerified))
    }

    /// The counts that identify a result (the result hash covers them, in this order).
    public var hashedCounts: [Int] {
        [periods, advancedTokens, rollbacks, rolledBackTokens, sparseSteps, densePasses, tokensVerified]
    }

    /// Average advance length, Σ(L+1)/#periods (nil without a complete period).
    public var aal: Double? { DecodeCounters.aal(advancedTokens: advancedTokens, periods: periods) }

    /// AAL from sums over many rows.
    public static func aal(advancedTokens: Int, periods: Int) -> Double? {
        periods > 0 ? Double(advancedTokens) / Double(periods) : nil
    }

    /// Effective density ((K−1)·d + 1)/AAL (§5.3) for period `k` and the paper's parameter density `d`.
    public static func effectiveDensity(period k: Int, paramDensity d: Double, aal: Double) -> Double {
        effectiveDensity(period: Double(k), paramDensity: d, aal: aal)
    }

    /// The same for a mean period (an adaptive period: tokens verified per dense pass).
    public static func effectiveDensity(period k: Double, paramDensity d: Double, aal: Double) -> Double {
        ((k - 1) * d + 1) / aal
    }

    public static func + (a: DecodeCounters, b: DecodeCounters) -> DecodeCounters {
        DecodeCounters(periods: a.periods + b.periods, advancedTokens: a.advancedTokens + b.advancedTokens,
                       finalPeriodAdvance: a.finalPeriodAdvance + b.finalPeriodAdvance, rollbacks: a.rollbacks + b.rollbacks,
                       rolledBackTokens: a.rolledBackTokens + b.rolledBackTokens, sparseSteps: a.sparseSteps + b.sparseSteps,
                       densePasses: a.densePasses + b.densePasses, tokensVerified: a.tokensVerified + b.tokensVerified)
    }
}

/// Wall-clock seconds per phase of one generation. Not deterministic: never part of a result's hash.
/// In a batched worker a pass's time is counted for every sequence in it (see `timingSample`).
public struct PhaseTimings: Codable, Sendable, Equatable {
    public var prefillSeconds = 0.0
    /// Sparse steps (the sparse baseline's decode steps, or Sirius drafts).
    public var sparseSeconds = 0.0
    /// Sirius verification passes.
    public var verifySeconds = 0.0
    /// Dense decode steps of `full`.
    public var decodeSeconds = 0.0
    /// Prefill + decode, as measured by the engine.
    public var totalSeconds = 0.0

    public init(prefillSeconds: Double = 0, sparseSeconds: Double = 0, verifySeconds: Double = 0,
                decodeSeconds: Double = 0, totalSeconds: Double = 0) {
        self.prefillSeconds = prefillSeconds; self.sparseSeconds = sparseSeconds
        self.verifySeconds = verifySeconds; self.decodeSeconds = decodeSeconds; self.totalSeconds = totalSeconds
    }

    enum CodingKeys: String, CodingKey { case prefillSeconds, sparseSeconds, verifySeconds, decodeSeconds, totalSeconds }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func v(_ k: CodingKeys) throws -> Double { try c.decodeIfPresent(Double.self, forKey: k) ?? 0 }
        self.init(prefillSeconds: try v(.prefillSeconds), sparseSeconds: try v(.sparseSeconds), verifySeconds: try v(.verifySeconds),
                  decodeSeconds: try v(.decodeSeconds), totalSeconds: try v(.totalSeconds))
    }
}
