import Foundation

/// `humaneval` as the reference bigcode-evaluation-harness run did it: the prompt is
/// `doc["prompt"].strip()`, generation stops at bigcode's stop words (and EOS), prompt plus
/// generation at most 512 tokens; the program `prompt + completion + "\n" + "\n" + test + "\n" +
/// "check(entry_point)"` runs in a sandboxed `python3` with a 3 s limit. pass@1 with one greedy
/// sample.
public struct HumanEval: BenchmarkTask {
    public static let name = "humaneval"
    public static let summary = "HumanEval (164), prompt.strip(), bigcode stop words, executed in a python3 sandbox, pass@1"
    public static let executesCode = true
    static let dataFile = DataFile("humaneval/HumanEval.jsonl.gz", howToGet: DataSource.humanEval)
    public static let dataFiles = [dataFile]
    public static let stopStrings = ["\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\n```", "<file_sep>"]
    public static let generationLimit = GenerationLimit.totalTokens(512)
    public static let metricNames = ["pass@1"]

    public let examples: [TaskExample]

    public static func load(_ configuration: TaskConfiguration) throws -> HumanEval {
        let dir = configuration.dataDirectory
        let path = try dir.require(dataFile).path
        let examples = try JSONLines.parse(try dir.text(dataFile), path: path).enumerated().map { i, record in
            let prompt = try record.string("prompt")
            return TaskExample(
                id: try record.string("task_id"), index: i, input: prompt,
                reference: try record.string("canonical_solution"),
                fields: ["prompt": prompt, "test": try record.string("test"), "entry_point": try record.string("entry_point")])
        }
        return HumanEval(examples: examples)
    }

    public func prompt(for example: TaskExample, options: PromptOptions) throws -> Prompt {
        _ = try Self.resolveFewshot(options.numFewshot)
        return Prompt(segments: [Self.strippedPrompt(example)], addBOS: true, chat: options.chat)
    }

    static func strippedPrompt(_ example: TaskExample) -> String {
        pythonStrip(example.fields["prompt"] ?? example.input)
    }

    /// The completion cut at the first stop word: the code that is executed after the prompt.
    public static func extract(_ completion: String) -> String? { truncate(completion) }

    /// The program that tests a completion (prompt, completion, tests, `check(entry_point)`).
    public static func program(completion: String, for example: TaskExample) -> String? {
        guard let test = example.fields["test"], let entry = example.fields["entry_point"] else { return nil }
        return strippedPrompt(example) + truncate(completion) + "\n" + "\n" + test + "\n" + "check(\(entry))"
    }

    /// The completion that turns the stripped prompt into the dataset's prompt plus its canonical
    /// solution (what the canonical-solution check runs).
    public static func canonicalCompletion(for example: TaskExample) -> String {
        let full = example.fields["prompt"] ?? example.input
        let stripped = strippedPrompt(example)
        // strip() removed leading and trailing whitespace; put the trailing part back.
        var tail = Substring(full)
        if let r = full.range(of: stripped) { tail = full[r.upperBound...] }
        return String(tail) + example.reference
    }

    public static func score(_ completion: String, for example: TaskExample, context: ScoringContext) -> ExampleScore {
        let code = extract(completion)
        guard let program = program(completion: completion, for: example) else {
            return ExampleScore(metrics: [MetricOutcome(name: "pass@1", answer: code, correct: false)],
                                detail: "no tests: the example lacks 'test' and 'entry_point'")
        }
        let result = context.sandbox.run(program)
        return ExampleScore(metrics: [MetricOutcome(name: "pass@1", answer: code, correct: result.passed)],
                            detail: result.summary)
    }
}
