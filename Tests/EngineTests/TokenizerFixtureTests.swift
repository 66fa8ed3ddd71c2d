import Foundation
import Testing
import TestSupport
import SiriusEngine

/// Self-contained tokenizer tests: the Llama-3-style and Llama-2-style tokenizers built by
/// tools/make_tokenizer_fixtures.py, through tokenizer.json and through a GGUF written here.
@Suite struct TokenizerFixtureTests {
    @Test func corpusHasAtLeast200Strings() throws {
        #expect(try TokFixtures.corpus.count >= 200)
    }

    @Test func llama3JSONMatchesReference() throws {
        let tok = try TokFixtures.llama3()
        let (entries, withSpecial) = try TokFixtures.expected("llama3")
        let bad = corpusMismatches(tok, entries)
        print("llama3 tokenizer.json: \(entries.count - Set(bad.map { $0 }).count >= 0 ? entries.count - bad.count : 0)/\(entries.count) entries fully matched")
        #expect(bad.isEmpty, "\(bad.count) mismatches:\n\(bad.prefix(20).joined(separator: "\n"))")
        for (text, ids) in withSpecial { #expect(tok.encode(text) == ids, "with BOS: \(text.debugDescription)") }
        #expect(tok.bosID == tok.tokenID("<|begin_of_text|>"))
        #expect(tok.addsBOSByDefault)
        #expect(tok.eosIDs == Set(["<|eot_id|>", "<|end_of_text|>"].compactMap(tok.tokenID)))
        #expect(tok.chatFormat == .llama3(bos: "<|begin_of_text|>"))
    }

    /// Qwen2's split regex (single digits), from tokenizer.json and as GGUF metadata (pre "qwen2"); ChatML
    /// with Qwen2-Instruct's default system prompt.
    @Test func qwen2MatchesReference() throws {
        let json = try TokFixtures.qwen2()
        let (entries, withSpecial) = try TokFixtures.expected("qwen2")
        #expect(entries.contains { $0.text.contains("12345") || $0.text.contains("2024") }, "the corpus must have digit runs")
        let n = json.vocabSize
        var w = GGUFWriter()
        w.metadata = [("general.architecture", .string("qwen2")), ("tokenizer.ggml.model", .string("gpt2")),
                      ("tokenizer.ggml.pre", .string("qwen2")), ("tokenizer.ggml.tokens", .strings((0..<n).map { json.tokenText(Int32($0)) })),
                      ("tokenizer.ggml.token_type", .int32s((0..<n).map { Int32(json.isSpecialToken(Int32($0)) ? 3 : 1) })),
                      ("tokenizer.ggml.merges", .strings(try TokFixtures.merges("qwen2/tokenizer.json"))),
                      ("tokenizer.ggml.eos_token_id", .u32(UInt32(json.tokenID("<|im_end|>")!))),
                      ("tokenizer.ggml.add_bos_token", .bool(false))]
        let path = try w.writeTemporary(name: "qwen2")
        defer { try? FileManager.default.removeItem(atPath: path) }
        for tok in [json, try Tokenizer(gguf: GGUFFile(path: path))] {
            let bad = corpusMismatches(tok, entries)
            #expect(bad.isEmpty, "\(bad.count) mismatches:\n\(bad.prefix(20).joined(separator: "\n"))")
            for (text, ids) in withSpecial { #expect(tok.encode(text) == ids, "\(text.debugDescription)") }
            #expect(!tok.addsBOSByDefault)
        }
        #expect(json.chatFormat == .chatML(defaultSystemPrompt: "You are a helpful assistant."))
        try checkChat(json, "qwen2", file: "qwen2_chat_expected.json")
    }

    @Test func llama2JSONMatchesReference() throws {
        let tok = try TokFixtures.llama2()
        let (entries, withSpecial) = try TokFixtures.expected("llama2")
        let bad = corpusMismatches(tok, entries)
        #expect(bad.isEmpty, "\(bad.count) mismatches:\n\(bad.prefix(20).joined(separator: "\n"))")
        for (text, ids) in withSpecial { #expect(tok.encode(text) == ids, "with BOS: \(text.debugDescription)") }
        #expect(tok.bosID == 1)
        #expect(tok.addsBOSByDefault)
        #expect(tok.eosIDs == [2])
        #expect(tok.chatFormat == .llama2(bos: "<s>", eos: "</s>"))
    }

    /// The Llama-3-style vocabulary written as GGUF metadata (model gpt2, pre llama-bpe) tokenizes exactly
    /// like its tokenizer.json.
    @Test func llama3GGUFMatchesJSON() throws {
        let json = try TokFixtures.llama3()
        let n = json.vocabSize
        let tokens = (0..<n).map { json.tokenText(Int32($0)) }
        let types = (0..<n).map { Int32(json.isSpecialToken(Int32($0)) ? 3 : 1) }
        let cfg = try TokFixtures.json("llama3/tokenizer_config.json") as! [String: Any]
        var w = GGUFWriter()
        w.metadata = [("general.architecture", .string("llama")), ("tokenizer.ggml.model", .string("gpt2")),
                ("tokenizer.ggml.pre", .string("llama-bpe")), ("tokenizer.ggml.tokens", .strings(tokens)),
                ("tokenizer.ggml.token_type", .int32s(types)),
                ("tokenizer.ggml.merges", .strings(try TokFixtures.merges("llama3/tokenizer.json"))),
                ("tokenizer.ggml.bos_token_id", .u32(UInt32(json.tokenID("<|begin_of_text|>")!))),
                ("tokenizer.ggml.eos_token_id", .u32(UInt32(json.tokenID("<|end_of_text|>")!))),
                ("tokenizer.ggml.eot_token_id", .u32(UInt32(json.tokenID("<|eot_id|>")!))),
                ("tokenizer.ggml.add_bos_token", .bool(true)),
                ("tokenizer.chat_template", .string(cfg["chat_template"] as! String))]
        let path = try w.writeTemporary(name: "llama3")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let tok = try Tokenizer(gguf: GGUFFile(path: path))
        let (entries, withSpecial) = try TokFixtures.expected("llama3")
        let bad = corpusMismatches(tok, entries)
        #expect(bad.isEmpty, "\(bad.count) mismatches:\n\(bad.prefix(20).joined(separator: "\n"))")
        for (text, ids) in withSpecial { #expect(tok.encode(text) == ids) }
        #expect(tok.eosIDs == json.eosIDs)
        #expect(tok.chatFormat == json.chatFormat)
    }

    /// The Llama-2-style vocabulary as GGUF (model llama: tokens + scores + token_type, no merges; the
    /// score of a normal piece is minus its id, as SentencePiece orders BPE pieces) tokenizes exactly like
    /// its tokenizer.json.
    @Test func llama2GGUFMatchesJSON() throws {
        let json = try TokFixtures.llama2()
        let n = json.vocabSize
        let tokens = (0..<n).map { json.tokenText(Int32($0)) }
        func isByte(_ t: String) -> Bool { t.count == 6 && t.hasPrefix("<0x") && t.hasSuffix(">") }
        let types: [Int32] = tokens.enumerated().map { i, t in
            i == 0 ? 2 : json.isSpecialToken(Int32(i)) ? 3 : isByte(t) ? 6 : 1
        }
        let scores: [Float] = types.enumerated().map { i, t in t == 1 ? -Float(i) : 0 }
        var w = GGUFWriter()
        w.metadata = [("general.architecture", .string("llama")), ("tokenizer.ggml.model", .string("llama")),
                ("tokenizer.ggml.tokens", .strings(tokens)), ("tokenizer.ggml.scores", .floats(scores)),
                ("tokenizer.ggml.token_type", .int32s(types)),
                ("tokenizer.ggml.bos_token_id", .u32(1)), ("tokenizer.ggml.eos_token_id", .u32(2)),
                ("tokenizer.ggml.unknown_token_id", .u32(0)), ("tokenizer.ggml.add_bos_token", .bool(true)),
                ("tokenizer.ggml.add_space_prefix", .bool(true))]
        let path = try w.writeTemporary(name: "llama2")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let tok = try Tokenizer(gguf: GGUFFile(path: path))
        let (entries, withSpecial) = try TokFixtures.expected("llama2")
        let bad = corpusMismatches(tok, entries)
        #expect(bad.isEmpty, "\(bad.count) mismatches:\n\(bad.prefix(20).joined(separator: "\n"))")
        for (text, ids) in withSpecial { #expect(tok.encode(text) == ids) }
        #expect(tok.eosIDs == [2])
        // No chat template in this GGUF and no ChatML/Llama-3 specials: no format.
        #expect(tok.chatFormat == nil)
    }

    @Test(arguments: ["llama3", "llama2"])
    func chatTemplateMatchesTransformers(_ name: String) throws {
        let tok = name == "llama3" ? try TokFixtures.llama3() : try TokFixtures.llama2()
        try checkChat(tok, name)
    }

    @Test func parseSpecialOff() throws {
        let tok = try TokFixtures.llama3()
        let on = tok.encode("a<|eot_id|>b", addBOS: false)
        let off = tok.encode("a<|eot_id|>b", addBOS: false, parseSpecial: false)
        #expect(on.contains(tok.tokenID("<|eot_id|>")!))
        #expect(!off.contains(tok.tokenID("<|eot_id|>")!))
        #expect(tok.decode(off) == "a<|eot_id|>b")
    }

    /// Mistral's [INST] templates (no <<SYS>> block) are not Llama-2's: no format rather than a wrong one
    /// (`--chat` then says the template is not recognised); Gemma's turns are recognised.
    @Test func chatFormatDetectionByTemplate() throws {
        let mistral = "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
            + "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% endif %}{% endfor %}"
        #expect(ChatFormat.detect(template: mistral, specialTokens: [], bosToken: "<s>", eosToken: "</s>") == nil)
        let cfg = try TokFixtures.json("llama2/tokenizer_config.json") as! [String: Any]
        #expect(ChatFormat.detect(template: cfg["chat_template"] as? String, specialTokens: [], bosToken: "<s>", eosToken: "</s>")
                == .llama2(bos: "<s>", eos: "</s>"))
        #expect(ChatFormat.detect(template: "{{ '<start_of_turn>' + role }}", specialTokens: [], bosToken: "<bos>", eosToken: "<eos>") == .gemma(bos: "<bos>"))
    }

    @Test func badFilesThrowModelLoadError() throws {
        let p = FileManager.default.temporaryDirectory.appendingPathComponent("bad-tok-\(UUID().uuidString).json").path
        try Data("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}".utf8).write(to: URL(fileURLWithPath: p))
        defer { try? FileManager.default.removeItem(atPath: p) }
        #expect(throws: ModelLoadError.self) { try Tokenizer(tokenizerJSON: p) }
        try Data("{\"model\": ".utf8).write(to: URL(fileURLWithPath: p))
        #expect(throws: ModelLoadError.self) { try Tokenizer(tokenizerJSON: p) }
        var w = GGUFWriter()
        w.metadata = [("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("deepseek-coder")),
                ("tokenizer.ggml.tokens", .strings(["a"])), ("tokenizer.ggml.merges", .strings([]))]
        let g = try w.writeTemporary(name: "bad")
        defer { try? FileManager.default.removeItem(atPath: g) }
        #expect(throws: ModelLoadError.self) { try Tokenizer(gguf: GGUFFile(path: g)) }
    }
}

/// Checks `ChatFormat` against the transformers renderings in chat_expected.json (or `file`).
func checkChat(_ tok: Tokenizer, _ name: String, file: String = "chat_expected.json") throws {
    let all = try TokFixtures.json(file) as! [String: Any]
    let cases = all[name] as! [[String: Any]]
    let format = try #require(tok.chatFormat, "no chat format detected for \(name)")
    for c in cases {
        let msgs = (c["messages"] as! [[String: String]]).map { ChatMessage(role: $0["role"]!, content: $0["content"]!) }
        let gen = c["add_generation_prompt"] as! Bool
        let text = format.format(messages: msgs, addGenerationPrompt: gen)
        #expect(text == c["text"] as! String, "\(name) \(c["name"]!) gen=\(gen)")
        let ids = (c["ids"] as! [NSNumber]).map { Int32($0.intValue) }
        #expect(tok.encode(text, addBOS: false) == ids, "\(name) \(c["name"]!) ids")
    }
}
