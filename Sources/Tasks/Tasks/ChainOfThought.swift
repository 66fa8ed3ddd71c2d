import Foundation

/// The 5-shot chain-of-thought prompt files of the reference CSR runs
/// (`CommonSenseReasoning/main.py`, `{task}_cot_prompts_5shot.txt`).
struct CoTPromptFile: Sendable {
    /// The file as the reference used it: literal `\n` sequences and backslashes removed.
    let text: String
    /// Its exemplars (blocks separated by a blank line).
    let exemplars: [String]

    init(text raw: String) {
        text = raw.replacingOccurrences(of: "\\n", with: "").replacingOccurrences(of: "\\", with: "")
        exemplars = text.components(separatedBy: "\n\n").filter {
            !$0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
        }
    }

    static func load(_ file: DataFile, from directory: DataDirectory) throws -> CoTPromptFile {
        let prompt = CoTPromptFile(text: try directory.text(file))
        guard !prompt.exemplars.isEmpty else {
            throw TaskError.malformed(path: try directory.require(file).path, line: nil, field: nil, message: "no exemplars")
        }
        return prompt
    }

    /// The few-shot prefix with the first `count` exemplars; the whole file, byte for byte, when
    /// `count` is the file's exemplar count (what the reference ran).
    func prefix(_ count: Int) -> String {
        if count >= exemplars.count { return text }
        if count == 0 { return "" }
        return exemplars.prefix(count).joined(separator: "\n\n") + "\n\n"
    }
}

/// The CSR loop's prompt: the prompt file (tokenized with BOS) followed by the question
/// (tokenized without special tokens), as two segments.
func chainOfThoughtPrompt(_ file: CoTPromptFile, question: String, shots: Int, chat: Bool) -> Prompt {
    Prompt(segments: [file.prefix(shots), question], addBOS: true, chat: chat)
}

/// The CSR loop's answer reading: on the lowercased text, the first `"so the answer is "`, then
/// the first `"."` after it.
enum AnswerPin {
    static let pin = "so the answer is "
    /// The CSR loop stops generation at `Q:` only.
    static let stopStrings = ["Q:"]

    /// (lowercased text, index just after the pin, index of the period), or nil when the pin or
    /// the period is missing. The reference read garbage (`find` returned -1) in those cases, which
    /// never matched a reference in practice; here they are "no answer".
    static func locate(_ completion: String) -> (text: ScalarText, start: Int, period: Int)? {
        let text = ScalarText(truncateAtStopStrings(completion, stopStrings).lowercased())
        guard let pinAt = text.find(pin) else { return nil }
        guard let period = text.find(".", from: pinAt) else { return nil }
        return (text, pinAt + pin.unicodeScalars.count, period)
    }

    /// The text between the pin and the period (StrategyQA, Date, Sports).
    static func phrase(_ completion: String) -> String? {
        guard let (text, start, period) = locate(completion) else { return nil }
        return text[start..<period]
    }

    static func score(answer: String?, correct: Bool) -> ExampleScore {
        ExampleScore(metrics: [MetricOutcome(name: "accuracy", answer: answer, correct: correct)])
    }
}

/// A BIG-bench `task.json`, with each example's input formatted as the BIG-bench → Hugging Face
/// conversion (tasksource/bigbench) did: `task_prefix + example_input_prefix + input +
/// example_output_prefix`, stripped (prefixes default to `"\nQ: "` and `"\nA: "`).
struct BigBenchTask: Sendable {
    struct Example: Sendable {
        /// Position in the file's `examples` array.
        let fileIndex: Int
        let input: String
        /// The formatted `inputs` string.
        let inputs: String
        /// The choices with the highest score (`targets` for tasks without `target`).
        let bestTargets: [String]
        /// `target_scores` keys with score 1 (the reference's `multiple_choice_targets[scores.index(1)]`).
        let positiveTargets: [String]
    }

    let examples: [Example]

    static func load(_ file: DataFile, from directory: DataDirectory) throws -> BigBenchTask {
        let path = try directory.require(file).path
        let root = try JSONLines.parseObject(try directory.text(file), path: path)
        let taskPrefix = try root.optionalString("task_prefix") ?? ""
        let inputPrefix = try root.optionalString("example_input_prefix") ?? "\nQ: "
        let outputPrefix = try root.optionalString("example_output_prefix") ?? "\nA: "
        let raw = try root.array("examples")
        var examples: [Example] = []
        for (i, value) in raw.enumerated() {
            guard let object = value as? [String: Any] else {
                throw TaskError.malformed(path: path, line: nil, field: "examples[\(i)]", message: "expected an object")
            }
            let record = JSONRecord(object: object, path: path, line: nil)
            let input: String
            do { input = try record.string("input") } catch {
                throw TaskError.malformed(path: path, line: nil, field: "examples[\(i)].input", message: "missing or not a string")
            }
            guard let scores = object["target_scores"] as? [String: Any], !scores.isEmpty else {
                throw TaskError.malformed(path: path, line: nil, field: "examples[\(i)].target_scores", message: "missing or empty")
            }
            var numeric: [(String, Double)] = []
            for key in scores.keys.sorted() {
                guard let n = scores[key] as? NSNumber else {
                    throw TaskError.malformed(path: path, line: nil, field: "examples[\(i)].target_scores.\(key)", message: "expected a number")
                }
                numeric.append((key, n.doubleValue))
            }
            let best = numeric.map(\.1).max()!
            examples.append(Example(
                fileIndex: i, input: input,
                inputs: pythonStrip(taskPrefix + inputPrefix + input + outputPrefix),
                bestTargets: numeric.filter { $0.1 == best }.map(\.0),
                positiveTargets: numeric.filter { $0.1 == 1 }.map(\.0)))
        }
        return BigBenchTask(examples: examples)
    }
}
