import Foundation
import Testing
import SiriusEngine

/// SmolLM2-135M-Instruct's own tokenizer from its GGUF (needs the real model file; fails, never skips,
/// when it is missing).
@Suite struct TokenizerSmolLM2Tests {
    static func load() throws -> Tokenizer { try Tokenizer(ggufPath: try TokTestModel.require()) }

    @Test func corpusMatchesReference() throws {
        let tok = try Self.load()
        let (entries, withSpecial) = try TokFixtures.expected("smollm2")
        let bad = corpusMismatches(tok, entries)
        #expect(bad.isEmpty, "\(bad.count) mismatches:\n\(bad.prefix(20).joined(separator: "\n"))")
        for (text, ids) in withSpecial { #expect(tok.encode(text) == ids, "default specials: \(text.debugDescription)") }
        // Where transformers' GGUF loader (which drops the Digits pre-tokenizer) differs, we follow the model.
        let differing = entries.filter { $0.idsTransformersGGUF != nil }
        #expect(differing.allSatisfy { tok.encode($0.text, addBOS: false) != $0.idsTransformersGGUF })
        print("smollm2: \(entries.count - bad.count)/\(entries.count) corpus strings OK; \(differing.count) of them differ from transformers-GGUF (Digits step)")
    }

    @Test func metadata() throws {
        let tok = try Self.load()
        #expect(tok.vocabSize == 49152)
        #expect(tok.bosID == 1)
        #expect(!tok.addsBOSByDefault)
        #expect(tok.eosIDs == [0, 2])  // <|endoftext|> (control end marker) and <|im_end|> (eos)
        #expect(tok.tokenText(0) == "<|endoftext|>" && tok.tokenText(1) == "<|im_start|>" && tok.tokenText(2) == "<|im_end|>")
        #expect(tok.chatFormat == .chatML(defaultSystemPrompt: "You are a helpful AI assistant named SmolLM, trained by Hugging Face"))
    }

    @Test func chatTemplateMatchesTransformers() throws {
        try checkChat(try Self.load(), "smollm2")
    }

    @Test func loadAndEncodeTiming() throws {
        let path = try TokTestModel.require()
        let gguf = try GGUFFile(path: path)
        var best = Double.infinity
        for _ in 0..<3 {
            let t0 = Date()
            _ = try Tokenizer(gguf: gguf)
            best = min(best, Date().timeIntervalSince(t0))
        }
        let tok = try Tokenizer(gguf: gguf)
        let text = try TokFixtures.corpus.joined(separator: "\n")
        let big = String(repeating: text, count: 20)
        let t1 = Date()
        let ids = tok.encode(big)
        let enc = Date().timeIntervalSince(t1)
        let t2 = Date()
        let back = tok.decode(ids)
        let dec = Date().timeIntervalSince(t2)
        #expect(back == big)
        print(String(format: "smollm2 tokenizer: build from parsed GGUF %.1f ms; encode %d bytes → %d tokens in %.1f ms; decode %.1f ms",
                     best * 1000, big.utf8.count, ids.count, enc * 1000, dec * 1000))
    }
}
