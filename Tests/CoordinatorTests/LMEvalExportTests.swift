import Foundation
import Testing
import SiriusTasks
@testable import SiriusProtocol
@testable import sirius_coord

/// The lm-evaluation-harness export (`LMEvalExport`) against the layout lm-eval 0.4.x itself writes
/// (`Fixtures/lm-eval-layout.json`, recorded by `tools/check-lm-eval-layout.py record` from lm-eval's
/// dummy model) and the report's metrics.
@Suite struct LMEvalExportTests {
    /// A fake-engine run of 8 synthetic examples with the three default methods, exported.
    @Test func finishedRunMatchesLMEvalLayoutAndTheReport() async throws {
        let run = try TestRun(config: TestRun.defaultConfig(examples: 8, shardSize: 4))
        let out = await runCluster(run, ClusterPlan(workers: 1))
        #expect(out.outcome == .completed)
        let report = try Metrics.compute(store: run.store, runId: run.runId)
        let dir = run.dir.appendingPathComponent("lm-eval")
        let now = Date(timeIntervalSince1970: 1_700_000_000.25)
        let urls = try LMEvalExport.write(store: run.store, runId: run.runId, directory: dir, now: now)
        try keepForTheScript(urls, "synthetic")

        // Where lm-eval puts them: DIR/<model>/results_<stamp>.json and samples_<task>_<stamp>.jsonl.
        let stamp = LMEvalExport.timestamp(now)
        #expect(stamp.hasSuffix(".250000"), "\(stamp)")
        let modelDir = dir.appendingPathComponent(run.config.model)
        #expect(urls.first == modelDir.appendingPathComponent("results_\(stamp).json"))
        #expect(urls.count == 1 + run.config.methods.count)

        // The results file parses with Foundation's parser too (not only ours).
        let resultsData = try Data(contentsOf: urls[0])
        #expect(try JSONSerialization.jsonObject(with: resultsData) is [String: Any])
        let results = try LMEvalJSON.decode(resultsData)

        // Layout: every key lm-eval writes, with lm-eval's JSON type, unless lm-eval-omitted.json says why not.
        let fixture = try Fixture.load()
        var checker = LayoutChecker()
        checker.check(fixture.results, results, path: "", rules: fixture.rules.results)
        #expect(checker.errors.isEmpty, "\(checker.errors.joined(separator: "\n"))")

        let task = report.tasks[0]
        #expect(task.task == "synthetic:8")
        let entries = try #require(results["results"]?.objectValue)
        #expect(entries.keys == task.methods.map { "synthetic:8@\($0.method)" })
        for m in task.methods {
            let entry = "synthetic:8@\(m.method)"
            let r = try #require(entries[entry]?.objectValue)
            // The report's accuracy and lm-eval's stderr of that mean.
            #expect(r["exact_match,get-answer"] == .double(m.accuracy))
            #expect(r["exact_match_stderr,get-answer"] == .double((m.accuracy * (1 - m.accuracy) / 7).squareRoot()))
            #expect(r["alias"] == .string(entry) && r["sample_len"] == .int(8))
            #expect(results["n-samples"]?[entry] == .object(["original": .int(8), "effective": .int(8)]))
            #expect(results["n-shot"]?[entry] == .int(0))
            let spec = try #require(run.config.methods.first { $0.name == m.method })
            #expect(results["configs"]?[entry]?["metadata"]?["method"]?["name"] == .string(spec.name))
            #expect(results["configs"]?[entry]?["generation_kwargs"]?["max_gen_toks"] == .int(run.config.maxNewTokens))
            #expect(results["sirius"]?["entries"]?[entry]?["correct"] == .int(m.correct))

            // One samples line per example, each of lm-eval's layout, metric 1 exactly where the store says correct.
            let file = modelDir.appendingPathComponent("samples_\(LMEvalExport.sanitizeTaskName(entry))_\(stamp).jsonl")
            #expect(urls.contains(file), "\(file.lastPathComponent) not written")
            #expect(results["sirius"]?["entries"]?[entry]?["samples_file"] == .string(file.lastPathComponent))
            let lines = try String(decoding: Data(contentsOf: file), as: UTF8.self).split(separator: "\n").map { try LMEvalJSON.decode(Data($0.utf8)) }
            #expect(lines.count == 8)
            let stored = try await run.store.pool.read { db in
                try ResultRecord.filter(sql: "run_id = ? AND method = ?", arguments: [run.runId, m.method]).order(sql: "example_id").fetchAll(db)
            }
            #expect(stored.count == 8)
            var sum = 0.0, hashes = ""
            for (i, line) in lines.enumerated() {
                var c = LayoutChecker()
                c.check(fixture.samplesLine, line, path: "", rules: fixture.rules.samplesLine)
                #expect(c.errors.isEmpty, "line \(i + 1): \(c.errors.joined(separator: "\n"))")
                let r = stored[i]
                #expect(line["doc_id"] == .int(i))
                #expect(line["sirius"]?["example_id"] == .string(r.exampleId))
                #expect(line["resps"] == .array([.array([.string(r.outputText)])]))
                #expect(line["filtered_resps"] == .array([.string(r.extractedAnswer ?? LMEvalExport.invalidAnswer)]))
                #expect(line["exact_match"] == .double(r.correct == true ? 1 : 0))
                if case .double(let v)? = line["exact_match"] { sum += v }
                // lm-eval's hashes: sha256 of json.dumps(doc, indent=2), of the prompt, of the target.
                guard case .string(let prompt)? = line["arguments"]?["gen_args_0"]?["arg_0"],
                      case .string(let target)? = line["target"] else { Issue.record("line \(i + 1) lacks prompt or target"); continue }
                let doc = "{\n  \"id\": \"\(r.exampleId)\",\n  \"input\": \"\(prompt)\",\n  \"reference\": \"\(target)\"\n}"
                #expect(line["doc_hash"] == .string(SHA256.hex(doc)))
                #expect(line["prompt_hash"] == .string(SHA256.hex(prompt)))
                #expect(line["target_hash"] == .string(SHA256.hex(target)))
                for k in ["doc_hash", "prompt_hash", "target_hash"] { if case .string(let h)? = line[k] { hashes += h } }
            }
            #expect(sum / 8 == m.accuracy)
            #expect(results["task_hashes"]?[entry] == .string(SHA256.hex(hashes)))
        }

        // The checker itself: a key lm-eval writes, removed, is reported.
        guard case .object(var broken) = results else { Issue.record("results is not an object"); return }
        broken["n-samples"] = nil
        var c = LayoutChecker()
        c.check(fixture.results, .object(broken), path: "", rules: fixture.rules.results)
        #expect(c.errors == ["n-samples: MISSING"])

        // A second export at the same instant would overwrite: refused.
        #expect(throws: CoordinatorError.self) { try LMEvalExport.write(store: run.store, runId: run.runId, directory: dir, now: now) }
    }

