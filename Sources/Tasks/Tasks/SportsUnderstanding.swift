import Foundation

/// `sports` as the reference CSR loop ran it: BIG-bench `sports_understanding` with its first 10
/// items dropped, `"Q: {inputs}\nA:"` after the 5-shot CoT prompt file, stop at `Q:`; the answer
/// (text between "so the answer is " and the next ".") is "plausible" or "implausible".
///
/// `inputs` is the BIG-bench formatting of the example: the task prefix, "\nStatement: ", the
/// sentence, "\nPlausible/implausible?". Item selection: `task.json` file order, first 10 dropped
/// (the reference: Hugging Face train + validation, first 10 dropped).
public struct SportsUnderstanding: BenchmarkTask {
    public static let name = "sports"
    public static let summary = "BIG-bench sports_understanding (1000, first 10 dropped), 5-shot CoT, plausible/implausible"
    static let dataFile = DataFile("bigbench/sports_understanding/task.json", howToGet: DataSource.bigbench("sports_understanding"))
    static let promptFile = DataFile("cot-prompts/sports_cot_prompts_5shot.txt", howToGet: DataSource.cotPrompt("sports_cot_prompts_5shot.txt"))
    public static let dataFiles = [dataFile, promptFile]
    public static let fewshot: FewshotPolicy? = FewshotPolicy(default: 5, maximum: 5)
    public static let stopStrings = AnswerPin.stopStrings
    public static let generationLimit = GenerationLimit.newTokens(256)
    public static let metricNames = ["accuracy"]
    public static let dropped = 10

    public let examples: [TaskExample]
    let promptFile: CoTPromptFile

    public static func load(_ configuration: TaskConfiguration) throws -> SportsUnderstanding {
        let dir = configuration.dataDirectory
        let task = try BigBenchTask.load(dataFile, from: dir)
        let examples = task.examples.dropFirst(dropped).enumerated().map { i, e in
            TaskExample(id: "sports_understanding/\(e.fileIndex)", index: i, input: e.input,
                        reference: e.bestTargets.first ?? "", fields: ["question": "Q: \(e.inputs)\nA:"])
        }
        return SportsUnderstanding(examples: examples, promptFile: try CoTPromptFile.load(promptFile, from: dir))
    }

    public func prompt(for example: TaskExample, options: PromptOptions) throws -> Prompt {
        chainOfThoughtPrompt(promptFile, question: example.fields["question"] ?? "Q: \(example.input)\nA:",
                             shots: try Self.resolveFewshot(options.numFewshot), chat: options.chat)
    }

    public static func extract(_ completion: String) -> String? { AnswerPin.phrase(completion) }

    public static func score(_ completion: String, for example: TaskExample, context: ScoringContext) -> ExampleScore {
        let answer = extract(completion)
        return AnswerPin.score(answer: answer, correct: answer == example.reference)
    }
}
