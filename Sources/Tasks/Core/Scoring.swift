import Foundation

extension TaskRegistry {
    /// Scores a completion for an example of the named task.
    public static func score(task: String, completion: String, example: TaskExample,
                             context: ScoringContext = ScoringContext()) throws -> ExampleScore {
        try type(named: task).score(completion, for: example, context: context)
    }

    /// Scores a completion against a bare reference answer (what a result store keeps for the
    /// text tasks). HumanEval needs its tests: store `TaskExample.json` and use `score(task:…)`.
    public static func score(task: String, completion: String, reference: String,
                             context: ScoringContext = ScoringContext()) throws -> ExampleScore {
        let example = TaskExample(id: "", index: 0, input: "", reference: reference)
        return try type(named: task).score(completion, for: example, context: context)
    }
}

extension TaskExample {
    /// The example as one JSON object (sorted keys), for storing beside a run's results.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding a struct of strings and an integer cannot fail.
        return String(decoding: try! encoder.encode(self), as: UTF8.self)
    }

    /// Reads what `json` wrote.
    public init(json: String) throws {
        self = try JSONDecoder().decode(TaskExample.self, from: Data(json.utf8))
    }
}

extension PythonSandbox {
    /// Runs programs on up to `jobs` threads at once; results in input order.
    public func runAll(_ programs: [String], jobs: Int) -> [ExecutionResult] {
        let results = Locked<[ExecutionResult?]>(Array(repeating: nil, count: programs.count))
        let next = Locked(0)
        let workers = max(1, min(jobs, programs.count))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                let i = next.withLock { n -> Int in
                    defer { n += 1 }
                    return n
                }
                guard i < programs.count else { return }
                let r = run(programs[i])
                results.withLock { $0[i] = r }
            }
        }
        return results.withLock { $0.map { $0! } }
    }
}
