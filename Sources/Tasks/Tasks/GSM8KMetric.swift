import Foundation

/// lm-evaluation-harness 0.4.2's GSM8K scoring: a regex filter, then `exact_match` with
/// `ignore_case` and `regexes_to_ignore` applied to prediction and reference alike.
enum GSM8KMetric {
    /// `flexible-extract`: the last number-like run in the text.
    static let flexible = TextPattern("(-?[$0-9.,]{2,})|(-?[0-9]+)")
    static let ignored = [TextPattern(","), TextPattern("\\$"), TextPattern("(?s).*#### "), TextPattern("\\.$")]

    /// lm-eval's `RegexFilter`: `findall`, pick one match (first or last), the first non-empty
    /// group of it, stripped; `nil` where lm-eval falls back to `"[invalid]"`.
    static func filter(_ text: String, _ regex: TextPattern, last: Bool) -> String? {
        let matches = regex.findAll(text)
        guard let match = last ? matches.last : matches.first else { return nil }
        guard let group = match.compactMap({ $0 }).first(where: { !$0.isEmpty }) else { return nil }
        return pythonStrip(group)
    }

    /// `exact_match`'s normalisation: remove `,`, `$`, everything through `#### `, a final `.`;
    /// then lowercase.
    static func normalize(_ s: String) -> String {
        var s = s
        for r in ignored { s = r.removeAll(s) }
        return s.lowercased()
    }

    /// Scores with both filters; `strict` is the task's strict-match regex.
    static func score(_ completion: String, reference: String, strict: TextPattern, stops: [String]) -> ExampleScore {
        let text = truncateAtStopStrings(completion, stops)
        let expected = normalize(reference)
        func outcome(_ name: String, _ answer: String?) -> MetricOutcome {
            MetricOutcome(name: name, answer: answer, correct: answer.map { normalize($0) == expected } ?? false)
        }
        return ExampleScore(metrics: [
            outcome("strict-match", filter(text, strict, last: false)),
            outcome("flexible-extract", filter(text, flexible, last: true)),
        ])
    }

    /// The final answer of a GSM8K solution: what follows the last `####`, stripped.
    static func finalAnswer(_ solution: String) -> String {
        pythonStrip(solution.components(separatedBy: "####").last ?? solution)
    }

    /// Reads a GSM8K jsonl file (`question`, `answer`).
    static func load(_ file: DataFile, from directory: DataDirectory) throws -> [(question: String, answer: String)] {
        let path = try directory.require(file).path
        return try JSONLines.parse(try directory.text(file), path: path).map { record in
            let answer = try record.string("answer")
            guard answer.contains("####") else { throw record.fail("answer", "no '#### <number>' final answer") }
            return (try record.string("question"), answer)
        }
    }

    static func examples(_ rows: [(question: String, answer: String)], split: String) -> [TaskExample] {
        rows.enumerated().map { i, row in
            TaskExample(id: "\(split)/\(i)", index: i, input: row.question, reference: finalAnswer(row.answer),
                        fields: ["solution": row.answer])
        }
    }
}
