/// One chat message.
public struct ChatMessage: Sendable, Equatable {
    public var role: String
    public var content: String
    public init(role: String, content: String) { self.role = role; self.content = content }
}

/// The chat prompt formats the engine can render without a Jinja interpreter. Each reproduces the
/// corresponding official template exactly (verified against transformers' `apply_chat_template`).
public enum ChatFormat: Sendable, Equatable {
    /// `<|im_start|>role\ncontent<|im_end|>\n` (SmolLM2, Qwen). When the template injects a default system
    /// prompt for conversations that do not start with one, it is carried here (read from the template).
    case chatML(defaultSystemPrompt: String?)
    /// Llama-3.0 instruct: `bos<|start_header_id|>role<|end_header_id|>\n\ncontent.strip()<|eot_id|>`.
    /// (Llama-3.1's "Cutting Knowledge Date" system block and tool calls are not reproduced.)
    case llama3(bos: String)
    /// Llama-2 chat: `bos[INST] <<SYS>>\nsys\n<</SYS>>\n\nuser [/INST] assistant eos`.
    case llama2(bos: String, eos: String)
    /// Gemma (2 and 3): `bos<start_of_turn>role\ncontent.strip()<end_of_turn>\n`, the assistant's role
    /// named `model`; a system message is not a turn: its text and a blank line open the first turn.
    case gemma(bos: String)

    /// The text of the token that ends an assistant turn.
    public var endOfTurnToken: String {
        switch self {
        case .chatML: "<|im_end|>"
        case .llama3: "<|eot_id|>"
        case .llama2(_, let eos): eos
        case .gemma: "<end_of_turn>"
        }
    }

    /// Picks the format from the model's chat template (by its marker strings), or, when there is no
    /// template, from the special tokens the vocabulary has. Returns nil when neither says.
    public static func detect(template: String?, specialTokens: Set<String>, bosToken: String?, eosToken: String?) -> ChatFormat? {
        if let t = template {
            if t.contains("<|im_start|>") { return .chatML(defaultSystemPrompt: defaultChatMLSystemPrompt(t)) }
            if t.contains("<|start_header_id|>") { return .llama3(bos: bosToken ?? "<|begin_of_text|>") }
            // Llama-2's template has the <<SYS>> block; Mistral's [INST] templates differ from it (and
            // between versions): not rendered at all rather than rendered wrong.
            if t.contains("[INST]") { return t.contains("<<SYS>>") ? .llama2(bos: bosToken ?? "<s>", eos: eosToken ?? "</s>") : nil }
            if t.contains("<start_of_turn>") { return .gemma(bos: bosToken ?? "<bos>") }
        }
        // Gemma's base models ship no template, but their vocabulary has the turn markers.
        if specialTokens.contains("<start_of_turn>") && specialTokens.contains("<end_of_turn>") { return .gemma(bos: bosToken ?? "<bos>") }
        if specialTokens.contains("<|im_start|>") && specialTokens.contains("<|im_end|>") { return .chatML(defaultSystemPrompt: nil) }
        if specialTokens.contains("<|start_header_id|>") && specialTokens.contains("<|eot_id|>") {
            return .llama3(bos: bosToken ?? "<|begin_of_text|>")
        }
        return nil
    }

    /// A ChatML template's built-in system prompt: the literal between `<|im_start|>system` + newline and
    /// `<|im_end|>`, when the template emits it only if the first message is not a system message.
    static func defaultChatMLSystemPrompt(_ t: String) -> String? {
        guard t.contains("!= 'system'") || t.contains("!= \"system\"") else { return nil }
        for (marker, escaped) in [("<|im_start|>system\n", false), ("<|im_start|>system\\n", true)] {
            var rest = t[...]
            while let r = rest.range(of: marker) {
                let after = rest[r.upperBound...]
                guard let end = after.range(of: "<|im_end|>") else { break }
                let literal = after[..<end.lowerBound]
                if !literal.isEmpty && !literal.contains("'") && !literal.contains("\"") && !literal.contains("{") && !literal.contains("+") {
                    return escaped ? literal.replacingOccurrences(of: "\\n", with: "\n") : String(literal)
                }
                rest = after
            }
        }
        return nil
    }

    /// Renders the conversation as the model's template would (`apply_chat_template(messages,
    /// tokenize=False, add_generation_prompt:)`). The result contains the special tokens as text
    /// (including BOS for Llama formats): encode it with `parseSpecial: true, addBOS: false`.
    public func format(messages: [ChatMessage], addGenerationPrompt: Bool) -> String {
        var out = ""
        switch self {
        case .chatML(let defaultSystem):
            for (i, m) in messages.enumerated() {
                if i == 0 && m.role != "system", let d = defaultSystem {
                    out += "<|im_start|>system\n" + d + "<|im_end|>\n"
                }
                out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n"
            }
            if addGenerationPrompt { out += "<|im_start|>assistant\n" }
        case .llama3(let bos):
            for (i, m) in messages.enumerated() {
                if i == 0 { out += bos }
                out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + pythonStrip(m.content) + "<|eot_id|>"
            }
            if addGenerationPrompt { out += "<|start_header_id|>assistant<|end_header_id|>\n\n" }
        case .llama2(let bos, let eos):
            var rest = messages[...]
            var system: String? = nil
            if let f = rest.first, f.role == "system" { system = f.content; rest = rest.dropFirst() }
            for (i, m) in rest.enumerated() {
                var content = m.content
                if i == 0, let s = system { content = "<<SYS>>\n" + s + "\n<</SYS>>\n\n" + content }
                if m.role == "user" { out += bos + "[INST] " + pythonStrip(content) + " [/INST]" }
                else if m.role == "assistant" { out += " " + pythonStrip(content) + " " + eos }
            }
        case .gemma(let bos):
            out += bos
            var rest = messages[...]
            var prefix = ""
            if let f = rest.first, f.role == "system" { prefix = f.content + "\n\n"; rest = rest.dropFirst() }
            for (i, m) in rest.enumerated() {
                let role = m.role == "assistant" ? "model" : m.role
                out += "<start_of_turn>" + role + "\n" + (i == 0 ? prefix : "") + pythonStrip(m.content) + "<end_of_turn>\n"
            }
            if addGenerationPrompt { out += "<start_of_turn>model\n" }
        }
        return out
    }
}

/// Python's `str.strip()` (also Jinja's `trim`): removes Unicode whitespace and the separators 0x1C–0x1F.
func pythonStrip(_ s: String) -> String {
    func ws(_ c: Unicode.Scalar) -> Bool { c.properties.isWhitespace || (0x1C...0x1F).contains(c.value) }
    let u = s.unicodeScalars
    guard let a = u.firstIndex(where: { !ws($0) }) else { return "" }
    let b = u.lastIndex(where: { !ws($0) })!
    return String(u[a...b])
}
