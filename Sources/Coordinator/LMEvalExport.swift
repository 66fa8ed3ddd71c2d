import Foundation
import GRDB
import SiriusMethod
import SiriusProtocol
import SiriusTasks

/// Writes a run (finished or partial) as lm-evaluation-harness 0.4.x writes an evaluation with
/// `--output_path DIR --log_samples`, so tools that read lm-eval output read Sirius runs too.
///
/// Files, under `DIR/<model>/` (the model name sanitised as lm-eval does: each run of `"<>:/|\?*[]`
/// becomes `__`), `<ts>` being the export time as lm-eval stamps it (local ISO time with `:` → `-`):
///
/// - `results_<ts>.json`: lm-eval's aggregated results. Every (task, method) of the run is one lm-eval
///   "task" named **`<task>@<method>`** (`csqa@sirius/griffin@0.5`, `synthetic:8@full`); task names
///   hold no `@`, so the name splits at its first `@`. Its metric is the stored correctness as
///   `<metric>,<filter>` with `<metric>_stderr,<filter>` (see `metricKey`), its value the report's
///   accuracy (`Metrics`: correct / examples, failed and missing examples counted wrong), its stderr
///   lm-eval's sample standard error of that mean, √(p(1−p)/(n−1)) ("N/A" for n ≤ 1, as lm-eval).
///   `configs`, `versions`, `n-shot`, `higher_is_better`, `n-samples`, `config`, `task_hashes` and
///   the general keys follow lm-eval; what lm-eval writes that has no meaning here (its Python
///   environment, prompt templates, torch seeds) is left out, and
///   `Tests/CoordinatorTests/Fixtures/lm-eval-omitted.json` lists it with the reasons. A top-level
///   `sirius` object carries what lm-eval has no key for (run status, every `MethodMetrics` figure,
///   the samples file of each entry).
/// - `samples_<entry>_<ts>.jsonl` per entry, `<entry>` sanitised as lm-eval sanitises task names
///   (every non-word character → `_`: `samples_csqa_sirius_griffin_0_5_<ts>.jsonl`): one line per
///   example of the task in the run's order, lm-eval's keys (`doc_id`, `doc`, `target`, `arguments`,
///   `resps`, `filtered_resps`, `filter`, `metrics`, the hashes, the metric's 0/1 value) plus
///   `sirius` (status `scored`, `failed` or `missing`, extracted answer, counters). An example with no
///   stored result has empty `resps`/`filtered_resps` and the metric 0, so the mean of the lines is
///   the results file's value.
enum LMEvalExport {
    /// lm-eval's version key for every entry (`versions`, `configs.*.metadata.version`): Sirius tasks
    /// carry no version number; `configs.*.metadata` names the dataset revision and examples digest.
    static let taskVersion = 1.0
    /// What an extraction-scored task's unparseable output filters to (lm-eval's regex filters' fallback).
    static let invalidAnswer = "[invalid]"

