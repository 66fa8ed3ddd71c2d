import Foundation
import SiriusProtocol
import SiriusTasks

/// One benchmark example as the coordinator stores it (§6 decision 3: prompts and references live
/// in the database, so a run is self-contained).
struct RunExample: Sendable, Equatable {
    var id: String
    /// What the engine needs of it (prompt, stop strings, limits): stored as one JSON document.
    var input: ExampleInput
    var reference: String
    /// The task's own example record (JSON), kept so scoring needs nothing but the database.
    var exampleJSON: String? = nil

    var prompt: String { input.prompt }
}

/// A task's examples in canonical order, and how its outputs are scored.
struct LoadedTask: Sendable {
    var name: String
    var datasetRev: String
    var examples: [RunExample]
}

/// The seam to the task registry (`SiriusTasks`). The coordinator scores from stored text, so
/// metrics can always be recomputed.
protocol ExampleProvider: Sendable {
    /// The task's examples in canonical order with rendered prompts (few-shot choice fixed by
    /// `runSeed` and the example id).
    func load(task: String, limit: Int?, runSeed: UInt64) throws -> LoadedTask
    /// Extracted answer and correctness of `output` for a stored example.
    func score(task: String, output: String, reference: String, exampleJSON: String?) -> (extracted: String?, correct: Bool?)
}

/// `synthetic` or `synthetic:N`: N numbered questions whose reference is what `FakeEngine`
/// considers right, so fake runs have meaningful accuracies. For tests and benchmarks.
struct SyntheticProvider: ExampleProvider {
    func load(task: String, limit: Int?, runSeed: UInt64) throws -> LoadedTask {
        guard task == "synthetic" || task.hasPrefix("synthetic:") else {
            throw CoordinatorError("unknown task \(task.debugDescription); available here: synthetic[:N] (real tasks come from SiriusTasks)")
        }
        let n = task == "synthetic" ? 64 : (Int(task.dropFirst("synthetic:".count)) ?? -1)
        guard n >= 0 else { throw CoordinatorError("bad task \(task.debugDescription): use synthetic:N") }
        let count = min(n, limit ?? n)
        let examples = (0..<count).map { i -> RunExample in
            let id = String(format: "%06d", i)
            let prompt = "Question \(i) of \(task): what number is the fake engine thinking of?"
            return RunExample(id: id, input: ExampleInput(prompt: prompt, stop: ["\n\n"]), reference: String(FakeEngine.oracle(prompt)))
        }
        return LoadedTask(name: task, datasetRev: "synthetic-v1", examples: examples)
    }

    func score(task: String, output: String, reference: String, exampleJSON: String?) -> (extracted: String?, correct: Bool?) {
        let extracted = lastNumber(in: output)
        return (extracted, extracted.map { $0 == reference } ?? false)
    }
}

/// The last integer in `text` (GSM8K-style extraction for the synthetic task).
func lastNumber(in text: String) -> String? {
    var last: String? = nil
    var current = ""
    for ch in text {
        if ch.isASCII, ch.isNumber { current.append(ch) } else if !current.isEmpty { last = current; current = "" }
    }
    return current.isEmpty ? last : current
}

/// The provider `sirius-coord` uses: `synthetic[:N]` for tests and benchmarks, every other name
/// from the `SiriusTasks` registry (prompts rendered here, scoring from the stored example).
struct DefaultProvider: ExampleProvider {
    /// Where generated code (HumanEval) runs when it is scored.
    var sandbox = PythonSandbox()

    func load(task: String, limit: Int?, runSeed: UInt64) throws -> LoadedTask {
        if task == "synthetic" || task.hasPrefix("synthetic:") {
            return try SyntheticProvider().load(task: task, limit: limit, runSeed: runSeed)
        }
        let loaded: any BenchmarkTask
        do { loaded = try TaskRegistry.load(task) } catch {
            throw CoordinatorError("cannot load task \(task.debugDescription): \(error) (tasks: \(TaskRegistry.names.joined(separator: ", ")), synthetic:N; see `sirius-coord task list`)")
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        var digest = StableHasher()
        let examples = try loaded.examples(limit: limit).map { e -> RunExample in
            let req = try loaded.request(for: e, options: PromptOptions(runSeed: runSeed))
            digest.combine(e.contentHash)
            var newTokens: Int? = nil, total: Int? = nil
            switch req.limit {
            case .newTokens(let n): newTokens = n
            case .totalTokens(let n): total = n; newTokens = n
            }
            let input = ExampleInput(prompt: req.prompt.text, stop: req.stopStrings, maxNewTokens: newTokens,
                                     promptSegments: req.prompt.segments, addBOS: req.prompt.addBOS, chat: req.prompt.chat,
                                     maxTotalTokens: total)
            return RunExample(id: e.id, input: input, reference: e.reference,
                              exampleJSON: String(decoding: try enc.encode(e), as: UTF8.self))
        }
        return LoadedTask(name: task, datasetRev: digest.hex, examples: examples)
    }

    func score(task: String, output: String, reference: String, exampleJSON: String?) -> (extracted: String?, correct: Bool?) {
        if task == "synthetic" || task.hasPrefix("synthetic:") {
            return SyntheticProvider().score(task: task, output: output, reference: reference, exampleJSON: exampleJSON)
        }
        guard let t = try? TaskRegistry.type(named: task), let json = exampleJSON,
              let example = try? JSONDecoder().decode(TaskExample.self, from: Data(json.utf8)) else { return (nil, nil) }
        let s = t.score(output, for: example, context: ScoringContext(sandbox: sandbox))
        return (s.answer, s.correct)
    }
}