    /// A run with nothing decoded yet but one example declared failed: every example still has a
    /// line (failed / missing, metric 0), values 0, and a one-example task gets lm-eval's "N/A" stderr.
    @Test func partialRunExportsEveryExample() throws {
        var config = TestRun.defaultConfig(examples: 3, shardSize: 4)
        config.tasks = ["synthetic:3", "synthetic:1"]
        let run = try TestRun(config: config)
        try run.store.recordFailure(runId: run.runId, key: ResultKey(task: "synthetic:3", exampleId: "000001", method: "full"),
                                    attempt: 3, workerId: "w1", errorClass: "engine", message: "boom", final: true)
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        let urls = try LMEvalExport.write(store: run.store, runId: run.runId, directory: run.dir, now: now)
        #expect(!LMEvalExport.timestamp(now).contains("."), "whole seconds carry no fraction, as Python's isoformat")
        #expect(urls.count == 1 + 2 * config.methods.count)
        let results = try LMEvalJSON.decode(Data(contentsOf: urls[0]))
        let fixture = try Fixture.load()
        var checker = LayoutChecker()
        checker.check(fixture.results, results, path: "", rules: fixture.rules.results)
        #expect(checker.errors.isEmpty, "\(checker.errors.joined(separator: "\n"))")
        #expect(results["sirius"]?["status"] == .string("pending"))
        #expect(results["results"]?["synthetic:3@full"]?["exact_match,get-answer"] == .double(0))
        #expect(results["results"]?["synthetic:3@full"]?["exact_match_stderr,get-answer"] == .double(0))
        #expect(results["results"]?["synthetic:1@full"]?["exact_match_stderr,get-answer"] == .string("N/A"))
        #expect(results["sirius"]?["entries"]?["synthetic:3@full"]?["failed"] == .int(1))
        #expect(results["sirius"]?["entries"]?["synthetic:3@full"]?["missing"] == .int(2))
        #expect(results["config"]?["device"] == .null)

        let full = try #require(urls.first { $0.lastPathComponent.hasPrefix("samples_synthetic_3_full_") })
        let lines = try String(decoding: Data(contentsOf: full), as: UTF8.self).split(separator: "\n").map { try LMEvalJSON.decode(Data($0.utf8)) }
        #expect(lines.map { $0["sirius"]?["status"] } == [.string("missing"), .string("failed"), .string("missing")])
        #expect(lines.allSatisfy { $0["resps"] == .array([]) && $0["filtered_resps"] == .array([]) && $0["exact_match"] == .double(0) })
    }

