import Foundation

/// One benchmark: its data, how a prompt is built, where generation stops, how an answer is read
/// from the generated text and how it is scored. Knows nothing of the engine or the network.
///
/// Extraction and scoring are `static`: they need no data files, only the completion and the
/// example's reference, so the coordinator can score from what its database stores.
///
/// Adding a task is one new file with a type conforming to this protocol, plus its name in
/// `TaskRegistry.all`.
public protocol BenchmarkTask: Sendable {
    /// The name used on the command line and in the result store (`gsm8k`, `humaneval`, …).
    static var name: String { get }
    /// One line for `task list`.
    static var summary: String { get }
    /// The data files the task reads, relative to the data directory.
    static var dataFiles: [DataFile] { get }
    /// How many few-shot exemplars the task allows (`--num-fewshot`); `nil` when it has none.
    static var fewshot: FewshotPolicy? { get }
    /// Strings that end generation (the model's own EOS tokens are added by the worker).
    static var stopStrings: [String] { get }
    /// How long generation may run.
    static var generationLimit: GenerationLimit { get }
    /// Metric names, primary first; `ExampleScore.metrics` lists them in this order.
    static var metricNames: [String] { get }
    /// Whether scoring executes the generated text (in `ScoringContext.sandbox`).
    static var executesCode: Bool { get }

    /// Reads the task's files from the data directory.
    static func load(_ configuration: TaskConfiguration) throws -> Self

    /// The evaluated examples, in canonical order (the reference runs' item selection applied).
    var examples: [TaskExample] { get }

    /// The exact prompt for one example. A pure function of (task, example, options): the few-shot
    /// choice depends only on the example's id and `options.runSeed`.
    func prompt(for example: TaskExample, options: PromptOptions) throws -> Prompt

    /// The answer read from a completion, as the reference run read it; `nil` when there is none.
    static func extract(_ completion: String) -> String?

    /// Scores a completion against the example's reference.
    static func score(_ completion: String, for example: TaskExample, context: ScoringContext) -> ExampleScore
}

extension BenchmarkTask {
    public static var fewshot: FewshotPolicy? { nil }
    public static var executesCode: Bool { false }

    /// The task's name as an instance property (for existentials).
    public var name: String { Self.name }

    /// The first `limit` examples (all when `limit` is nil).
    public func examples(limit: Int?) -> ArraySlice<TaskExample> {
        guard let limit else { return examples[...] }
        return examples.prefix(max(0, limit))
    }

    /// The example with this id, if any.
    public func example(id: String) -> TaskExample? {
        examples.first { $0.id == id }
    }

    /// Everything the worker needs to generate for one example.
    public func request(for example: TaskExample, options: PromptOptions) throws -> GenerationRequest {
        GenerationRequest(task: Self.name, exampleID: example.id,
                          prompt: try prompt(for: example, options: options),
                          stopStrings: Self.stopStrings, limit: Self.generationLimit)
    }

    /// Cuts a completion at the first occurrence of any of the task's stop strings.
    public static func truncate(_ completion: String) -> String {
        truncateAtStopStrings(completion, Self.stopStrings)
    }

    /// Resolves `--num-fewshot` against the task's policy.
    public static func resolveFewshot(_ requested: Int?) throws -> Int {
        guard let policy = fewshot else {
            if let requested, requested != 0 {
                throw TaskError.invalidOption("\(name) has no few-shot exemplars; --num-fewshot must be 0 or omitted")
            }
            return 0
        }
        guard let requested else { return policy.default }
        guard requested >= 0, policy.maximum.map({ requested <= $0 }) ?? true else {
            let range = policy.maximum.map { "0...\($0)" } ?? "≥ 0"
            throw TaskError.invalidOption("--num-fewshot \(requested) is out of range for \(name) (\(range))")
        }
        return requested
    }
}

/// What a task allows for `--num-fewshot`.
public struct FewshotPolicy: Sendable, Hashable, Codable {
    /// What the reference runs used.
    public var `default`: Int
    /// The largest allowed value; `nil` when only the source size bounds it.
    public var maximum: Int?
    public init(default: Int, maximum: Int?) {
        self.default = `default`
        self.maximum = maximum
    }
}

/// Where the data files are.
public struct TaskConfiguration: Sendable {
    public var dataDirectory: DataDirectory
    public init(dataDirectory: DataDirectory = .default) {
        self.dataDirectory = dataDirectory
    }
}

/// Options of one evaluation that change the prompt.
public struct PromptOptions: Sendable, Hashable, Codable {
    /// The run's seed; with the example id it fixes the few-shot choice.
    public var runSeed: UInt64
    /// `--num-fewshot`; `nil` means the task's default (the reference runs' value).
    public var numFewshot: Int?
    /// `--chat`: the worker wraps the prompt text in the model's chat format. The paper used raw
    /// prompts, which stays the default.
    public var chat: Bool
    public init(runSeed: UInt64 = 0, numFewshot: Int? = nil, chat: Bool = false) {
        self.runSeed = runSeed
        self.numFewshot = numFewshot
        self.chat = chat
    }
}

