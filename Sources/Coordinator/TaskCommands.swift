import ArgumentParser
import Foundation
import SiriusTasks

/// `sirius-coord task …`: look at the benchmark tasks without a model — list them, print the exact
/// prompt of an example, run the answer extractor on a text, check the HumanEval sandbox.
struct TaskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "task",
        abstract: "Inspect benchmark tasks: prompts, answer extraction, the HumanEval sandbox.",
        subcommands: [ListTasks.self, ShowPrompt.self, Extract.self, CheckHumanEval.self])
}

/// The options every evaluation command shares (`start` can include them with `@OptionGroup`).
struct TaskOptions: ParsableArguments {
    @Option(name: .customLong("data-dir"),
            help: "Benchmark data directory (default: $SIRIUS_DATA_DIR or ~/.cache/sirius/data; tools/fetch-data.sh fills it).")
    var dataDir: String?

    @Option(help: "Evaluate only the first N examples of each task.")
    var limit: Int?

    @Option(name: .customLong("num-fewshot"), help: "Few-shot exemplars, where the task allows (default: what the paper used).")
    var numFewshot: Int?

    @Flag(help: "Apply the model's chat format to the prompt (the paper used raw prompts, the default).")
    var chat = false

    @Option(help: "Run seed: with the example id it fixes the few-shot choice.")
    var seed: UInt64 = 0

    var dataDirectory: DataDirectory { dataDir.map { DataDirectory(path: $0) } ?? .default }
    var taskConfiguration: TaskConfiguration { TaskConfiguration(dataDirectory: dataDirectory) }
    var promptOptions: PromptOptions { PromptOptions(runSeed: seed, numFewshot: numFewshot, chat: chat) }

    func validate() throws {
        if let limit, limit < 0 { throw ValidationError("--limit must be ≥ 0") }
        if let numFewshot, numFewshot < 0 { throw ValidationError("--num-fewshot must be ≥ 0") }
    }
}

/// The library's errors already say what is wrong and where: print them without the usage text.
private func taskFailure(_ error: any Error) -> any Error { error }

private func printJSON(_ object: Any) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    print(String(decoding: data, as: UTF8.self))
}

private func limitDescription(_ limit: GenerationLimit) -> [String: Any] {
    switch limit {
    case .newTokens(let n): return ["max_new_tokens": n]
    case .totalTokens(let n): return ["max_total_tokens": n]
    }
}

extension TaskCommand {
    struct ListTasks: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the tasks and whether their data files are present.")

        @Option(name: .customLong("data-dir"), help: "Benchmark data directory (default: $SIRIUS_DATA_DIR or ~/.cache/sirius/data).")
        var dataDir: String?

        @Flag(help: "One JSON array.")
        var json = false

