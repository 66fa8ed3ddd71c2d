import SiriusEngine
import Testing

/// The stop rules every decoder shares (sirius-method.md §11 "Stopping"), on a real byte-level tokenizer.
@Suite("Committed text and stop rules")
struct CommittedTextTests {
    let tok = try! TokFixtures.llama3()

    func commit(_ text: String, stop: [String], max: Int = 1000, eos: Set<Int32> = []) -> (CommittedText, String) {
        let c = CommittedText(tokenizer: tok, maxNewTokens: max, stopStrings: stop, eosIDs: eos)
        var streamed = ""
        for id in tok.encode(text, addBOS: false) where !c.isFinished { streamed += c.append(id) }
        return (c, streamed)
    }

    @Test("the text is cut before the first stop string; streamed text equals the final text")
    func cutAtStop() {
        let (c, streamed) = commit("The answer is 42.\n\nQ: what next?", stop: ["Q:"])
        #expect(c.stopReason == .stop)
        #expect(c.text == "The answer is 42.\n\n")
        #expect(streamed == c.text)
    }

    @Test("the earliest of several stop strings wins, also when a stop string ends inside a token")
    func earliestStop() {
        let (c, _) = commit("def f():\n    return 1\ndef g(): pass\nclass X: pass", stop: ["\nclass", "\ndef"])
        #expect(c.text == "def f():\n    return 1")
        #expect(c.stopReason == .stop)
        let (d, _) = commit("abcdefgh", stop: ["cde"])
        #expect(d.text == "ab")
    }

    @Test("tokens after the one completing the stop string are not committed")
    func noTokensAfterStop() {
        let ids = tok.encode("one two three four five", addBOS: false)
        let c = CommittedText(tokenizer: tok, maxNewTokens: 100, stopStrings: [" three"], eosIDs: [])
        for id in ids { c.append(id) }
        #expect(c.text == "one two")
        #expect(c.ids.count < ids.count)
        #expect(tok.decode(c.ids).contains(" three"))
        #expect(!tok.decode(Array(c.ids.dropLast())).contains(" three"))
    }

    @Test("EOS ends the text and is kept in the ids, not in the text; max tokens ends it too")
    func eosAndLength() {
        let ids = tok.encode("hello world again", addBOS: false)
        let eos = Int32(tok.vocabSize - 1)
        let c = CommittedText(tokenizer: tok, maxNewTokens: 100, eosIDs: [eos])
        c.append(ids[0]); c.append(eos); c.append(ids[1])
        #expect(c.stopReason == .eos)
        #expect(c.ids == [ids[0], eos])
        #expect(c.text == tok.decode([ids[0]]))
        let (d, _) = commit("hello world again and again", stop: [], max: 2)
        #expect(d.stopReason == .length && d.ids.count == 2)
    }

    @Test("unicode split across tokens comes out whole; a stop string never matches half a character")
    func unicode() {
        let (c, streamed) = commit("naïve café — 日本語テキスト END more", stop: [" END"])
        #expect(c.text == "naïve café — 日本語テキスト")
        #expect(streamed == c.text)
    }
}
