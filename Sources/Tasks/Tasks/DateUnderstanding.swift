import Foundation

/// `date` as the reference CSR loop ran it: BIG-bench `date_understanding` with its first 10
/// items dropped, the formatted input verbatim (`"Q: {input}\nA:"`) after the 5-shot CoT prompt
/// file, stop at `Q:`. The answer (text between "so the answer is " and the next ".") matches the
/// MM/DD/YYYY target exactly, or field by field with one leading zero per field ignored.
///
/// Item selection: the reference concatenated the Hugging Face conversion's train and validation
/// splits and dropped the first 10; here the file order of `task.json` is used, first 10 dropped.
public struct DateUnderstanding: BenchmarkTask {
    public static let name = "date"
    public static let summary = "BIG-bench date_understanding (369, first 10 dropped), 5-shot CoT, MM/DD/YYYY"
    static let dataFile = DataFile("bigbench/date_understanding/task.json", howToGet: DataSource.bigbench("date_understanding"))
    static let promptFile = DataFile("cot-prompts/date_cot_prompts_5shot.txt", howToGet: DataSource.cotPrompt("date_cot_prompts_5shot.txt"))
    public static let dataFiles = [dataFile, promptFile]
    public static let fewshot: FewshotPolicy? = FewshotPolicy(default: 5, maximum: 5)
    public static let stopStrings = AnswerPin.stopStrings
    public static let generationLimit = GenerationLimit.newTokens(256)
    public static let metricNames = ["accuracy"]
    /// The reference runs dropped the first 10 items.
    public static let dropped = 10

    public let examples: [TaskExample]
    let promptFile: CoTPromptFile

    public static func load(_ configuration: TaskConfiguration) throws -> DateUnderstanding {
        let dir = configuration.dataDirectory
        let task = try BigBenchTask.load(dataFile, from: dir)
        let examples = task.examples.dropFirst(dropped).enumerated().map { i, e in
            TaskExample(id: "date_understanding/\(e.fileIndex)", index: i, input: e.input,
                        reference: e.bestTargets.first ?? "", fields: ["question": e.inputs])
        }
        return DateUnderstanding(examples: examples, promptFile: try CoTPromptFile.load(promptFile, from: dir))
    }

    public func prompt(for example: TaskExample, options: PromptOptions) throws -> Prompt {
        chainOfThoughtPrompt(promptFile, question: example.fields["question"] ?? "Q: \(example.input)\nA:",
                             shots: try Self.resolveFewshot(options.numFewshot), chat: options.chat)
    }

    public static func extract(_ completion: String) -> String? { AnswerPin.phrase(completion) }

    /// The reference's comparison: equal, or three "/"-separated fields equal after removing at
    /// most one leading "0" from each (an empty field fails).
    public static func datesMatch(_ answer: String, _ expected: String) -> Bool {
        if answer == expected { return true }
        var a = answer.components(separatedBy: "/")
        var e = expected.components(separatedBy: "/")
        guard a.count == e.count, a.count >= 3 else { return false }
        for i in 0..<3 {
            guard !a[i].isEmpty, !e[i].isEmpty else { return false }
            if e[i].hasPrefix("0") { e[i].removeFirst() }
            if a[i].hasPrefix("0") { a[i].removeFirst() }
            if a[i] != e[i] { return false }
        }
        return true
    }

    public static func score(_ completion: String, for example: TaskExample, context: ScoringContext) -> ExampleScore {
        let answer = extract(completion)
        return AnswerPin.score(answer: answer, correct: answer.map { datesMatch($0, example.reference) } ?? false)
    }
}
