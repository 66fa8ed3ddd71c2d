import Foundation

/// `gsm8k` as lm-evaluation-harness 0.4.2 ran it: 5-shot from train, `"Question: {q}\nAnswer:"`,
/// exemplars `"Question: {q}\nAnswer: {full solution}"` joined by blank lines; strict-match
/// (`#### N`) and flexible-extract (last number), both reported, strict first.
///
/// The few-shot exemplars of an example are drawn from train by a generator seeded from
/// (task, example id, run seed) — lm-eval drew them from one task-wide stream, which made them
/// depend on the order of evaluation.
public struct GSM8K: BenchmarkTask {
    public static let name = "gsm8k"
    public static let summary = "GSM8K test (1319), 5-shot from train, Question:/Answer:, strict #### N and flexible last number"
    static let testFile = DataFile("gsm8k/test.jsonl", howToGet: DataSource.gsm8k)
    static let trainFile = DataFile("gsm8k/train.jsonl", howToGet: DataSource.gsm8k)
    public static let dataFiles = [testFile, trainFile]
    public static let fewshot: FewshotPolicy? = FewshotPolicy(default: 5, maximum: nil)
    public static let stopStrings = ["Question:", "</s>", "<|im_end|>"]
    public static let generationLimit = GenerationLimit.newTokens(256)
    public static let metricNames = ["strict-match", "flexible-extract"]
    static let strict = TextPattern("#### (\\-?[0-9\\.\\,]+)")

    public let examples: [TaskExample]
    let train: [(question: String, answer: String)]

    public static func load(_ configuration: TaskConfiguration) throws -> GSM8K {
        let dir = configuration.dataDirectory
        return GSM8K(examples: GSM8KMetric.examples(try GSM8KMetric.load(testFile, from: dir), split: "test"),
                     train: try GSM8KMetric.load(trainFile, from: dir))
    }

    public func prompt(for example: TaskExample, options: PromptOptions) throws -> Prompt {
        let shots = try Self.resolveFewshot(options.numFewshot)
        guard shots <= train.count else {
            throw TaskError.invalidOption("--num-fewshot \(shots) exceeds the \(train.count) training examples")
        }
        var rng = ExampleSeed.generator(task: Self.name, exampleID: example.id, runSeed: options.runSeed)
        let chosen = rng.sampleIndices(shots, from: train.count)
        var text = ""
        for i in chosen {
            text += "Question: \(train[i].question)\nAnswer: \(train[i].answer)\n\n"
        }
        text += "Question: \(example.input)\nAnswer:"
        return Prompt(segments: [text], addBOS: false, chat: options.chat)
    }

    public static func extract(_ completion: String) -> String? {
        GSM8KMetric.filter(truncate(completion), strict, last: false)
    }

    public static func score(_ completion: String, for example: TaskExample, context: ScoringContext) -> ExampleScore {
        GSM8KMetric.score(completion, reference: example.reference, strict: strict, stops: stopStrings)
    }
}