    /// Writes the results file and one samples file per (task, method); returns their URLs, the
    /// results file first. Refuses to overwrite an existing file.
    static func write(store: Store, runId: String, directory: URL, now: Date = Date()) throws -> [URL] {
        let export = try build(store: store, runId: runId, now: now)
        let dir = directory.appendingPathComponent(export.modelDirectory, isDirectory: true)
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw CoordinatorError("cannot create \(dir.path) for the lm-eval export: \(error)")
        }
        var files: [(URL, String)] = [(dir.appendingPathComponent(export.resultsFile), export.results.indented() + "\n")]
        for s in export.samples {
            files.append((dir.appendingPathComponent(s.file), s.lines.map { $0.compact() + "\n" }.joined()))
        }
        for (url, _) in files where FileManager.default.fileExists(atPath: url.path) {
            throw CoordinatorError("\(url.path) already exists; the lm-eval export does not overwrite files (export again later or elsewhere)")
        }
        for (url, text) in files {
            do { try Data(text.utf8).write(to: url, options: .atomic) } catch {
                throw CoordinatorError("cannot write \(url.path): \(error)")
            }
        }
        return files.map(\.0)
    }

    /// The export in memory: what `write` puts in each file.
    struct Export {
        var modelDirectory: String
        var resultsFile: String
        var results: LMEvalJSON
        var samples: [(entry: String, file: String, lines: [LMEvalJSON])]
    }

    static func build(store: Store, runId: String, now: Date) throws -> Export {
        guard let run = try store.run(runId) else { throw CoordinatorError("no run \(runId) in \(store.path)") }
        let report = try Metrics.compute(store: store, runId: runId)
        let examples = Dictionary(grouping: try store.examples(runId), by: \.task)
        let (results, failed, taskRows) = try store.pool.read { db in
            var results: [String: ResultRecord] = [:]
            for r in try ResultRecord.filter(Column("run_id") == runId).fetchAll(db) {
                results[key(r.task, r.exampleId, r.method)] = r
            }
            let failed = Set(try Row.fetchAll(db, sql: "SELECT DISTINCT task, example_id, method FROM example_failures WHERE run_id = ? AND final = 1",
                                              arguments: [runId]).map { key($0[0], $0[1], $0[2]) })
            var tasks: [String: (rev: String, digest: String)] = [:]
            for r in try Row.fetchAll(db, sql: "SELECT task, dataset_rev, examples_digest FROM tasks WHERE run_id = ?", arguments: [runId]) {
                let task: String = r[0], rev: String = r[1], digest: String = r[2]
                tasks[task] = (rev, digest)
            }
            return (results, failed, tasks)
        }
        let config = run.config
        let stamp = timestamp(now)
        var modelDirectory = sanitizeModelName(config.model)
        // Never the output directory itself or its parent.
        if modelDirectory.allSatisfy({ $0 == "." }) { modelDirectory = "_" + modelDirectory }

        var resultsBlock = LMEvalJSON.Object(), configs = LMEvalJSON.Object(), versions = LMEvalJSON.Object()
        var nShot = LMEvalJSON.Object(), higher = LMEvalJSON.Object(), nSamples = LMEvalJSON.Object()
        var taskHashes = LMEvalJSON.Object(), siriusEntries = LMEvalJSON.Object()
        var samples: [(entry: String, file: String, lines: [LMEvalJSON])] = []
        var usedFiles: Set<String> = []

        for taskReport in report.tasks {
            let task = taskReport.task
            guard !task.contains("@") else {
                throw CoordinatorError("task \(task.debugDescription) contains '@', which the lm-eval export uses to separate task and method")
            }
            let info = TaskInfo(task)
            let (metric, filter) = metricKey(primaryMetric: info.primaryMetric)
            let taskExamples = (examples[task] ?? []).sorted { $0.ord < $1.ord }
            for m in taskReport.methods {
                guard let spec = config.methods.first(where: { $0.name == m.method }) else {
                    throw CoordinatorError("run \(runId): the report names method \(m.method), which the run's config does not have")
                }
                let entry = "\(task)@\(m.method)"
                var file = "samples_\(sanitizeTaskName(entry))_\(stamp).jsonl"
                var suffix = 2
                while usedFiles.contains(file) {
                    file = "samples_\(sanitizeTaskName(entry))_\(suffix)_\(stamp).jsonl"
                    suffix += 1
                }
                usedFiles.insert(file)

                // The samples, one per example.
                var lines: [LMEvalJSON] = []
                var hashes = ""
                for e in taskExamples {
                    let k = key(task, e.id, m.method)
                    let line = try sampleLine(example: e, result: results[k], failed: failed.contains(k), config: config,
                                              metric: metric, filter: filter)
                    lines.append(.object(line.json))
                    hashes += line.docHash + line.promptHash + line.targetHash
                }
                samples.append((entry, file, lines))
                taskHashes[entry] = .string(SHA256.hex(hashes))

                // The aggregated entry.
                var r = LMEvalJSON.Object()
                r["name"] = .string(entry)
                r["alias"] = .string(entry)
                r["sample_len"] = .int(m.n)
                r["\(metric),\(filter)"] = .double(m.accuracy)
                r["\(metric)_stderr,\(filter)"] = m.n > 1 ? .double(meanStderr(p: m.accuracy, n: m.n)) : .string("N/A")
                resultsBlock[entry] = .object(r)

                var c = LMEvalJSON.Object()
                c["task"] = .string(entry)
                c["dataset_path"] = .string(task)
                c["unsafe_code"] = .bool(info.executesCode)
                if let shots = info.fewshot { c["num_fewshot"] = .int(shots) }
                c["metric_list"] = .array([.object(["metric": .string(metric), "aggregation": .string("mean"), "higher_is_better": .bool(true)])])
                c["output_type"] = .string("generate_until")
                c["generation_kwargs"] = .object(generationKwargs(taskExamples.first?.input, config: config))
                c["repeats"] = .int(1)
                c["should_decontaminate"] = .bool(false)
                var meta = LMEvalJSON.Object()
                meta["version"] = .double(taskVersion)
                meta["config_source"] = .string("sirius-coord run \(runId)")
                meta["sirius_task"] = .string(task)
                meta["method"] = try LMEvalJSON.decode(encodedSorted(spec))
                if let t = taskRows[task] {
                    meta["dataset_rev"] = .string(t.rev)
                    meta["examples_digest"] = .string(t.digest)
                }
                c["metadata"] = .object(meta)
                configs[entry] = .object(c)

                versions[entry] = .double(taskVersion)
                if let shots = info.fewshot { nShot[entry] = .int(shots) }
                higher[entry] = .object([metric: .bool(true)])
                nSamples[entry] = .object(["original": .int(taskReport.n), "effective": .int(m.n)])
                siriusEntries[entry] = .object(siriusMetrics(m, samplesFile: file))
            }
        }

        var cfg = LMEvalJSON.Object()
        cfg["model"] = .string(config.engine)
        cfg["model_args"] = .object(["pretrained": .string(config.model), "engine": .string(config.engine), "numerics": .string(config.numerics)])
        cfg["batch_size"] = config.batchSize.map { .int($0) } ?? .null
        cfg["batch_sizes"] = .array([])
        cfg["device"] = report.devices.isEmpty ? .null : .string(report.devices.joined(separator: ", "))
        cfg["use_cache"] = .null
        cfg["limit"] = config.limit.map { .double(Double($0)) } ?? .null
        cfg["bootstrap_iters"] = .int(0)
        cfg["gen_kwargs"] = .object(["max_gen_toks": .int(config.maxNewTokens)])
        cfg["random_seed"] = .uint(config.runSeed)
        cfg["fewshot_seed"] = .uint(config.runSeed)
        cfg["run_seed"] = .uint(config.runSeed)
        cfg["engine"] = .string(config.engine)
        cfg["numerics"] = .string(config.numerics)

        var sirius = LMEvalJSON.Object()
        sirius["export"] = .string("sirius-coord lm-eval export 1: entries are <task>@<method>; values count failed and missing examples as wrong")
        sirius["run_id"] = .string(runId)
        sirius["status"] = .string(run.status.rawValue)
        sirius["note"] = run.note.map { .string($0) } ?? .null
        sirius["config_hash"] = .string(run.configHash)
        sirius["devices"] = .array(report.devices.map { .string($0) })
        sirius["code_execution"] = run.codeExecution.map { .string($0) } ?? .null
        sirius["duplicate_conflicts"] = .int(report.duplicateConflicts)
        sirius["entries"] = .object(siriusEntries)

        var top = LMEvalJSON.Object()
        top["results"] = .object(resultsBlock)
        top["group_subtasks"] = .object([:])
        top["configs"] = .object(configs)
        top["versions"] = .object(versions)
        top["n-shot"] = .object(nShot)
        top["higher_is_better"] = .object(higher)
        top["n-samples"] = .object(nSamples)
        top["config"] = .object(cfg)
        // sirius-coord records no source revision with a run (lm-eval writes null outside a git checkout).
        top["git_hash"] = .null
        top["date"] = .double(Double(run.createdAt) / 1000)
        top["task_hashes"] = .object(taskHashes)
        top["model_source"] = .string(config.engine)
        top["model_name"] = .string(config.model)
        top["model_name_sanitized"] = .string(modelDirectory)
        top["system_instruction"] = .null
        top["system_instruction_sha"] = .null
        top["fewshot_as_multiturn"] = .bool(false)
        top["chat_template"] = .null
        top["chat_template_sha"] = .null
        // lm-eval: the evaluation's wall time as a string; here the run's span from the first lease to the last result.
        top["total_evaluation_time_seconds"] = report.throughput.map { .string("\($0.seconds)") } ?? .null
        top["sirius"] = .object(sirius)

        return Export(modelDirectory: modelDirectory, resultsFile: "results_\(stamp).json", results: .object(top), samples: samples)
    }

    // MARK: naming

    /// lm-eval's metric and filter names for a task whose primary metric is `primaryMetric`: code
    /// tasks report `pass@1` on the raw completion (filter `none`); GSM8K's `strict-match` /
    /// `flexible-extract` are lm-eval's own filter names for its extraction; every other task is
    /// `exact_match` of the extracted answer (filter `get-answer`).
    static func metricKey(primaryMetric: String) -> (metric: String, filter: String) {
        switch primaryMetric {
        case "pass@1": return ("pass@1", "none")
        case "strict-match", "flexible-extract": return ("exact_match", primaryMetric)
        default: return ("exact_match", "get-answer")
        }
    }

    /// lm-eval's `sanitize_task_name`: every non-word character becomes `_`.
    static func sanitizeTaskName(_ s: String) -> String {
        String(s.map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" })
    }

    /// lm-eval's `sanitize_model_name`: each run of `"<>:/|\?*[]` becomes `__`.
    static func sanitizeModelName(_ s: String) -> String {
        let special = Set("\"<>:/|\\?*[]")
        var out = "", inRun = false
        for ch in s {
            if special.contains(ch) {
                if !inRun { out += "__" }
                inRun = true
            } else {
                out.append(ch)
                inRun = false
            }
        }
        return out
    }

    /// lm-eval's file stamp, `datetime.now().isoformat().replace(":", "-")`: local time, microseconds
    /// unless they are zero.
    static func timestamp(_ date: Date, timeZone: TimeZone = .current) -> String {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = timeZone
        let seconds = date.timeIntervalSince1970.rounded(.down)
        let micro = Int(((date.timeIntervalSince1970 - seconds) * 1_000_000).rounded(.down))
        let c = cal.dateComponents([.year, .month, .day, .hour, .minute, .second], from: Date(timeIntervalSince1970: seconds))
        func pad(_ v: Int?, _ w: Int) -> String { let s = String(v ?? 0); return String(repeating: "0", count: max(0, w - s.count)) + s }
        var s = "\(pad(c.year, 4))-\(pad(c.month, 2))-\(pad(c.day, 2))T\(pad(c.hour, 2))-\(pad(c.minute, 2))-\(pad(c.second, 2))"
        if micro > 0 { s += ".\(pad(micro, 6))" }
        return s
    }

    /// lm-eval's `mean_stderr` of n values of mean p, each 0 or 1: the sample standard deviation over √n.
    static func meanStderr(p: Double, n: Int) -> Double {
        (p * (1 - p) / Double(n - 1)).squareRoot()
    }

    // MARK: pieces

    private static func key(_ task: String, _ example: String, _ method: String) -> String { "\(task)\u{0}\(example)\u{0}\(method)" }

    /// What the registry says of a task (synthetic tasks: no few-shot, scored on the extracted number).
    private struct TaskInfo {
        var fewshot: Int?
        var primaryMetric: String
        var executesCode: Bool
        init(_ task: String) {
            if let t = try? TaskRegistry.type(named: task) {
                // The coordinator renders prompts with the task's default few-shot count.
                fewshot = t.fewshot?.default ?? 0
                primaryMetric = t.metricNames.first ?? "accuracy"
                executesCode = t.executesCode
            } else {
                fewshot = task == "synthetic" || task.hasPrefix("synthetic:") ? 0 : nil
                primaryMetric = "accuracy"
                executesCode = false
            }
        }
    }

    /// lm-eval's `generation_kwargs`: stop strings as `until`, greedy, `max_gen_toks`; the Sirius
    /// request's total-token cap and chat wrapping as extra keys when the example has them.
    private static func generationKwargs(_ input: ExampleInput?, config: RunConfig) -> LMEvalJSON.Object {
        var g = LMEvalJSON.Object()
        g["until"] = .array((input?.stop ?? []).map { .string($0) })
        g["do_sample"] = .bool(false)
        g["max_gen_toks"] = .int(input?.maxNewTokens ?? config.maxNewTokens)
        if let t = input?.maxTotalTokens { g["max_total_tokens"] = .int(t) }
        if input?.chat == true { g["chat"] = .bool(true) }
        return g
    }

    private struct SampleLine {
        var json: LMEvalJSON.Object
        var docHash: String
        var promptHash: String
        var targetHash: String
    }

    private static func sampleLine(example e: Store.ExampleRow, result: ResultRecord?, failed: Bool, config: RunConfig,
                                   metric: String, filter: String) throws -> SampleLine {
        // The stored example record (sorted keys, as stored), or for synthetic tasks what the store has.
        let doc: LMEvalJSON
        if let json = e.exampleJSON {
            do { doc = try LMEvalJSON.decode(Data(json.utf8)) } catch {
                throw CoordinatorError("example \(e.task)/\(e.id): unreadable example_json (\(error))")
            }
        } else {
            doc = .object(["id": .string(e.id), "input": .string(e.input.prompt), "reference": .string(e.reference)])
        }
        // lm-eval: sha256 of json.dumps(doc, indent=2, ensure_ascii=False), of the prompt, of str(target).
        let docHash = SHA256.hex(doc.indented())
        let promptHash = SHA256.hex(e.input.prompt)
        let targetHash = SHA256.hex(e.reference)

        var line = LMEvalJSON.Object()
        line["doc_id"] = .int(e.ord)
        line["doc"] = doc
        line["target"] = .string(e.reference)
        line["arguments"] = .object(["gen_args_0": .object(["arg_0": .string(e.input.prompt),
                                                            "arg_1": .object(generationKwargs(e.input, config: config))])])
        if let r = result {
            let filtered = filter == "none" ? r.outputText : (r.extractedAnswer ?? invalidAnswer)
            line["resps"] = .array([.array([.string(r.outputText)])])
            line["filtered_resps"] = .array([.string(filtered)])
        } else {
            line["resps"] = .array([])
            line["filtered_resps"] = .array([])
        }
        line["filter"] = .string(filter)
        line["metrics"] = .array([.string(metric)])
        line["doc_hash"] = .string(docHash)
        line["prompt_hash"] = .string(promptHash)
        line["target_hash"] = .string(targetHash)
        line[metric] = .double(result?.correct == true ? 1 : 0)

        var s = LMEvalJSON.Object()
        s["example_id"] = .string(e.id)
        s["status"] = .string(result != nil ? "scored" : failed ? "failed" : "missing")
        if let r = result {
            s["extracted_answer"] = r.extractedAnswer.map { .string($0) } ?? .null
            s["correct"] = r.correct.map { .bool($0) } ?? .null
            s["stop_reason"] = .string(r.stopReason)
            s["prompt_tokens"] = .int(r.promptTokens)
            s["gen_tokens"] = .int(r.genTokens)
            s["periods"] = .int(r.periods)
            s["advanced_tokens"] = .int(r.advancedTokens)
            s["rollbacks"] = .int(r.rollbacks)
            s["worker_id"] = .string(r.workerId)
            s["device"] = .string(r.device)
            s["engine"] = .string(r.engine)
            s["result_hash"] = .string(r.resultHash)
        }
        line["sirius"] = .object(s)
        return SampleLine(json: line, docHash: docHash, promptHash: promptHash, targetHash: targetHash)
    }

    private static func siriusMetrics(_ m: MethodMetrics, samplesFile: String) -> LMEvalJSON.Object {
        func opt(_ v: Double?) -> LMEvalJSON { v.map { .double($0) } ?? .null }
        var o = LMEvalJSON.Object()
        o["task"] = .string(m.task)
        o["method"] = .string(m.method)
        o["kind"] = .string(m.kind)
        o["samples_file"] = .string(samplesFile)
        o["n"] = .int(m.n)
        o["results"] = .int(m.results)
        o["correct"] = .int(m.correct)
        o["failed"] = .int(m.failed)
        o["missing"] = .int(max(0, m.n - m.results - m.failed))
        o["accuracy"] = .double(m.accuracy)
        o["accuracy_ci95"] = .array([.double(m.accuracyLow), .double(m.accuracyHigh)])
        o["accuracy_completed"] = .double(m.accuracyCompleted)
        o["param_density"] = opt(m.density)
        o["model_density"] = opt(m.modelDensity)
        o["period"] = m.period.map { .int($0) } ?? .null
        o["aal"] = opt(m.aal)
        o["effective_density"] = opt(m.effectiveDensity)
        o["generated_tokens"] = .int(m.generatedTokens)
        o["rollbacks"] = .int(m.rollbacks)
        o["tokens_per_second"] = opt(m.tokensPerSecond)
        o["time_ratio_to_full"] = opt(m.timeRatioToFull)
        o["agreement_with_full"] = opt(m.agreementWithFull)
        o["agreement_n"] = .int(m.agreementN)
        return o
    }

    private static func encodedSorted<T: Encodable>(_ value: T) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return try enc.encode(value)
    }
}