    /// Registry tasks: their metric and filter names, few-shot counts and generation limits, the
    /// stored example record as `doc` (its `doc_hash` as CPython computes it), and a scored result.
    @Test func registryTasksExportTheirNamesAndDocs() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sirius-lmeval-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let store = try Store(path: dir.appendingPathComponent("runs.sqlite").path)
        var config = RunConfig()
        config.tasks = ["gsm8k", "humaneval"]
        config.methods = [.full]
        config.limit = 1
        let question = "Natalia sold \"clips\" to 48 friends — ½ in May.\tHow many?"
        let gsm = TaskExample(id: "test:0", index: 0, input: question, reference: "72", fields: ["answer": "48/2 = 24\n#### 72", "question": question])
        let he = TaskExample(id: "HumanEval/0", index: 0, input: "def f():\n", reference: "    return 1\n", fields: ["entry_point": "f"])
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        try store.createRun(id: "r", config: config, tasks: [
            LoadedTask(name: "gsm8k", datasetRev: "rev-g", examples: [RunExample(
                id: gsm.id, input: ExampleInput(prompt: "Question: \(question)\nAnswer:", stop: ["Question:"], maxNewTokens: 256),
                reference: gsm.reference, exampleJSON: String(decoding: try enc.encode(gsm), as: UTF8.self))]),
            LoadedTask(name: "humaneval", datasetRev: "rev-h", examples: [RunExample(
                id: he.id, input: ExampleInput(prompt: "def f():\n", stop: ["\ndef"], maxNewTokens: 512, maxTotalTokens: 512),
                reference: he.reference, exampleJSON: String(decoding: try enc.encode(he), as: UTF8.self))]),
        ])
        try store.pool.write { db in
            try db.execute(sql: """
                INSERT INTO results (run_id, task, example_id, method, lease_id, worker_id, attempt, engine, device, output_text,
                  extracted_answer, correct, stop_reason, prompt_tokens, gen_tokens, periods, advanced_tokens, rollbacks,
                  rolled_back_tokens, sparse_steps, dense_passes, tokens_verified, prefill_s, sparse_s, verify_s, total_s,
                  result_hash, committed_at)
                VALUES ('r', 'gsm8k', 'test:0', 'full', 1, 'w1', 1, 'fake', 'cpu', 'She sold 72 clips. The answer is 72.',
                  '72', 1, 'eos', 20, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5, 'h1', 1000)
                """)
        }
        let urls = try LMEvalExport.write(store: store, runId: "r", directory: dir.appendingPathComponent("out"), now: Date(timeIntervalSince1970: 1_700_000_000))
        try keepForTheScript(urls, "registry")
        let results = try LMEvalJSON.decode(Data(contentsOf: urls[0]))
        let fixture = try Fixture.load()
        var checker = LayoutChecker()
        checker.check(fixture.results, results, path: "", rules: fixture.rules.results)
        #expect(checker.errors.isEmpty, "\(checker.errors.joined(separator: "\n"))")

