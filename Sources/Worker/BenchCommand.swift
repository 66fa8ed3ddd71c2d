import ArgumentParser
import Foundation
import SiriusEngine

/// llama-bench style throughput measurement (formats.md §5): every combination of the list options is
/// one test; each test has an untimed warm-up, then `-r` repetitions from an empty KV cache on
/// deterministic synthetic token ids; the report is mean ± standard deviation of per-repetition t/s.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure prompt-processing and decode throughput, llama-bench style.",
        discussion: """
            Examples:
              sirius-worker bench -p 256 -n 128 -t 1,2
              sirius-worker bench -m model.gguf -n 128 -p 0 --numerics exact,fast -o json
              sirius-worker bench --methods full,griffin@0.5,cats@0.5,sirius/griffin@0.5,sirius/cats@0.5 --task gsm8k-cot \
                  --limit 10 --periods 4,8,16 --threshold 0.1 --acceptance threshold
              sirius-worker bench --batch-sizes 1,2,4,8,16 --numerics exact,fast -n 64
            """)

    @Option(name: [.short, .customLong("model")], help: "A .gguf file or a Hugging Face model directory.")
    var model: String = EngineOptions.defaultModel
    @Option(name: [.short, .customLong("n-prompt")], parsing: .singleValue, help: "Prompt lengths to test (comma list; 0 = none).")
    var prompt: [String] = ["512"]
    @Option(name: [.customShort("n"), .customLong("n-gen")], parsing: .singleValue, help: "Decode lengths to test (comma list; 0 = none).")
    var gen: [String] = ["128"]
    @Option(name: [.short, .customLong("repetitions")], help: "Timed repetitions per test.")
    var repetitions: Int = 5
    @Option(name: [.short, .customLong("threads")], parsing: .singleValue, help: "Thread counts (comma list).")
    var threads: [String] = ["1"]
    @Option(parsing: .singleValue, help: "Numerics to test (comma list of exact, fast).")
    var numerics: [String] = ["exact"]
    @Option(name: [.short, .customLong("output")], help: "md, json or csv.")
    var output: String = "md"
    @Flag(help: "Also measure the memory read bandwidth and print the decode ceiling it implies.")
    var bandwidth = false
    @Option(parsing: .singleValue, help: "Batch sizes (comma list): full-model decode of B sequences at once after a prompt of -p tokens each, -n tokens each; reports tokens/s per thread.")
    var batchSizes: [String] = []
    @OptionGroup(title: "Methods") var methodOptions: MethodOptions
    @OptionGroup(title: "Method comparison on real prompts") var methodBench: MethodBenchOptions

    struct Row {
        var test: String
        var threads: Int
        var numerics: Numerics
        var nPrompt: Int
        var nGen: Int
        var samples: [Double]   // t/s per repetition
        var mean: Double { samples.reduce(0, +) / Double(samples.count) }
        var stddev: Double {
            guard samples.count > 1 else { return 0 }
            let m = mean
            return (samples.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(samples.count - 1)).squareRoot()
        }
    }

    static func ints(_ list: [String], _ name: String) throws -> [Int] {
        try list.flatMap { $0.split(separator: ",") }.map {
            guard let v = Int($0.trimmingCharacters(in: .whitespaces)), v >= 0 else { throw ValidationError("\(name): '\($0)' is not a non-negative integer") }
            return v
        }
    }

    func run() throws {
        guard ["md", "json", "csv"].contains(output) else { throw ValidationError("-o must be md, json or csv") }
        if methodBench.enabled {
            let th = try Self.ints(threads, "-t").first ?? 1
            let num = Numerics(rawValue: numerics.first.map { String($0.split(separator: ",")[0]) } ?? "exact") ?? .exact
            var e = try EngineOptions.parse([])
            e.model = model; e.threads = th; e.numerics = num
            return try MethodBench(engine: e, methodOptions: methodOptions, bench: methodBench, output: output).run()
        }
        guard repetitions >= 1 else { throw ValidationError("-r must be at least 1") }
        if !batchSizes.isEmpty { return try batchCurve() }
        let ps = try Self.ints(prompt, "-p"), ns = try Self.ints(gen, "-n"), ts = try Self.ints(threads, "-t")
        let nums = try numerics.flatMap { $0.split(separator: ",") }.map {
            guard let n = Numerics(rawValue: String($0)) else { throw ValidationError("--numerics: '\($0)' is not exact or fast") }
            return n
        }
        let clock = ContinuousClock()
        let t0 = clock.now
        let model = try ModelLoader.load(path: model)
        let loadSeconds = (clock.now - t0).seconds
        let c = model.config
        let maxLen = max((ps.max() ?? 0) + 1, (ns.max() ?? 0) + 2)
        var rng = SeededRandom(seed: 42)
        let tokens = (0..<maxLen).map { _ in Int32(rng.next() % UInt64(c.vocabSize)) }
        var rows: [Row] = []
        for th in ts where th >= 1 {
            for num in nums {
                let tr = Transformer(model: model, capacity: maxLen + 1, numerics: num, threads: th)
                for p in ps where p > 0 {
                    let ids = Array(tokens.prefix(p))
                    tr.cache.reset(); tr.forward(tokens: ids, start: 0)          // warm-up
                    var samples: [Double] = []
                    for _ in 0..<repetitions {
                        tr.cache.reset()
                        let s = clock.now
                        tr.forward(tokens: ids, start: 0)
                        samples.append(Double(p) / (clock.now - s).seconds)
                    }
                    rows.append(Row(test: "pp\(p)", threads: th, numerics: num, nPrompt: p, nGen: 0, samples: samples))
                    printErr("pp\(p) t=\(th) \(num): \(String(format: "%.2f", rows.last!.mean)) t/s")
                }
                for n in ns where n > 0 {
                    var one: [Int32] = [tokens[0]]
                    tr.cache.reset(); tr.forward(tokens: one, start: 0)          // warm-up: one token
                    var samples: [Double] = []
                    for _ in 0..<repetitions {
                        tr.cache.reset()
                        let s = clock.now
                        for i in 0..<n {
                            one[0] = tokens[i]
                            tr.forward(tokens: one, start: i)
                        }
                        samples.append(Double(n) / (clock.now - s).seconds)
                    }
                    rows.append(Row(test: "tg\(n)", threads: th, numerics: num, nPrompt: 0, nGen: n, samples: samples))
                    printErr("tg\(n) t=\(th) \(num): \(String(format: "%.2f", rows.last!.mean)) t/s")
                }
            }
        }
        let name = (self.model as NSString).lastPathComponent
        let sizeMiB = Double(model.denseDecodeBytes + model.tokenEmbedding.byteCount * (c.tiedEmbeddings ? 0 : 1)) / 1_048_576
        let params = Double(model.parameterCount) / 1e6
        switch output {
        case "json":
            try printJSON([
                "model": name, "model_size_mib": sizeMiB, "params_m": params, "load_seconds": loadSeconds,
                "weight_bytes_per_token": model.denseDecodeBytes,
                "results": rows.map { r in
                    ["test": r.test, "n_threads": r.threads, "numerics": r.numerics.rawValue, "n_prompt": r.nPrompt,
                     "n_gen": r.nGen, "avg_ts": r.mean, "stddev_ts": r.stddev, "samples_ts": r.samples] as [String: Any]
                },
            ])
        case "csv":
            print("model,size_mib,params_m,n_threads,numerics,test,n_prompt,n_gen,avg_ts,stddev_ts")
            for r in rows {
                print("\(name),\(String(format: "%.2f", sizeMiB)),\(String(format: "%.2f", params)),\(r.threads),\(r.numerics.rawValue),\(r.test),\(r.nPrompt),\(r.nGen),\(String(format: "%.3f", r.mean)),\(String(format: "%.3f", r.stddev))")
            }
        default:
            print("| model | size | params | threads | numerics | test | t/s |")
            print("| --- | ---: | ---: | ---: | --- | ---: | ---: |")
            for r in rows {
                print("| \(name) | \(String(format: "%.2f MiB", sizeMiB)) | \(String(format: "%.2f M", params)) | \(r.threads) | \(r.numerics.rawValue) | \(r.test) | \(String(format: "%.2f ± %.2f", r.mean, r.stddev)) |")
            }
            print("\nmodel loaded in \(String(format: "%.3f", loadSeconds)) s; \(model.denseDecodeBytes) weight bytes read per decode token; OpenBLAS kernels \(CPUBackend.blasKernels) (exact prompt chunks)")
            if bandwidth {
                let bw = MemoryBandwidth.measureRead()
                print(String(format: "memory read bandwidth %.2f GB/s (1 GiB streaming read, best of 5): decode ceiling %.1f tokens/s",
                             bw / 1e9, bw / Double(model.denseDecodeBytes)))
            }
        }
    }
}

