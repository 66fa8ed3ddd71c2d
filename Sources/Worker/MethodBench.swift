import ArgumentParser
import Foundation
import SiriusEngine
import SiriusMethod
import SiriusTasks

/// Options of `bench --methods`: decode real prompts with several methods in one run and report each
/// method's speed as a ratio to `full` measured on the same prompts, beside its densities, AAL and the
/// CPU cost model of sirius-method.md §12.
struct MethodBenchOptions: ParsableArguments {
    @Option(parsing: .singleValue, help: "Methods to compare (comma list): full, griffin@D, cats@D, sirius/griffin@D, sirius/cats@D (without @D: --density; a Sirius method may add ,adaptive=CONF or ,threshold=T). Turns on method benchmarking.")
    var methods: [String] = []
    @Option(help: "Take prompts from this task (e.g. gsm8k-cot), built exactly as the evaluation does.")
    var task: String?
    @Option(help: "Data directory of the task (default: the set-up's cache).")
    var dataDir: String?
    @Option(help: "Read prompts from this file instead, one per line.")
    var promptFile: String?
    @Option(help: "Number of prompts.")
    var limit: Int = 10
    @Option(parsing: .singleValue, help: "Sirius periods to sweep (comma list; default: --period).")
    var periods: [String] = []
    @Option(parsing: .singleValue, help: .hidden) var kernelSizes: [String] = []
    @Option(help: "Max new tokens per prompt (default: the task's limit, else 128).")
    var maxNewTokens: Int?

    var enabled: Bool { !methods.isEmpty }
}

struct MethodBench {
    let engine: EngineOptions
    let methodOptions: MethodOptions
    let bench: MethodBenchOptions
    let output: String

    struct Prompt { var ids: [Int32]; var stop: [String]; var maxNew: Int; var example: TaskExample? = nil }

    struct Row {
        var method: MethodSpec
        var period: Int?
        var tokens = 0
        var decodeSeconds = 0.0
        var counters = DecodeCounters()
        var allPeriods = 0
        var allAdvanced = 0
        var densitySum = 0.0
        var densityCount = 0
        /// Mean over the prompts (CATS threshold mode reads a different number of neurons per prompt).
        var modelDensity: Double? { densityCount > 0 ? densitySum / Double(densityCount) : nil }
        var paramDensity: Double?
        var sparseSeconds = 0.0
        var verifySeconds = 0.0
        var texts: [String] = []
        /// Completions scored by the task (with --task): correct and answered (an answer was extracted).
        var scored = 0, correct = 0, answered = 0
        var tokensPerSecond: Double { decodeSeconds > 0 ? Double(tokens) / decodeSeconds : 0 }

        /// Adds one prompt's generation; `decodeSeconds` is its time after the prefill (the first token
        /// comes from the prefill).
        mutating func add(_ o: MethodOutcome, decodeSeconds seconds: Double, task: String?, example: TaskExample?) throws {
            decodeSeconds += seconds
            tokens += max(0, o.generation.outputIDs.count - 1)
            let c = o.counters
            counters = counters + c
            sparseSeconds += o.timings.sparseSeconds; verifySeconds += o.timings.verifySeconds
            allPeriods += c.periods + (c.finalPeriodAdvance > 0 ? 1 : 0)
            allAdvanced += c.advancedTokens + c.finalPeriodAdvance
            if let d = o.modelDensity { densitySum += d; densityCount += 1 }
            paramDensity = o.paramDensity
            texts.append(o.generation.text)
            if let task, let example {
                let score = try TaskRegistry.score(task: task, completion: o.generation.text, example: example)
                scored += 1
                if score.correct { correct += 1 }
                if score.answer != nil { answered += 1 }
            }
        }
    }

    func prompts(_ loaded: LoadedModel) throws -> [Prompt] {
        if let task = bench.task {
            let dir = bench.dataDir.map { DataDirectory(path: $0) } ?? .default
            let t = try TaskRegistry.load(task, TaskConfiguration(dataDirectory: dir))
            return try t.examples(limit: bench.limit).map { ex in
                let r = try t.request(for: ex, options: PromptOptions())
                let ids = try loaded.encode(segments: r.prompt.segments, addBOS: r.prompt.addBOS, chat: false)
                return Prompt(ids: ids, stop: r.stopStrings, maxNew: bench.maxNewTokens ?? r.limit.maxNewTokens(promptTokens: ids.count),
                              example: ex)
            }
        }
        guard let f = bench.promptFile else { throw ValidationError("bench --methods needs --task T or --prompt-file FILE") }
        let text = try textOrFile(nil, f, name: "prompt")
        return text.split(separator: "\n").prefix(bench.limit).map {
            Prompt(ids: loaded.tokenizer.encode(String($0)), stop: [], maxNew: bench.maxNewTokens ?? 128)
        }
    }

