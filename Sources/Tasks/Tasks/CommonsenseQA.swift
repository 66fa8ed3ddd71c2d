import Foundation

/// `csqa` as the reference CSR loop ran it: CommonsenseQA validation (1221), the 5-shot CoT prompt
/// file, `"Q: {q}\nOptions: (a) … (e) …\nA:"`, stop at `Q:`, 256 new tokens. The answer is the
/// character two before the first "." after "so the answer is " (the exemplars end "… (a).").
public struct CommonsenseQA: BenchmarkTask {
    public static let name = "csqa"
    public static let summary = "CommonsenseQA validation (1221), 5-shot CoT, letter before the '.' after 'So the answer is'"
    static let dataFile = DataFile("commonsense_qa/dev_rand_split.jsonl", howToGet: DataSource.csqa)
    static let promptFile = DataFile("cot-prompts/csqa_cot_prompts_5shot.txt", howToGet: DataSource.cotPrompt("csqa_cot_prompts_5shot.txt"))
    public static let dataFiles = [dataFile, promptFile]
    public static let fewshot: FewshotPolicy? = FewshotPolicy(default: 5, maximum: 5)
    public static let stopStrings = AnswerPin.stopStrings
    public static let generationLimit = GenerationLimit.newTokens(256)
    public static let metricNames = ["accuracy"]

    public let examples: [TaskExample]
    let promptFile: CoTPromptFile

    public static func load(_ configuration: TaskConfiguration) throws -> CommonsenseQA {
        let dir = configuration.dataDirectory
        let path = try dir.require(dataFile).path
        let examples = try JSONLines.parse(try dir.text(dataFile), path: path).enumerated().map { i, record in
            // Hugging Face layout: question, choices{label,text}, answerKey.
            // Official layout: question{stem, choices[{label,text}]}, answerKey.
            let question: String
            let options: [String]
            if let stem = record.object["question"] as? [String: Any] {
                let q = JSONRecord(object: stem, path: path, line: record.line)
                question = try q.string("stem")
                options = try q.array("choices").enumerated().map { j, choice in
                    guard let c = choice as? [String: Any], let text = c["text"] as? String else {
                        throw record.fail("question.choices[\(j)].text", "missing or not a string")
                    }
                    return text
                }
            } else {
                question = try record.string("question")
                options = try record.record("choices").strings("text")
            }
            guard options.count == 5 else { throw record.fail("choices", "expected 5 choices, found \(options.count)") }
            let key = try record.string("answerKey")
            guard key.count == 1 else { throw record.fail("answerKey", "expected one letter, found '\(key)'") }
            let id = try record.optionalString("id") ?? "validation/\(i)"
            var fields: [String: String] = [:]
            for (j, option) in options.enumerated() { fields["option\(j)"] = option }
            return TaskExample(id: id, index: i, input: question, reference: key, fields: fields)
        }
        return CommonsenseQA(examples: examples, promptFile: try CoTPromptFile.load(promptFile, from: dir))
    }

    public func prompt(for example: TaskExample, options: PromptOptions) throws -> Prompt {
        let o = (0..<5).map { example.fields["option\($0)"] ?? "" }
        let question = "Q: \(example.input)\nOptions: (a) \(o[0]) (b) \(o[1]) (c) \(o[2]) (d) \(o[3]) (e) \(o[4])\nA:"
        return chainOfThoughtPrompt(promptFile, question: question, shots: try Self.resolveFewshot(options.numFewshot), chat: options.chat)
    }

    public static func extract(_ completion: String) -> String? {
        guard let (text, _, period) = AnswerPin.locate(completion) else { return nil }
        return text[(period - 2)..<(period - 1)]
    }

    public static func score(_ completion: String, for example: TaskExample, context: ScoringContext) -> ExampleScore {
        let answer = extract(completion)
        return AnswerPin.score(answer: answer, correct: answer == example.reference.lowercased())
    }
}