        func run() throws {
            let dir = dataDir.map { DataDirectory(path: $0) } ?? .default
            var rows: [[String: Any]] = []
            for t in TaskRegistry.all {
                let files = t.dataFiles.map { f -> [String: Any] in
                    ["path": f.path, "present": (try? dir.require(f)) != nil]
                }
                var row: [String: Any] = [
                    "name": t.name, "summary": t.summary, "stop": t.stopStrings,
                    "metrics": t.metricNames, "files": files,
                ]
                row.merge(limitDescription(t.generationLimit)) { a, _ in a }
                if let f = t.fewshot { row["num_fewshot"] = f.default }
                rows.append(row)
            }
            if json { return try printJSON(rows) }
            print("data directory: \(dir.url.path)")
            for (t, row) in zip(TaskRegistry.all, rows) {
                let files = (row["files"] as? [[String: Any]]) ?? []
                let missing = files.filter { ($0["present"] as? Bool) == false }.compactMap { $0["path"] as? String }
                let shots = t.fewshot.map { "\($0.default)-shot" } ?? "0-shot"
                print("\(t.name.padding(toLength: 11, withPad: " ", startingAt: 0)) \(t.summary)")
                print("            \(shots); \(t.generationLimit); stop \(t.stopStrings.map { $0.debugDescription }.joined(separator: " ")); metrics \(t.metricNames.joined(separator: ", "))")
                print("            data: " + (missing.isEmpty ? "ok" : "missing \(missing.joined(separator: ", "))"))
            }
        }
    }

    struct ShowPrompt: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "prompt",
            abstract: "Print the exact prompt of one example (no newline is added after it).")

        @Option(help: "The task (see `task list`).")
        var task: String

        @Option(help: "The example's position in the task's canonical order (0-based).")
        var index: Int?

        @Option(help: "The example's id (instead of --index).")
        var id: String?

        @OptionGroup var options: TaskOptions

        @Flag(help: "One JSON object: prompt, segments, BOS, stop strings, generation limit, reference.")
        var json = false

        func validate() throws {
            if (index == nil) == (id == nil) { throw ValidationError("give exactly one of --index and --id") }
        }

        func run() throws {
            do {
                let t = try TaskRegistry.load(task, options.taskConfiguration)
                let example: SiriusTasks.TaskExample
                if let id {
                    guard let e = t.example(id: id) else { throw TaskError.noSuchExample("\(task) has no example with id '\(id)'") }
                    example = e
                } else {
                    let i = index!
                    guard t.examples.indices.contains(i) else {
                        throw TaskError.noSuchExample("--index \(i) is out of range: \(task) has \(t.examples.count) examples (0...\(t.examples.count - 1))")
                    }
                    example = t.examples[i]
                }
                let request = try t.request(for: example, options: options.promptOptions)
                if json {
                    var object: [String: Any] = [
                        "task": task, "id": example.id, "index": example.index,
                        "prompt": request.prompt.text, "segments": request.prompt.segments,
                        "add_bos": request.prompt.addBOS, "chat": request.prompt.chat,
                        "stop": request.stopStrings, "reference": example.reference,
                        "seed": options.seed,
                        "example_seed": ExampleSeed.derive(task: task, exampleID: example.id, runSeed: options.seed),
                    ]
                    object.merge(limitDescription(request.limit)) { a, _ in a }
                    try printJSON(object)
                } else {
                    FileHandle.standardOutput.write(Data(request.prompt.text.utf8))
                }
            } catch {
                throw taskFailure(error)
            }
        }
    }

    struct Extract: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "extract",
            abstract: "Run a task's answer extraction on a text and, given a reference, score it.",
            discussion: """
                For humaneval the answer is the completion cut at the stop words; scoring runs the \
                example's tests in the sandbox, so it needs --index (and the data) instead of --reference.
                """)

        @Option(help: "The task (see `task list`).")
        var task: String

        @Option(help: "The generated text; '-' reads it from standard input.")
        var text: String

        @Option(help: "The reference answer (e.g. 18, B, yes, 05/01/2021, plausible).")
        var reference: String?

        @Option(help: "Score against this example of the task's data instead of --reference.")
        var index: Int?

        @Option(name: .customLong("data-dir"), help: "Benchmark data directory (with --index).")
        var dataDir: String?

        @Option(help: "HumanEval execution time limit in seconds.")
        var timeout: Double = 3

        @Flag(help: "Run generated code without bubblewrap's namespaces (it can then read this machine's files and reach its network).")
        var unsafeCodeExecution = false

        @Flag(help: "One JSON object with at least `answer` and `correct` (null without a reference).")
        var json = false

        func validate() throws {
            if reference != nil && index != nil { throw ValidationError("give at most one of --reference and --index") }
        }

        func run() throws {
            do {
                let type = try TaskRegistry.type(named: task)
                let completion = text == "-" ? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self) : text
                var configuration = PythonSandbox.Configuration()
                configuration.timeLimit = timeout
                configuration.isolation = unsafeCodeExecution ? .none : .bubblewrap
                let sandbox = PythonSandbox(configuration: configuration)
                if type.executesCode, index != nil, let problem = sandbox.isolationProblem() { throw ValidationError(problem.description) }
                let context = ScoringContext(sandbox: sandbox)
                var example: SiriusTasks.TaskExample? = nil
                if let reference {
                    if type.name == HumanEval.name {
                        throw ValidationError("humaneval is scored by running the example's tests: use --index instead of --reference")
                    }
                    example = SiriusTasks.TaskExample(id: "", index: 0, input: "", reference: reference)
                } else if let index {
                    let dir = dataDir.map { DataDirectory(path: $0) } ?? .default
                    let t = try type.load(TaskConfiguration(dataDirectory: dir))
                    guard t.examples.indices.contains(index) else {
                        throw TaskError.noSuchExample("--index \(index) is out of range: \(task) has \(t.examples.count) examples")
                    }
                    example = t.examples[index]
                }
                let answer = type.extract(completion)
                let score = example.map { type.score(completion, for: $0, context: context) }
                if json {
                    var object: [String: Any] = ["task": task, "answer": answer ?? NSNull(), "correct": score.map { $0.correct } ?? NSNull()]
                    if let example { object["reference"] = example.reference }
                    if let score {
                        object["metrics"] = score.metrics.map { m -> [String: Any] in
                            ["name": m.name, "answer": m.answer ?? NSNull(), "correct": m.correct]
                        }
                        if let detail = score.detail { object["detail"] = detail }
                    }
                    try printJSON(object)
                } else {
                    print("answer: \(answer.map { $0.debugDescription } ?? "(none)")")
                    if let score {
                        print("correct: \(score.correct)")
                        for m in score.metrics.dropFirst() {
                            print("\(m.name): answer \(m.answer.map { $0.debugDescription } ?? "(none)"), correct \(m.correct)")
                        }
                        if let detail = score.detail { print("detail: \(detail)") }
                    }
                }
            } catch {
                throw taskFailure(error)
            }
        }
    }

    struct CheckHumanEval: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check-humaneval",
            abstract: "Run every HumanEval canonical solution in the sandbox (all must pass), and adversarial completions (all must fail).")

        @Option(name: .customLong("data-dir"), help: "Benchmark data directory (default: $SIRIUS_DATA_DIR or ~/.cache/sirius/data).")
        var dataDir: String?

        @Option(help: "Check only the first N problems.")
        var limit: Int?

        @Option(help: "Programs run at once.")
        var jobs: Int = ProcessInfo.processInfo.activeProcessorCount

        @Option(help: "Execution time limit per program, seconds (the reference used 3).")
        var timeout: Double = 3

        @Option(help: "Python interpreter.")
        var python: String = "python3"

        @Flag(help: "Run the programs without bubblewrap's namespaces (they can then read this machine's files and reach its network).")
        var unsafeCodeExecution = false

        func run() throws {
            let task: HumanEval
            do {
                let dir = dataDir.map { DataDirectory(path: $0) } ?? .default
                task = try HumanEval.load(TaskConfiguration(dataDirectory: dir))
            } catch {
                throw taskFailure(error)
            }
            var configuration = PythonSandbox.Configuration()
            configuration.timeLimit = timeout
            configuration.python = python
            configuration.isolation = unsafeCodeExecution ? .none : .bubblewrap
            let sandbox = PythonSandbox(configuration: configuration)
            if let problem = sandbox.isolationProblem() { throw ValidationError(problem.description) }
            print("isolation: \(configuration.isolation == .bubblewrap ? "bubblewrap" : "none (--unsafe-code-execution)")")
            let examples = Array(task.examples(limit: limit))

            let start = Date()
            let programs = examples.map { HumanEval.program(completion: HumanEval.canonicalCompletion(for: $0), for: $0)! }
            let results = sandbox.runAll(programs, jobs: jobs)
            let wall = Date().timeIntervalSince(start)
            let passed = results.filter(\.passed).count
            let slowest = zip(examples, results).max { $0.1.wallSeconds < $1.1.wallSeconds }
            print(String(format: "canonical solutions: %d/%d passed in %.2f s wall (%d jobs, %.1f s limit)",
                         passed, results.count, wall, jobs, timeout))
            if let slowest {
                print(String(format: "slowest: %@ %.2f s", slowest.0.id, slowest.1.wallSeconds))
            }
            for (e, r) in zip(examples, results) where !r.passed {
                print("FAIL \(e.id): \(r.summary)")
            }

            // Adversarial completions for the first problem: each must fail within the limit.
            var adversarialOK = true
            if let first = examples.first {
                let cases: [(String, String)] = [
                    ("infinite loop", "\n    while True:\n        pass\n"),
                    ("unbounded allocation", "\n    x = []\n    while True:\n        x.append(bytearray(1 << 20))\n"),
                    ("os._exit(0)", "\n    import os\n    os._exit(0)\n"),
                    ("sys.exit(0)", "\n    import sys\n    sys.exit(0)\n"),
                    ("fork", "\n    import os\n    os.fork()\n"),
                ]
                for (name, completion) in cases {
                    let r = sandbox.run(HumanEval.program(completion: completion, for: first)!)
                    let ok = !r.passed && r.wallSeconds < timeout + 2
                    adversarialOK = adversarialOK && ok
                    print(String(format: "adversarial %@: %@ (%.2f s) %@", name, r.summary, r.wallSeconds, ok ? "ok" : "NOT OK"))
                }
            }
            if passed != results.count || !adversarialOK { throw ExitCode.failure }
        }
    }
}
