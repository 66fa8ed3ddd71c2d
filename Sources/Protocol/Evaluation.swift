import Foundation

/// One decoding method of a run (sirius-method.md §11 vocabulary).
///
/// `full` is dense greedy decoding; `sparse` uses `sparsity` (griffin or cats) at `density`
/// (fraction of MLP neurons kept); `sirius` corrects that sparse model with period `period`,
/// threshold `threshold`, tree width `treeWidth`. `name` is the label used in keys and reports.
public struct MethodSpec: Codable, Sendable, Hashable {
    public enum Kind: String, Codable, Sendable { case full, sparse, sirius }

    public var name: String
    public var kind: Kind
    public var sparsity: String?
    public var density: Double?
    public var period: Int?
    public var threshold: Double?
    public var treeWidth: Int?
    public var acceptance: String?
    public var catsMode: String?

    public init(name: String, kind: Kind, sparsity: String? = nil, density: Double? = nil,
                period: Int? = nil, threshold: Double? = nil, treeWidth: Int? = nil,
                acceptance: String? = nil, catsMode: String? = nil) {
        self.name = name; self.kind = kind; self.sparsity = sparsity; self.density = density
        self.period = period; self.threshold = threshold; self.treeWidth = treeWidth
        self.acceptance = acceptance; self.catsMode = catsMode
    }

    public static let full = MethodSpec(name: "full", kind: .full)
}

/// Identifies one stored result: one row per (run, task, example, method).
public struct ResultKey: Codable, Sendable, Hashable, CustomStringConvertible {
    public var task: String
    public var exampleId: String
    public var method: String
    public init(task: String, exampleId: String, method: String) {
        self.task = task; self.exampleId = exampleId; self.method = method
    }
    public var description: String { "\(task)/\(exampleId)/\(method)" }
}

/// What the worker hands the engine for one example. Everything the engine needs is here, so a
/// worker holds no dataset: the prompt is already rendered (few-shot included) by the coordinator.
public struct ExampleRequest: Codable, Sendable, Equatable {
    public var task: String
    public var exampleId: String
    /// Fully rendered prompt text (chat template not applied; the engine applies the model's).
    public var prompt: String
    /// Generation stops at the first of these (text after it is trimmed), or at EOS.
    public var stop: [String]
    public var maxNewTokens: Int
    public var method: MethodSpec
    /// Per-example seed, `exampleSeed(runSeed:task:exampleId:)`; greedy decoding ignores it.
    public var seed: UInt64
    /// The prompt as the parts the reference runs tokenized separately and concatenated as token
    /// ids (`prompt` is their concatenation); nil = tokenize `prompt` whole.
    public var promptSegments: [String]?
    /// Prepend the tokenizer's BOS before the first segment (nil = false).
    public var addBOS: Bool?
    /// Wrap the prompt in the model's chat format (nil = false: raw prompt, as the paper).
    public var chat: Bool?
    /// Cap on prompt + generated tokens (bigcode-style limit); the engine generates at most
    /// `min(maxNewTokens, maxTotalTokens − promptTokens)`. nil = no such cap.
    public var maxTotalTokens: Int?

    public init(task: String, exampleId: String, prompt: String, stop: [String], maxNewTokens: Int,
                method: MethodSpec, seed: UInt64, promptSegments: [String]? = nil, addBOS: Bool? = nil,
                chat: Bool? = nil, maxTotalTokens: Int? = nil) {
        self.task = task; self.exampleId = exampleId; self.prompt = prompt; self.stop = stop
        self.maxNewTokens = maxNewTokens; self.method = method; self.seed = seed
        self.promptSegments = promptSegments; self.addBOS = addBOS; self.chat = chat
        self.maxTotalTokens = maxTotalTokens
    }

    public var key: ResultKey { ResultKey(task: task, exampleId: exampleId, method: method.name) }
}

/// Raw Sirius counters for one example (sirius-method.md §5, §11). Counts, never averages:
/// AAL = Σ advancedTokens / Σ periods over all rows.
///
/// - `periods`, `advancedTokens`: periods counted for AAL and Σ(L+1) over them, **excluding each
///   sequence's final period** (§5.1). Zero for `full` and `sparse`.
public struct SiriusCounters: Codable, Sendable, Equatable {
    public var periods = 0
    public var advancedTokens = 0
    public var rollbacks = 0
    public var rolledBackTokens = 0
    public var sparseSteps = 0
    public var densePasses = 0
    public var tokensVerified = 0

    public init(periods: Int = 0, advancedTokens: Int = 0, rollbacks: Int = 0, rolledBackTokens: Int = 0,
                sparseSteps: Int = 0, densePasses: Int = 0, tokensVerified: Int = 0) {
        self.periods = periods; self.advancedTokens = advancedTokens; self.rollbacks = rollbacks
        self.rolledBackTokens = rolledBackTokens; self.sparseSteps = sparseSteps
        self.densePasses = densePasses; self.tokensVerified = tokensVerified
    }
}

/// Wall-clock seconds per phase. Non-deterministic: excluded from `resultHash`.
public struct PhaseTimings: Codable, Sendable, Equatable {
    public var prefillSeconds = 0.0
    public var sparseSeconds = 0.0
    public var verifySeconds = 0.0
    /// Prefill + decode, as measured by the engine.
    public var totalSeconds = 0.0

    public init(prefillSeconds: Double = 0, sparseSeconds: Double = 0, verifySeconds: Double = 0,
                totalSeconds: Double = 0) {
        self.prefillSeconds = prefillSeconds; self.sparseSeconds = sparseSeconds
        self.verifySeconds = verifySeconds; self.totalSeconds = totalSeconds
    }
}

/// What the engine returns for one example.
public struct ExampleOutcome: Codable, Sendable, Equatable {
    /// Generated text after stop-string trimming (prompt not included).
    public var text: String
    public var promptTokens: Int
    public var generatedTokens: Int
    /// `eos`, `stop`, or `length`.
    public var stopReason: String
    public var counters: SiriusCounters
    /// Fraction of weight bytes one sparse step reads relative to a dense step (§11); nil for full.
    public var modelDensity: Double?
    /// The paper's parameter-count density d (§5.2), used in effective density; nil for full.
    public var paperDensity: Double?
    public var timings: PhaseTimings

    public init(text: String, promptTokens: Int, generatedTokens: Int, stopReason: String,
                counters: SiriusCounters = SiriusCounters(), modelDensity: Double? = nil,
                paperDensity: Double? = nil, timings: PhaseTimings = PhaseTimings()) {
        self.text = text; self.promptTokens = promptTokens; self.generatedTokens = generatedTokens
        self.stopReason = stopReason; self.counters = counters; self.modelDensity = modelDensity
        self.paperDensity = paperDensity; self.timings = timings
    }

    /// Hash of the deterministic fields only (§4.6 item 7): timings are left out.
    public var resultHash: String {
        var h = StableHasher()
        h.combine(text)
        h.combine(promptTokens); h.combine(generatedTokens); h.combine(stopReason)
        let c = counters
        for v in [c.periods, c.advancedTokens, c.rollbacks, c.rolledBackTokens, c.sparseSteps,
                  c.densePasses, c.tokensVerified] { h.combine(v) }
        h.combine(modelDensity.map { String($0) } ?? "-")
        h.combine(paperDensity.map { String($0) } ?? "-")
        return h.hex
    }
}

/// Failure classes a worker reports in `FAIL` (§4.2).
public enum FailureClass: String, Codable, Sendable {
    case retryable, oom, engineError = "engine_error", fatalConfig = "fatal_config"
}
