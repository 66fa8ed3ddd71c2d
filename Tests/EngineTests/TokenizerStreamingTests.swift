import Foundation
import Testing
import SiriusEngine

@Suite struct TokenizerStreamingTests {
    /// Feeding ids one by one yields exactly `decode(ids)`, never a replacement character, and nothing while
    /// a character is incomplete.
    func checkStream(_ tok: Tokenizer, _ text: String, stripLeadingSpace: Bool) {
        let ids = tok.encode(text, addBOS: false, parseSpecial: false)
        let s = StreamingDetokenizer(tokenizer: tok, stripLeadingSpace: stripLeadingSpace)
        var out = ""
        for id in ids {
            let piece = s.append(id)
            #expect(!piece.unicodeScalars.contains("\u{FFFD}"), "partial UTF-8 leaked for \(text.debugDescription)")
            out += piece
        }
        out += s.finish()
        #expect(out == tok.decode(ids), "stream != decode for \(text.debugDescription)")
    }

    static let multiByte = ["😀😃😄 emoji", "🦙🐪 x🦙y", "\u{10FFFD}", "👨‍👩‍👧‍👦", "日本語のテキスト", "한국어", "€50 ½ → ✓", "ℌ𝔢𝔩𝔩𝔬 𝟙𝟚𝟛", "café naïve"]

    @Test func byteLevelSplitsCharactersAcrossTokens() throws {
        let tok = try TokFixtures.llama3()
        // The small vocabulary has no token for 🦙 (not in its training text): its 4 bytes are separate tokens.
        let ids = tok.encode("🦙", addBOS: false)
        #expect(ids.count > 1)
        let s = StreamingDetokenizer(tokenizer: tok)
        for id in ids.dropLast() { #expect(s.append(id) == "") }
        #expect(s.pendingByteCount > 0)
        #expect(s.append(ids.last!) == "🦙")
        for t in Self.multiByte { checkStream(tok, t, stripLeadingSpace: false) }
    }

    @Test func sentencePieceByteFallbackStreams() throws {
        let tok = try TokFixtures.llama2()
        let ids = tok.encode("🦙", addBOS: false)
        // ▁ then four <0xNN> byte-fallback tokens
        #expect(ids.count == 5)
        let s = StreamingDetokenizer(tokenizer: tok, stripLeadingSpace: true)
        var got: [String] = []
        for id in ids { got.append(s.append(id)) }
        #expect(got == ["", "", "", "", "🦙"])
        for t in Self.multiByte { checkStream(tok, t, stripLeadingSpace: true) }
    }

    @Test func skipSpecialAndFinish() throws {
        let tok = try TokFixtures.llama3()
        let ids = tok.encode("hi<|eot_id|>", addBOS: true)
        let s = StreamingDetokenizer(tokenizer: tok, skipSpecial: true)
        #expect(s.append(contentsOf: ids) == "hi")
        // An incomplete character at the end comes out as U+FFFD on finish.
        let e = tok.encode("é", addBOS: false)
        if e.count > 1 {
            #expect(s.append(e[0]) == "")
            #expect(s.finish() == "\u{FFFD}")
        }
    }

    @Test func roundTripsOnCorpus() throws {
        let corpus = try TokFixtures.corpus
        for (name, tok) in [("llama3", try TokFixtures.llama3()), ("llama2", try TokFixtures.llama2())] {
            var bad: [String] = []
            for s in corpus where tok.decode(tok.encode(s, addBOS: false, parseSpecial: false)) != s { bad.append(s.debugDescription) }
            #expect(bad.isEmpty, "\(name): decode(encode(s)) != s for \(bad.prefix(10))")
        }
        let l3 = try TokFixtures.llama3()
        for s in corpus { #expect(l3.decode(l3.encode(s)) == (s == "" ? "<|begin_of_text|>" : "<|begin_of_text|>" + s)) }
    }

    /// Long inputs stay fast: a 200k-character word without any split point and 1 MB of ordinary text.
    @Test func longInputsAreNotQuadratic() throws {
        let tok = try TokFixtures.llama2()  // SentencePiece: the whole segment is one BPE sequence
        let word = String(repeating: "ab", count: 100_000)
        var t0 = Date()
        let ids = tok.encode(word, addBOS: false)
        let spm = Date().timeIntervalSince(t0)
        #expect(tok.decode(ids) == word)
        let l3 = try TokFixtures.llama3()
        let letters = String(repeating: "xyzzy", count: 40_000)  // one pre-token of 200k letters
        t0 = Date()
        let ids2 = l3.encode(letters, addBOS: false)
        let bl = Date().timeIntervalSince(t0)
        #expect(l3.decode(ids2) == letters)
        print(String(format: "long inputs: SentencePiece 200k chars %.0f ms, byte-level 200k-letter word %.0f ms", spm * 1000, bl * 1000))
        #expect(spm < 30 && bl < 30, "quadratic behaviour? (a quadratic merge loop needs minutes here)")
    }

    @Test func chatFormatDetectionWithoutTemplate() {
        #expect(ChatFormat.detect(template: nil, specialTokens: ["<|im_start|>", "<|im_end|>"], bosToken: nil, eosToken: nil) == .chatML(defaultSystemPrompt: nil))
        #expect(ChatFormat.detect(template: nil, specialTokens: ["<|start_header_id|>", "<|eot_id|>"], bosToken: "<|begin_of_text|>", eosToken: nil) == .llama3(bos: "<|begin_of_text|>"))
        #expect(ChatFormat.detect(template: nil, specialTokens: [], bosToken: nil, eosToken: nil) == nil)
        // A ChatML template without a default system prompt (Qwen-style escaped newlines handled too).
        let t = "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n'}}{% endfor %}"
        #expect(ChatFormat.detect(template: t, specialTokens: [], bosToken: nil, eosToken: nil) == .chatML(defaultSystemPrompt: nil))
        let q = "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
        #expect(ChatFormat.detect(template: q, specialTokens: [], bosToken: nil, eosToken: nil) == .chatML(defaultSystemPrompt: "You are a helpful assistant."))
    }
}