    func run() throws {
        let loaded = try LoadedModel(path: engine.model)
        let ps = try prompts(loaded)
        guard !ps.isEmpty else { throw ValidationError("no prompts") }
        let periodList = !bench.periods.isEmpty ? bench.periods : !bench.kernelSizes.isEmpty ? bench.kernelSizes : [String(methodOptions.base.period)]
        let ks = try BenchCommand.ints(periodList, "--periods")
        let specs = try bench.methods.flatMap(Self.methodList).map { try methodOptions.spec($0) }
        let capacity = min(loaded.model.config.contextLength,
                           (ps.map { $0.ids.count + $0.maxNew }.max() ?? 0) + (ks.max() ?? 16) * methodOptions.treeWidth + 2)
        let t = Transformer(model: loaded.model, capacity: capacity, numerics: engine.numerics, threads: engine.threads)
        let runner = MethodRunner(transformer: t)
        // One row per (method, K), in the order given.
        var rows: [Row] = specs.flatMap { spec -> [Row] in
            guard spec.kind == .sirius else { return [Row(method: spec, period: nil)] }
            // A Sirius method that names its period (`…,period=16`) keeps it; the others take each of --periods.
            return (spec.name.contains("period=") ? [spec.period] : ks).map { k in
                var method = spec
                method.period = k
                return Row(method: method, period: k)
            }
        }
        let clock = ContinuousClock()
        // Untimed warm-up: CATS's neuron-major copies are made here rather than inside a timed decode,
        // and the first prompt's pages and caches are touched once.
        if specs.contains(where: { $0.kind != .full && $0.sparsity == .cats }) { _ = runner.weights.neuronMajorDown }
        _ = try runner.generate(.full, promptIDs: ps[0].ids,
                                committed: CommittedText(tokenizer: loaded.tokenizer, maxNewTokens: min(16, ps[0].maxNew),
                                                         stopStrings: [], eosIDs: loaded.tokenizer.eosIDs))
        // Interleaved schedule: every row decodes prompt i before any row starts prompt i + 1, in the given
        // order on even prompts and reversed on odd ones. A host whose speed drifts over the run (a shared
        // VM's can move by 10–40 % within minutes) then slows every row alike, so ratios to `full` measure
        // the methods, not when each ran. Each generation is independent of the others (its own batch and
        // a reset cache), so the order changes times only, never outputs or counters.
        for (i, p) in ps.enumerated() {
            for j in (i % 2 == 0 ? Array(rows.indices) : rows.indices.reversed()) {
                let committed = CommittedText(tokenizer: loaded.tokenizer, maxNewTokens: p.maxNew, stopStrings: p.stop,
                                              eosIDs: loaded.tokenizer.eosIDs)
                let s0 = clock.now
                let o = try runner.generate(rows[j].method, promptIDs: p.ids, committed: committed)
                let wall = (clock.now - s0).seconds
                try rows[j].add(o, decodeSeconds: wall - o.generation.timings.prefillSeconds, task: bench.task, example: p.example)
            }
            printErr("prompt \(i + 1)/\(ps.count) done by all \(rows.count) rows")
        }
        for row in rows {
            printErr("\(row.method.name)\(row.period.map { " K=\($0)" } ?? ""): \(row.tokens) tokens, \(String(format: "%.2f", row.tokensPerSecond)) tok/s")
        }
        // Dense K-token pass times for the cost model, measured after a typical prompt.
        var verifyTime: [Int: Double] = [:]
        let ctx = ps[0].ids
        for k in ks {
            t.cache.reset()
            t.forward(tokens: ctx, start: 0, promptChunk: true)
            let chunk = Array(ctx.prefix(k)) + Array(repeating: ctx[0], count: max(0, k - ctx.count))
            var best = Double.infinity
            for _ in 0..<5 {
                t.cache.trim(to: ctx.count)
                let s = clock.now
                t.forward(tokens: chunk, start: ctx.count, allLogits: true)
                best = min(best, (clock.now - s).seconds)
            }
            verifyTime[k] = best
        }
        report(rows, verifyTime: verifyTime, prompts: ps.count)
    }

    /// A comma list of methods, where a `knob=value` piece belongs to the method before it:
    /// `full,griffin,sirius/griffin@0.5,adaptive=0.6` is three methods.
    static func methodList(_ text: String) -> [String] {
        var out: [String] = []
        for piece in text.split(separator: ",").map(String.init) {
            if piece.contains("="), let last = out.popLast() { out.append(last + "," + piece) } else { out.append(piece) }
        }
        return out
    }

