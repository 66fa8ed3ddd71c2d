import ArgumentParser
import SiriusEngine

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Print the token ids of a text.",
        discussion: """
            Examples:
              sirius-worker tokenize --text 'Hello world'
              sirius-worker tokenize --text-file prompt.txt --json
            """)

    @Option(name: [.short, .long], help: "A .gguf file or a Hugging Face model directory.")
    var model: String = EngineOptions.defaultModel
    @Option(help: "The text to tokenize.") var text: String?
    @Option(help: "Read the text from this file.") var textFile: String?
    @Flag(help: "Wrap the text as one user message in the model's chat format.") var chat = false
    @Flag(help: "Print one JSON object: ids and the text of each token.") var json = false

    func run() throws {
        let input = try textOrFile(text, textFile, name: "text")
        let tokenizer = try LoadedModel.tokenizer(path: model)
        let ids: [Int32]
        if chat {
            guard let f = tokenizer.chatFormat else { throw ValidationError("--chat: no recognised chat template in the model") }
            ids = tokenizer.encode(f.format(messages: [ChatMessage(role: "user", content: input)], addGenerationPrompt: true), addBOS: false)
        } else {
            ids = tokenizer.encode(input)
        }
        if json {
            try printJSON(["ids": ids.map(Int.init), "tokens": ids.map { tokenizer.tokenText($0) }, "count": ids.count])
        } else {
            print(ids.map(String.init).joined(separator: " "))
        }
    }
}