        // GSM8K: lm-eval's own metric and filter names; one example, so "N/A" stderr; 5-shot by default.
        #expect(results["results"]?["gsm8k@full"]?["exact_match,strict-match"] == .double(1))
        #expect(results["results"]?["gsm8k@full"]?["exact_match_stderr,strict-match"] == .string("N/A"))
        #expect(results["n-shot"]?["gsm8k@full"] == .int(5))
        #expect(results["configs"]?["gsm8k@full"]?["unsafe_code"] == .bool(false))
        #expect(results["configs"]?["gsm8k@full"]?["metadata"]?["dataset_rev"] == .string("rev-g"))
        // HumanEval: pass@1 on the raw completion, code execution, the total-token cap; not decoded, so 0.
        #expect(results["results"]?["humaneval@full"]?["pass@1,none"] == .double(0))
        #expect(results["higher_is_better"]?["humaneval@full"] == .object(["pass@1": .bool(true)]))
        #expect(results["n-shot"]?["humaneval@full"] == .int(0))
        #expect(results["configs"]?["humaneval@full"]?["unsafe_code"] == .bool(true))
        #expect(results["configs"]?["humaneval@full"]?["generation_kwargs"]
                == .object(["until": .array([.string("\ndef")]), "do_sample": .bool(false), "max_gen_toks": .int(512), "max_total_tokens": .int(512)]))
        #expect(results["config"]?["limit"] == .double(1))

        let gsmFile = try #require(urls.first { $0.lastPathComponent.hasPrefix("samples_gsm8k_full_") })
        let line = try LMEvalJSON.decode(Data(contentsOf: gsmFile))
        var c = LayoutChecker()
        c.check(fixture.samplesLine, line, path: "", rules: fixture.rules.samplesLine)
        #expect(c.errors.isEmpty, "\(c.errors.joined(separator: "\n"))")
        #expect(line["doc"]?["fields"]?["answer"] == .string("48/2 = 24\n#### 72"))
        #expect(line["doc"]?["index"] == .int(0))
        // sha256 of CPython's json.dumps(doc, indent=2, ensure_ascii=False) for this doc.
        #expect(line["doc_hash"] == .string("d5ae9589a2355261c909f2ae0aa738d045983de2a4d20fa9929463870c9b1871"))
        #expect(line["filter"] == .string("strict-match"))
        #expect(line["filtered_resps"] == .array([.string("72")]))
        #expect(line["exact_match"] == .double(1))
        #expect(line["sirius"]?["status"] == .string("scored"))
    }

    @Test func namesFollowLMEval() {
        #expect(LMEvalExport.sanitizeTaskName("csqa@sirius/griffin@0.5") == "csqa_sirius_griffin_0_5")
        #expect(LMEvalExport.sanitizeModelName("org/model:v1<x>") == "org__model__v1__x__")
        #expect(LMEvalExport.metricKey(primaryMetric: "strict-match") == ("exact_match", "strict-match"))
        #expect(LMEvalExport.metricKey(primaryMetric: "pass@1") == ("pass@1", "none"))
        #expect(LMEvalExport.metricKey(primaryMetric: "accuracy") == ("exact_match", "get-answer"))
        let utc = TimeZone(identifier: "UTC")!
        #expect(LMEvalExport.timestamp(Date(timeIntervalSince1970: 1_700_000_000.5), timeZone: utc) == "2023-11-14T22-13-20.500000")
        #expect(LMEvalExport.timestamp(Date(timeIntervalSince1970: 1_700_000_000), timeZone: utc) == "2023-11-14T22-13-20")
    }

    /// FIPS 180-4 test vectors, and a multi-block UTF-8 text (digest from Python's hashlib).
    @Test func sha256KnownVectors() {
        #expect(SHA256.hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hex(String(repeating: "a", count: 1000)) == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
        #expect(SHA256.hex("héllo ✓ 55 bytes padding check.........................")
                == "81f5a4c1185e624bd0b533840ed9f3301160470ef80a5ec1895ed5aece7cc051")
    }

    /// The writer produces exactly Python's `json.dumps(v, ensure_ascii=False)` and `indent=2` text
    /// (expected strings printed by CPython 3.11), which `doc_hash` depends on.
    @Test func jsonTextIsPythons() throws {
        let v: LMEvalJSON = .object([
            "a": .array([]), "b": .object([:]), "c": .array([.int(1), .double(2.5), .null, .bool(true), .bool(false)]),
            "d": .object(["e": .string("x\"y\\z\n\t\r\u{08}\u{0C}\u{01}\u{1F} é ✓ 🙂 </>")]),
            "f": .double(1), "g": .double(1e-05), "h": .double(1e16), "i": .double(0.1), "j": .array([.array([.string("k")])]),
            "l": .uint(18446744073709551615),
        ])
        #expect(v.compact() == #"{"a": [], "b": {}, "c": [1, 2.5, null, true, false], "d": {"e": "x\"y\\z\n\t\r\b\f\u0001\u001f é ✓ 🙂 </>"}, "f": 1.0, "g": 1e-05, "h": 1e+16, "i": 0.1, "j": [["k"]], "l": 18446744073709551615}"#)
        #expect(v.indented() == #"""
            {
              "a": [],
              "b": {},
              "c": [
                1,
                2.5,
                null,
                true,
                false
              ],
              "d": {
                "e": "x\"y\\z\n\t\r\b\f\u0001\u001f é ✓ 🙂 </>"
              },
              "f": 1.0,
              "g": 1e-05,
              "h": 1e+16,
              "i": 0.1,
              "j": [
                [
                  "k"
                ]
              ],
              "l": 18446744073709551615
            }
            """#)
        #expect(try LMEvalJSON.decode(Data(v.compact().utf8)) == v)
    }

    /// With SIRIUS_LMEVAL_EXPORT_KEEP=DIR, copies an export to DIR/<name> for
    /// `tools/check-lm-eval-layout.py compare` (the test's own directory is deleted).
    private func keepForTheScript(_ urls: [URL], _ name: String) throws {
        guard let keep = ProcessInfo.processInfo.environment["SIRIUS_LMEVAL_EXPORT_KEEP"] else { return }
        let dest = URL(fileURLWithPath: keep).appendingPathComponent(name)
        try FileManager.default.createDirectory(at: dest, withIntermediateDirectories: true)
        for u in urls {
            let target = dest.appendingPathComponent(u.lastPathComponent)
            try? FileManager.default.removeItem(at: target)
            try FileManager.default.copyItem(at: u, to: target)
        }
    }
}

// MARK: - the layout check (the same rules as tools/check-lm-eval-layout.py)

extension LMEvalJSON {
    subscript(key: String) -> LMEvalJSON? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    var objectValue: LMEvalJSON.Object? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// The JSON type, named as the fixture names it.
    var jsonType: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .int, .uint, .double: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }
}

struct Fixture {
    struct Rules {
        var omitted: [String: String] = [:]
        var nullable: [String: String] = [:]
        var alternatives: [String: [String]] = [:]
    }

    var results: LMEvalJSON
    var samplesLine: LMEvalJSON
    var rules: (results: Rules, samplesLine: Rules)

    static func load() throws -> Fixture {
        let base = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        let layout = try LMEvalJSON.decode(Data(contentsOf: base.appendingPathComponent("lm-eval-layout.json")))
        let omitted = try LMEvalJSON.decode(Data(contentsOf: base.appendingPathComponent("lm-eval-omitted.json")))
        func rules(_ section: String) throws -> Rules {
            var r = Rules()
            let s = try #require(omitted[section])
            for (k, v) in s["omitted"]?.objectValue?.members ?? [] { if case .string(let why) = v { r.omitted[k] = why } }
            for (k, v) in s["nullable"]?.objectValue?.members ?? [] { if case .string(let why) = v { r.nullable[k] = why } }
            for (k, v) in s["alternative_types"]?.objectValue?.members ?? [] {
                guard case .array(let ts)? = v["types"] else { continue }
                r.alternatives[k] = ts.compactMap(\.stringValue)
            }
            return r
        }
        return Fixture(results: try #require(layout["results"]), samplesLine: try #require(layout["samples_line"]),
                       rules: (try rules("results"), try rules("samples_line")))
    }
}

/// Walks a written value against a layout node of the fixture: `{"type", "keys" | "each" | "items" | "opaque"}`.
struct LayoutChecker {
    var errors: [String] = []
    var notes: [String] = []

    mutating func check(_ ref: LMEvalJSON?, _ value: LMEvalJSON, path: String, rules: Fixture.Rules) {
        guard let ref, case .string(let refType)? = ref["type"] else { return }
        let t = value.jsonType
        if refType == "null" { return }
        if t == "null" {
            if rules.nullable[path] != nil { notes.append("\(path): null") } else { errors.append("\(path): null where lm-eval writes \(refType)") }
            return
        }
        guard refType.split(separator: "|").contains(Substring(t)) else {
            if rules.alternatives[path]?.contains(t) == true { notes.append("\(path): \(t)") } else {
                errors.append("\(path): \(t) where lm-eval writes \(refType)")
            }
            return
        }
        switch value {
        case .array(let items):
            for x in items { check(ref["items"], x, path: "\(path)[]", rules: rules) }
        case .object(let o):
            if ref["opaque"] == .bool(true) { return }
            if let each = ref["each"] {
                if each == .null { return }
                if o.members.isEmpty { errors.append("\(path): no entries") }
                for m in o.members { check(each, m.value, path: "\(path).<task>", rules: rules) }
                return
            }
            var listed: [String]? = nil
            if case .array(let ms)? = o["metrics"] { listed = ms.compactMap(\.stringValue) }
            let refKeys = ref["keys"]?.objectValue ?? LMEvalJSON.Object()
            for (k, sub) in refKeys.members {
                let subPath = path.isEmpty ? k : "\(path).\(k)"
                if k.hasPrefix("<") {
                    let matched: [String]
                    switch k {
                    case "<metric>": matched = o.keys.filter { listed?.contains($0) ?? (refKeys[$0] == nil) }
                    case "<metric>_stderr,<filter>": matched = o.keys.filter { $0.contains("_stderr,") }
                    default: matched = o.keys.filter { $0.contains(",") && !$0.contains("_stderr,") }
                    }
                    if matched.isEmpty { errors.append("\(subPath): MISSING (no key of this form)") }
                    for m in matched { check(sub, o[m]!, path: subPath, rules: rules) }
                } else if let v = o[k] {
                    check(sub, v, path: subPath, rules: rules)
                } else if rules.omitted[subPath] != nil {
                    notes.append("\(subPath): not written")
                } else {
                    errors.append("\(subPath): MISSING")
                }
            }
        default:
            return
        }
    }
}