    func report(_ rows: [Row], verifyTime: [Int: Double], prompts: Int) {
        let full = rows.first { $0.method.kind == .full }
        let fullStep = full.map { $0.decodeSeconds / Double(max(1, $0.tokens)) }
        /// The step time of the sparse baseline Sirius drafts with (same sparsity and density).
        func sparseStep(_ m: MethodSpec) -> Double? {
            rows.first { $0.method.kind == .sparse && $0.method.sparsity == m.sparsity && $0.method.density == m.density }
                .map { $0.decodeSeconds / Double(max(1, $0.tokens)) }
        }
        var out: [[String: Any]] = []
        for r in rows {
            var j: [String: Any] = ["method": r.method.name, "tokens": r.tokens, "decode_seconds": r.decodeSeconds,
                                    "tokens_per_second": r.tokensPerSecond]
            if r.method.isSparse { j["density"] = r.method.density }
            if let k = r.period { j["period"] = k }
            if let d = r.modelDensity { j["model_density"] = d }
            if let d = r.paramDensity { j["param_density"] = d }
            if r.scored > 0 {
                j["accuracy"] = Double(r.correct) / Double(r.scored)
                j["answered"] = r.answered
            }
            if let a = r.method.adaptivePeriod { j["adaptive_period"] = a }
            if let f = full, f.tokensPerSecond > 0 { j["time_ratio"] = f.tokensPerSecond / max(r.tokensPerSecond, 1e-9) }
            if let f = full, r.method.kind != .full {
                j["agreement_with_full"] = Double(zip(r.texts, f.texts).filter { $0 == $1 }.count) / Double(max(1, r.texts.count))
            }
            if let k = r.period, r.counters.periods > 0 {
                let aal = Double(r.counters.advancedTokens) / Double(r.counters.periods)
                j["aal"] = aal
                j["periods"] = r.counters.periods
                // Tokens a verification pass checked on average: K, or less with an adaptive period.
                if r.counters.densePasses > 0 { j["mean_period"] = Double(r.counters.tokensVerified) / Double(r.counters.densePasses) }
                let meanPeriod = r.counters.densePasses > 0 ? Double(r.counters.tokensVerified) / Double(r.counters.densePasses) : Double(k)
                if let d = r.paramDensity {
                    j["effective_density"] = DecodeCounters.effectiveDensity(period: r.method.adaptivePeriod != nil ? meanPeriod : Double(k), paramDensity: d, aal: aal)
                }
                // §12 cost model: per period (K−1) sparse steps of the sparse method alone plus one dense
                // K-token pass, divided by the tokens a period advances, relative to a full decode step;
                // counted from the run's own sparse steps and dense passes, so an adaptive period (fewer
                // drafts in some periods) is priced by what it did.
                // The verification pass is timed inside the run (its mean over the run's periods, at the
                // contexts the run had: the prompt plus what was generated so far); the standalone pass
                // after the first prompt is reported beside it.
                let inRun = r.counters.densePasses > 0 ? r.verifySeconds / Double(r.counters.densePasses) : nil
                if let fs = fullStep, let ss = sparseStep(r.method), let v = inRun ?? verifyTime[k], r.allPeriods > 0 {
                    let c = r.counters
                    let model = (Double(c.sparseSteps) * ss + Double(c.densePasses) * v) / Double(r.allAdvanced) / fs
                    j["cost_model_ratio"] = model
                    j["verify_pass_seconds"] = v
                    if let sv = verifyTime[k] { j["verify_pass_seconds_after_first_prompt"] = sv }
                    j["sparse_step_seconds"] = ss
                    j["full_step_seconds"] = fs
                    j["verify_pass_in_decode_steps"] = v / fs
                    if let tr = j["time_ratio"] as? Double { j["measured_over_cost_model"] = tr / model }
                }
            }
            out.append(j)
        }
        if output == "json" {
            try? printJSON(["prompts": prompts, "threads": engine.threads, "numerics": engine.numerics.rawValue,
                            "threshold": methodOptions.threshold,
                            "acceptance": methodOptions.acceptance.rawValue, "task": bench.task ?? "", "density": methodOptions.density,
                            "verify_pass_seconds": Dictionary(uniqueKeysWithValues: verifyTime.map { (String($0.key), $0.value) }),
                            "results": out])
            return
        }
        func f(_ v: Any?, _ fmt: String = "%.3f") -> String { (v as? Double).map { String(format: fmt, $0) } ?? "–" }
        print("| method | K | mean period | density | model density | param density | AAL | eff. density | tok/s | time ratio to full | verify pass ÷ full step | cost model | measured / model | accuracy (answered) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for j in out {
            let m = j["method"] as! String
            let acc = (j["accuracy"] as? Double).map { String(format: "%.0f %% (%d)", $0 * 100, j["answered"] as? Int ?? 0) } ?? "–"
            print("| \(m) | \((j["period"] as? Int).map(String.init) ?? "–") | \(f(j["mean_period"], "%.2f")) | \((j["density"] as? Double).map { String($0) } ?? "1") | \(f(j["model_density"])) | \(f(j["param_density"])) | \(f(j["aal"], "%.2f")) | \(f(j["effective_density"])) | \(f(j["tokens_per_second"], "%.2f")) | \(f(j["time_ratio"])) | \(f(j["verify_pass_in_decode_steps"], "%.2f")) | \(f(j["cost_model_ratio"])) | \(f(j["measured_over_cost_model"])) | \(acc) |")
        }
        print("\n\(prompts) prompts, \(engine.threads) thread(s), \(engine.numerics.rawValue) numerics, τ = \(methodOptions.threshold), acceptance \(methodOptions.acceptance.rawValue); cost model with the verification pass timed in the run; a dense K-token pass after the first prompt: " +
              verifyTime.sorted { $0.key < $1.key }.map { "K=\($0.key) \(String(format: "%.1f ms", $0.value * 1000))" }.joined(separator: ", "))
    }
}
