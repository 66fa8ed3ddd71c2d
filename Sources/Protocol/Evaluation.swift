import Foundation
@_exported import SiriusMethod

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

/// The part of an engine request that belongs to the example (the same under every method): what a
/// run stores once per example, as one JSON document. A new request field is added here and to
/// `ExampleRequest`, and nowhere in the store.
public struct ExampleInput: Codable, Sendable, Equatable {
    /// Fully rendered prompt text.
    public var prompt: String
    public var stop: [String]
    /// nil: the run's `maxNewTokens`.
    public var maxNewTokens: Int?
    public var promptSegments: [String]?
    public var addBOS: Bool?
    public var chat: Bool?
    public var maxTotalTokens: Int?

    public init(prompt: String, stop: [String], maxNewTokens: Int? = nil, promptSegments: [String]? = nil,
                addBOS: Bool? = nil, chat: Bool? = nil, maxTotalTokens: Int? = nil) {
        self.prompt = prompt; self.stop = stop; self.maxNewTokens = maxNewTokens; self.promptSegments = promptSegments
        self.addBOS = addBOS; self.chat = chat; self.maxTotalTokens = maxTotalTokens
    }
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
    /// Decode this example alone (batch 1), for the report's latency figures (`--timing-sample`). Its
    /// result is the same bits either way; only its timings mean something more.
    public var timingSample: Bool?

    public init(task: String, exampleId: String, prompt: String, stop: [String], maxNewTokens: Int,
                method: MethodSpec, seed: UInt64, promptSegments: [String]? = nil, addBOS: Bool? = nil,
                chat: Bool? = nil, maxTotalTokens: Int? = nil, timingSample: Bool? = nil) {
        self.task = task; self.exampleId = exampleId; self.prompt = prompt; self.stop = stop
        self.maxNewTokens = maxNewTokens; self.method = method; self.seed = seed
        self.promptSegments = promptSegments; self.addBOS = addBOS; self.chat = chat
        self.maxTotalTokens = maxTotalTokens; self.timingSample = timingSample
    }

    public var key: ResultKey { ResultKey(task: task, exampleId: exampleId, method: method.name) }

    /// The request for `input` under `method`.
    public init(task: String, exampleId: String, input: ExampleInput, method: MethodSpec, seed: UInt64,
                defaultMaxNewTokens: Int, timingSample: Bool? = nil) {
        self.init(task: task, exampleId: exampleId, prompt: input.prompt, stop: input.stop,
                  maxNewTokens: input.maxNewTokens ?? defaultMaxNewTokens, method: method, seed: seed,
                  promptSegments: input.promptSegments, addBOS: input.addBOS, chat: input.chat,
                  maxTotalTokens: input.maxTotalTokens, timingSample: timingSample)
    }
}

/// What the engine returns for one example.
public struct ExampleOutcome: Codable, Sendable, Equatable {
    /// Generated text after stop-string trimming (prompt not included).
    public var text: String
    public var promptTokens: Int
    public var generatedTokens: Int
    /// `eos`, `stop`, `length` or `context`.
    public var stopReason: String
    /// Raw counts (sirius-method.md §5, §11); AAL = Σ advancedTokens / Σ periods over all rows.
    public var counters: DecodeCounters
    /// Fraction of weight bytes one sparse step reads relative to a dense step (§11); nil for full.
    public var modelDensity: Double?
    /// The paper's parameter-count density d (§5.2), used in effective density; nil for full.
    public var paramDensity: Double?
    public var timings: PhaseTimings
    /// How the example was decoded (not hashed: it depends on the worker and on what ran before).
    public var execution: ExecutionInfo?

    public init(text: String, promptTokens: Int, generatedTokens: Int, stopReason: String,
                counters: DecodeCounters = DecodeCounters(), modelDensity: Double? = nil,
                paramDensity: Double? = nil, timings: PhaseTimings = PhaseTimings(), execution: ExecutionInfo? = nil) {
        self.text = text; self.promptTokens = promptTokens; self.generatedTokens = generatedTokens
        self.stopReason = stopReason; self.counters = counters; self.modelDensity = modelDensity
        self.paramDensity = paramDensity; self.timings = timings; self.execution = execution
    }

    /// Hash of the deterministic fields only (§4.6 item 7): timings and execution details are left out.
    public var resultHash: String {
        var h = StableHasher()
        h.combine(text)
        h.combine(promptTokens); h.combine(generatedTokens); h.combine(stopReason)
        for v in counters.hashedCounts { h.combine(v) }
        h.combine(modelDensity.map { String($0) } ?? "-")
        h.combine(paramDensity.map { String($0) } ?? "-")
        return h.hex
    }
}

/// How an example was decoded: the engine's numerics and threads, its batch, whether it shared passes
/// with other examples, and how much of its prompt came from the prefix cache. Timings of an example
/// decoded alone are per-example latency; the others are not.
public struct ExecutionInfo: Codable, Sendable, Equatable {
    public var numerics: String?
    public var threads: Int?
    /// The worker's batch size.
    public var batchSize: Int?
    /// No pass of this example held another example (timing samples, or a batch of one).
    public var decodedAlone: Bool
    /// Prompt tokens whose K/V came from the prefix cache.
    public var reusedPromptTokens: Int

    public init(numerics: String? = nil, threads: Int? = nil, batchSize: Int? = nil, decodedAlone: Bool = true,
                reusedPromptTokens: Int = 0) {
        self.numerics = numerics; self.threads = threads; self.batchSize = batchSize
        self.decodedAlone = decodedAlone; self.reusedPromptTokens = reusedPromptTokens
    }
}

/// Failure classes a worker reports in `FAIL` (§4.2).
public enum FailureClass: String, Codable, Sendable {
    case retryable, oom, engineError = "engine_error", fatalConfig = "fatal_config"
}