/// One benchmark item, self-contained: scoring needs nothing but this value and the completion.
public struct TaskExample: Sendable, Hashable, Codable {
    /// Stable identifier within the task (the dataset's own id, or `split:index` of the source file).
    public var id: String
    /// Position in the task's canonical list (after the reference runs' item selection).
    public var index: Int
    /// The question as the dataset gives it (for display; prompts are built from `fields`).
    public var input: String
    /// The reference answer as the metric compares it (`18`, `a`, `yes`, `05/01/2021`, …; for
    /// HumanEval the canonical solution).
    public var reference: String
    /// Task-specific data (choices, HumanEval's test code and entry point, …).
    public var fields: [String: String]

    public init(id: String, index: Int, input: String, reference: String, fields: [String: String] = [:]) {
        self.id = id
        self.index = index
        self.input = input
        self.reference = reference
        self.fields = fields
    }

    /// FNV-1a 64 of the example's content, in hex, to detect dataset drift between runs.
    public var contentHash: String {
        var hasher = FNV1a64()
        hasher.combine(id)
        hasher.combine(input)
        hasher.combine(reference)
        for key in fields.keys.sorted() {
            hasher.combine(key)
            hasher.combine(fields[key] ?? "")
        }
        return String(format: "%016llx", hasher.value)
    }
}

/// The prompt for one example.
public struct Prompt: Sendable, Hashable, Codable {
    /// The prompt as parts that the reference runs tokenized separately and concatenated as token
    /// ids (the CoT prompt file, then the question). Tokenizing each part on its own and
    /// concatenating reproduces the reference exactly; `text` is their concatenation.
    public var segments: [String]
    /// Whether the reference runs' tokenizer call added special tokens (a BOS, where the tokenizer
    /// has one) in front of the first segment. lm-eval 0.4.2 did not; the CSR loop and bigcode did.
    public var addBOS: Bool
    /// `--chat`: apply the model's chat format to `text` (the worker does it; raw is the default).
    public var chat: Bool

    public init(segments: [String], addBOS: Bool, chat: Bool = false) {
        self.segments = segments
        self.addBOS = addBOS
        self.chat = chat
    }

    /// The exact prompt text.
    public var text: String { segments.joined() }

    /// The text to feed the tokenizer: raw, or wrapped by `chatFormatter` when `chat` is set.
    public func rendered(chatFormatter: (String) -> String) -> String {
        chat ? chatFormatter(text) : text
    }
}

/// How long generation may run.
public enum GenerationLimit: Sendable, Hashable, Codable, CustomStringConvertible {
    /// At most this many generated tokens (lm-eval and the CSR loop: 256).
    case newTokens(Int)
    /// Prompt plus generation at most this many tokens (bigcode's `max_length_generation`: 512).
    case totalTokens(Int)

    /// The generation budget for a prompt of `promptTokens` tokens (0 when the prompt fills it).
    public func maxNewTokens(promptTokens: Int) -> Int {
        switch self {
        case .newTokens(let n): return n
        case .totalTokens(let n): return max(0, n - promptTokens)
        }
    }

    public var description: String {
        switch self {
        case .newTokens(let n): return "\(n) new tokens"
        case .totalTokens(let n): return "\(n) tokens in total (prompt + generation)"
        }
    }
}

/// Everything the worker needs to generate for one example.
public struct GenerationRequest: Sendable, Hashable, Codable {
    public var task: String
    public var exampleID: String
    public var prompt: Prompt
    public var stopStrings: [String]
    public var limit: GenerationLimit
}

/// The outcome of one metric for one example.
public struct MetricOutcome: Sendable, Hashable, Codable {
    /// The metric's name (`strict-match`, `flexible-extract`, `accuracy`, `pass@1`).
    public var name: String
    /// The answer this metric read from the completion; `nil` when none was found.
    public var answer: String?
    public var correct: Bool
    public init(name: String, answer: String?, correct: Bool) {
        self.name = name
        self.answer = answer
        self.correct = correct
    }
}

/// The score of one completion.
public struct ExampleScore: Sendable, Hashable, Codable {
    /// Every metric of the task, primary first.
    public var metrics: [MetricOutcome]
    /// Extra information (the sandbox outcome for HumanEval).
    public var detail: String?

    public init(metrics: [MetricOutcome], detail: String? = nil) {
        precondition(!metrics.isEmpty, "a score needs at least one metric")
        self.metrics = metrics
        self.detail = detail
    }

    /// The primary metric's verdict.
    public var correct: Bool { metrics[0].correct }
    /// The primary metric's extracted answer.
    public var answer: String? { metrics[0].answer }

    /// The outcome of the named metric.
    public func metric(_ name: String) -> MetricOutcome? {
        metrics.first { $0.name == name }
    }
}

/// What scoring may need beyond the completion: the code sandbox.
public struct ScoringContext: Sendable {
    public var sandbox: PythonSandbox
    public init(sandbox: PythonSandbox = PythonSandbox()) {
        self.sandbox = sandbox
    }
}
