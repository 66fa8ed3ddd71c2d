import Foundation

/// `strategyqa` as the reference CSR loop ran it: BIG-bench `strategyqa`, the 5-shot CoT prompt
/// file, `"Q: Yes or No: {question}\nA:"`, stop at `Q:`; the answer is the text between
/// "so the answer is " and the next ".", compared with "yes"/"no".
///
/// Item selection: the reference used the Hugging Face conversion's validation split (a subset
/// chosen by BIG-bench's SeqIO bridge); this task evaluates every example of `task.json`, in file
/// order (use `--limit` for a subset).
public struct StrategyQA: BenchmarkTask {
    public static let name = "strategyqa"
    public static let summary = "BIG-bench StrategyQA (2290), 5-shot CoT, yes/no after 'So the answer is'"
    static let dataFile = DataFile("bigbench/strategyqa/task.json", howToGet: DataSource.bigbench("strategyqa"))
    static let promptFile = DataFile("cot-prompts/strategyqa_cot_prompts_5shot.txt", howToGet: DataSource.cotPrompt("strategyqa_cot_prompts_5shot.txt"))
    public static let dataFiles = [dataFile, promptFile]
    public static let fewshot: FewshotPolicy? = FewshotPolicy(default: 5, maximum: 5)
    public static let stopStrings = AnswerPin.stopStrings
    public static let generationLimit = GenerationLimit.newTokens(256)
    public static let metricNames = ["accuracy"]

    public let examples: [TaskExample]
    let promptFile: CoTPromptFile

    public static func load(_ configuration: TaskConfiguration) throws -> StrategyQA {
        let dir = configuration.dataDirectory
        let task = try BigBenchTask.load(dataFile, from: dir)
        let path = try dir.require(dataFile).path
        let examples = try task.examples.enumerated().map { i, e in
            guard let answer = e.positiveTargets.first else {
                throw TaskError.malformed(path: path, line: nil, field: "examples[\(e.fileIndex)].target_scores", message: "no choice with score 1")
            }
            // The reference read `inputs[3:]`: the formatted "Q: {input}\nA:" without its "Q: ".
            let question = String(e.inputs.unicodeScalars.dropFirst(3))
            return TaskExample(id: "strategyqa/\(e.fileIndex)", index: i, input: e.input,
                               reference: answer.lowercased(), fields: ["question": question])
        }
        return StrategyQA(examples: examples, promptFile: try CoTPromptFile.load(promptFile, from: dir))
    }

    public func prompt(for example: TaskExample, options: PromptOptions) throws -> Prompt {
        let question = "Q: Yes or No: \(example.fields["question"] ?? example.input + "\nA:")"
        return chainOfThoughtPrompt(promptFile, question: question, shots: try Self.resolveFewshot(options.numFewshot), chat: options.chat)
    }

    public static func extract(_ completion: String) -> String? { AnswerPin.phrase(completion) }

    public static func score(_ completion: String, for example: TaskExample, context: ScoringContext) -> ExampleScore {
        let answer = extract(completion)
        return AnswerPin.score(answer: answer, correct: answer == example.reference)
    }
}
