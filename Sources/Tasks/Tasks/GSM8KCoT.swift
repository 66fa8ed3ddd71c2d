import Foundation

/// `gsm8k_cot` as lm-evaluation-harness 0.4.2 ran it (task version 3.0): the 8 fixed Wei et al.
/// exemplars inline in `doc_to_text` ("Q:/A:"), stop at `Q:`; strict-match
/// `The answer is (number).` and flexible-extract (last number).
public struct GSM8KCoT: BenchmarkTask {
    public static let name = "gsm8k-cot"
    public static let summary = "GSM8K test (1319) with the 8 fixed CoT exemplars, Q:/A:, strict 'The answer is N.' and flexible last number"
    static let testFile = DataFile("gsm8k/test.jsonl", howToGet: DataSource.gsm8k)
    static let yamlFile = DataFile("cot-prompts/gsm8k-cot.yaml", howToGet: DataSource.lmEvalWheel)
    public static let dataFiles = [testFile, yamlFile]
    public static let fewshot: FewshotPolicy? = FewshotPolicy(default: 8, maximum: 8)
    public static let stopStrings = ["Q:", "</s>", "<|im_end|>"]
    public static let generationLimit = GenerationLimit.newTokens(256)
    public static let metricNames = ["strict-match", "flexible-extract"]
    static let strict = TextPattern("The answer is (\\-?[0-9\\.\\,]+).")
    static let placeholder = "Q: {{question}}\nA:"

    public let examples: [TaskExample]
    /// The exemplars of `doc_to_text`, each "Q: …\nA: … The answer is N."
    let exemplars: [String]

    public static func load(_ configuration: TaskConfiguration) throws -> GSM8KCoT {
        let dir = configuration.dataDirectory
        let yamlPath = try dir.require(yamlFile).path
        let template: String
        do {
            template = try YAMLScalar.doubleQuoted(key: "doc_to_text", in: try dir.text(yamlFile))
        } catch let error as YAMLScalar.Failure {
            throw TaskError.malformed(path: yamlPath, line: nil, field: "doc_to_text", message: "cannot read the double-quoted template (\(error))")
        }
        guard template.hasSuffix(placeholder) else {
            throw TaskError.malformed(path: yamlPath, line: nil, field: "doc_to_text", message: "expected the template to end with \"Q: {{question}}\\nA:\"")
        }
        let prefix = String(template.dropLast(placeholder.count))
        let exemplars = prefix.components(separatedBy: "\n\n").filter { !$0.isEmpty }
        guard prefix.isEmpty || prefix.hasSuffix("\n\n") else {
            throw TaskError.malformed(path: yamlPath, line: nil, field: "doc_to_text", message: "exemplars must be separated by blank lines")
        }
        return GSM8KCoT(examples: GSM8KMetric.examples(try GSM8KMetric.load(testFile, from: dir), split: "test"),
                        exemplars: exemplars)
    }

    public func prompt(for example: TaskExample, options: PromptOptions) throws -> Prompt {
        let shots = min(try Self.resolveFewshot(options.numFewshot), exemplars.count)
        let prefix = exemplars.prefix(shots).map { $0 + "\n\n" }.joined()
        return Prompt(segments: [prefix + "Q: \(example.input)\nA:"], addBOS: false, chat: options.chat)
    }

    public static func extract(_ completion: String) -> String? {
        GSM8KMetric.filter(truncate(completion), strict, last: false)
    }

    public static func score(_ completion: String, for example: TaskExample, context: ScoringContext) -> ExampleScore {
        GSM8KMetric.score(completion, reference: example.reference, strict: strict, stops: stopStrings)
    }
}