/// A JSON value whose objects keep their keys in order, written as Python's `json.dumps(...,
/// ensure_ascii=False)` writes it (compact: `", "` and `": "` separators; `indented`: `indent=2`), so
/// that lm-eval's hashes of JSON text (`doc_hash`) can be recomputed from what the export writes.
indirect enum LMEvalJSON: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case uint(UInt64)
    case double(Double)
    case string(String)
    case array([LMEvalJSON])
    case object(Object)

    /// Members in insertion order; assigning an existing key replaces its value in place.
    struct Object: Equatable, Sendable, ExpressibleByDictionaryLiteral {
        private(set) var members: [(key: String, value: LMEvalJSON)] = []

        init() {}
        init(dictionaryLiteral elements: (String, LMEvalJSON)...) {
            for (k, v) in elements { self[k] = v }
        }

        var keys: [String] { members.map(\.key) }

        subscript(key: String) -> LMEvalJSON? {
            get { members.first { $0.key == key }?.value }
            set {
                if let i = members.firstIndex(where: { $0.key == key }) {
                    if let newValue { members[i].value = newValue } else { members.remove(at: i) }
                } else if let newValue {
                    members.append((key, newValue))
                }
            }
        }

        static func == (a: Object, b: Object) -> Bool {
            a.members.count == b.members.count && zip(a.members, b.members).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        }
    }

    /// Parses JSON text, keeping object keys in their order and a number written with a fraction
    /// or exponent a double (as Python's `json.loads`), others integers.
    static func decode(_ data: Data) throws -> LMEvalJSON {
        var p = Parser(bytes: Array(data))
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == p.bytes.count else { throw p.error("trailing text") }
        return v
    }

    private struct Parser {
        let bytes: [UInt8]
        var i = 0

        struct Failure: Error, CustomStringConvertible { var description: String }

        func error(_ what: String) -> Failure { Failure(description: "invalid JSON at byte \(i): \(what)") }

        mutating func skipSpace() {
            while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
        }

        mutating func expect(_ literal: String) throws {
            let l = Array(literal.utf8)
            guard i + l.count <= bytes.count, Array(bytes[i..<i + l.count]) == l else { throw error("expected \(literal)") }
            i += l.count
        }

        mutating func value(depth: Int) throws -> LMEvalJSON {
            guard depth < 512 else { throw error("nested too deep") }
            guard i < bytes.count else { throw error("unexpected end") }
            switch bytes[i] {
            case UInt8(ascii: "n"): try expect("null"); return .null
            case UInt8(ascii: "t"): try expect("true"); return .bool(true)
            case UInt8(ascii: "f"): try expect("false"); return .bool(false)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "["):
                i += 1
                var items: [LMEvalJSON] = []
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    skipSpace()
                    items.append(try value(depth: depth + 1))
                    skipSpace()
                    guard i < bytes.count else { throw error("unterminated array") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                    throw error("expected , or ]")
                }
            case UInt8(ascii: "{"):
                i += 1
                var o = Object()
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
                while true {
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw error("expected a key") }
                    let k = try string()
                    skipSpace()
                    try expect(":")
                    skipSpace()
                    o[k] = try value(depth: depth + 1)
                    skipSpace()
                    guard i < bytes.count else { throw error("unterminated object") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
                    throw error("expected , or }")
                }
            default: return try number()
            }
        }

        mutating func number() throws -> LMEvalJSON {
            let start = i
            var fractional = false
            while i < bytes.count {
                let b = bytes[i]
                if b == UInt8(ascii: ".") || b == UInt8(ascii: "e") || b == UInt8(ascii: "E") { fractional = true }
                else if !(b == UInt8(ascii: "-") || b == UInt8(ascii: "+") || (0x30...0x39).contains(b)) { break }
                i += 1
            }
            let text = String(decoding: bytes[start..<i], as: UTF8.self)
            if !fractional {
                if let v = Int(text) { return .int(v) }
                if let v = UInt64(text) { return .uint(v) }
            }
            guard !text.isEmpty, let d = Double(text) else { throw error("bad value \(text.debugDescription)") }
            return .double(d)
        }

        mutating func string() throws -> String {
            i += 1
            var out = [UInt8]()
            while true {
                guard i < bytes.count else { throw error("unterminated string") }
                let b = bytes[i]
                i += 1
                if b == UInt8(ascii: "\"") { break }
                guard b == UInt8(ascii: "\\") else { out.append(b); continue }
                guard i < bytes.count else { throw error("unterminated escape") }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        try expect("\\u")
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw error("bad \\u escape") }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                default: throw error("bad escape")
                }
            }
            return String(decoding: out, as: UTF8.self)
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[i..<i + 4], as: UTF8.self), radix: 16) else {
                throw error("bad \\u escape")
            }
            i += 4
            return v
        }
    }

    /// One line, Python's default separators.
    func compact() -> String {
        var out = ""
        write(to: &out, indent: nil, level: 0)
        return out
    }

    /// `json.dumps(value, indent=2)`.
    func indented() -> String {
        var out = ""
        write(to: &out, indent: 2, level: 0)
        return out
    }

    private func write(to out: inout String, indent: Int?, level: Int) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .uint(let u): out += String(u)
        // Swift's shortest round-trip form is Python's repr (1.0, 0.1, 1e-05, 1e+16); JSON has no NaN.
        case .double(let d): out += d.isFinite ? d.description : "null"
        case .string(let s): LMEvalJSON.quote(s, into: &out)
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "["
            for (i, v) in items.enumerated() {
                if i > 0 { out += indent == nil ? ", " : "," }
                LMEvalJSON.newline(&out, indent, level + 1)
                v.write(to: &out, indent: indent, level: level + 1)
            }
            LMEvalJSON.newline(&out, indent, level)
            out += "]"
        case .object(let o):
            if o.members.isEmpty { out += "{}"; return }
            out += "{"
            for (i, m) in o.members.enumerated() {
                if i > 0 { out += indent == nil ? ", " : "," }
                LMEvalJSON.newline(&out, indent, level + 1)
                LMEvalJSON.quote(m.key, into: &out)
                out += ": "
                m.value.write(to: &out, indent: indent, level: level + 1)
            }
            LMEvalJSON.newline(&out, indent, level)
            out += "}"
        }
    }

    private static func newline(_ out: inout String, _ indent: Int?, _ level: Int) {
        guard let indent else { return }
        out += "\n" + String(repeating: " ", count: indent * level)
    }

    /// Python's `ensure_ascii=False` escaping: `"` `\` and control characters only.
    private static func quote(_ s: String, into out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if u.value < 0x20 {
                    let h = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }
}