extension BenchCommand {
    /// The batch-size curve: B sequences (distinct synthetic prompts of -p tokens) decode -n tokens each
    /// with the full model through one `BatchDecoder`; only the decode steps are timed (after every
    /// prompt is in). Tokens/s counts every sequence's tokens; per thread divides by the thread count.
    func batchCurve() throws {
        let bs = try Self.ints(batchSizes, "--batch-sizes"), ts = try Self.ints(threads, "-t")
        let p = max(1, try Self.ints(prompt, "-p").first ?? 512), n = max(2, try Self.ints(gen, "-n").first ?? 128)
        let nums = try numerics.flatMap { $0.split(separator: ",") }.map {
            guard let v = Numerics(rawValue: String($0)) else { throw ValidationError("--numerics: '\($0)' is not exact or fast") }
            return v
        }
        let model = try ModelLoader.load(path: model)
        let vocab = model.config.vocabSize
        let clock = ContinuousClock()
        var rows: [[String: Any]] = []
        for th in ts where th >= 1 {
            for num in nums {
                let t = Transformer(model: model, capacity: 1, numerics: num, threads: th)
                let d = BatchDecoder(transformer: t)
                for b in bs where b >= 1 {
                    var samples: [Double] = []
                    for rep in 0...repetitions {   // repetition 0 warms up
                        for i in 0..<b {
                            var rng = SeededRandom(seed: UInt64(1000 * i + 7))
                            let ids = (0..<p).map { _ in Int32(rng.next() % UInt64(vocab)) }
                            try d.admit(method: .full, promptIDs: ids, committed: CommittedText(tokenizer: nil, maxNewTokens: n, eosIDs: []))
                        }
                        while d.active.contains(where: \.isPrefilling) { d.step() }
                        var tokens = 0
                        let s = clock.now
                        while !d.isEmpty { for seq in d.step() { tokens += seq.committed.ids.count - 1 } }
                        if rep > 0 { samples.append(Double(tokens) / (clock.now - s).seconds) }
                    }
                    let mean = samples.reduce(0, +) / Double(samples.count)
                    rows.append(["batch_size": b, "n_threads": th, "numerics": num.rawValue, "n_prompt": p, "n_gen": n,
                                 "tokens_per_second": mean, "tokens_per_second_per_thread": mean / Double(th), "samples_ts": samples])
                    printErr("B=\(b) t=\(th) \(num): \(String(format: "%.1f", mean)) t/s")
                }
            }
        }
        if output == "json" { return try printJSON(["model": (self.model as NSString).lastPathComponent, "results": rows]) }
        print("| batch | threads | numerics | context | decode t/s | per thread | vs B=1 |")
        print("| ---: | ---: | --- | ---: | ---: | ---: | ---: |")
        for r in rows {
            let base = rows.first { $0["batch_size"] as? Int == 1 && $0["n_threads"] as? Int == r["n_threads"] as? Int && $0["numerics"] as? String == r["numerics"] as? String }
            let v = r["tokens_per_second"] as! Double
            let ratio = (base?["tokens_per_second"] as? Double).map { String(format: "%.2f", v / $0) } ?? "–"
            print("| \(r["batch_size"]!) | \(r["n_threads"]!) | \(r["numerics"]!) | \(p) | \(String(format: "%.1f", v)) | \(String(format: "%.1f", r["tokens_per_second_per_thread"] as! Double)) | \(ratio) |")
        }
    }
}
