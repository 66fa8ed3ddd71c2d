import Foundation
import SiriusProtocol

/// One benchmark example as the coordinator stores it (§6 decision 3: prompts and references live
/// in the database, so a run is self-contained).
struct TaskExample: Sendable, Equatable {
    var id: String
    var prompt: String
    var reference: String
    var stop: [String]
    var maxNewTokens: Int?
}

/// A task's examples in canonical order, and how its outputs are scored.
struct LoadedTask: Sendable {
    var name: String
    var datasetRev: String
    var examples: [TaskExample]
}

/// The seam to the task registry (`SiriusTasks`). The coordinator scores from stored text, so
/// metrics can always be recomputed.
protocol ExampleProvider: Sendable {
    func load(task: String, limit: Int?) throws -> LoadedTask
    /// Extracted answer and correctness of `output` for an example with `reference`.
    func score(task: String, output: String, reference: String) -> (extracted: String?, correct: Bool?)
}

/// `synthetic` or `synthetic:N`: N numbered questions whose reference is what `FakeEngine`
/// considers right, so fake runs have meaningful accuracies. For tests and benchmarks.
struct SyntheticProvider: ExampleProvider {
    func load(task: String, limit: Int?) throws -> LoadedTask {
        guard task == "synthetic" || task.hasPrefix("synthetic:") else {
            throw CoordinatorError("unknown task \(task.debugDescription); available here: synthetic[:N] (real tasks come from SiriusTasks)")
        }
        let n = task == "synthetic" ? 64 : (Int(task.dropFirst("synthetic:".count)) ?? -1)
        guard n >= 0 else { throw CoordinatorError("bad task \(task.debugDescription): use synthetic:N") }
        let count = min(n, limit ?? n)
        let examples = (0..<count).map { i -> TaskExample in
            let id = String(format: "%06d", i)
            let prompt = "Question \(i) of \(task): what number is the fake engine thinking of?"
            return TaskExample(id: id, prompt: prompt, reference: String(FakeEngine.oracle(prompt)), stop: ["\n\n"],
                               maxNewTokens: nil)
        }
        return LoadedTask(name: task, datasetRev: "synthetic-v1", examples: examples)
    }

    func score(task: String, output: String, reference: String) -> (extracted: String?, correct: Bool?) {
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

/// The provider `sirius-coord` uses: synthetic tasks, plus the task registry once it is wired in.
struct DefaultProvider: ExampleProvider {
    func load(task: String, limit: Int?) throws -> LoadedTask { try SyntheticProvider().load(task: task, limit: limit) }
    func score(task: String, output: String, reference: String) -> (extracted: String?, correct: Bool?) {
        SyntheticProvider().score(task: task, output: output, reference: reference)
    }
}
