import SiriusEngine
import Testing
import TestSupport

/// Generation-level errors and limits: a prompt that does not fit the context is refused with a
/// message that says what to do; the context filling up ends a generation cleanly.
@Suite("Generation limits")
struct GenerationLimitsTests {
    let model = try! TinyLlama(.small()).loadGGUF(TinyWeightTypes(.f32)).model

    @Test("a prompt longer than the context is refused with the fix in the message")
    func promptLongerThanContext() throws {
        let t = Transformer(model: model, capacity: 8)
        let committed = CommittedText(tokenizer: nil, maxNewTokens: 4, eosIDs: [])
        let prompt: [Int32] = Array(repeating: 5, count: 8)
        let error = #expect(throws: GenerationError.self) {
            _ = try PlainDecoder.generate(t, promptIDs: prompt, committed: committed, sampling: SamplingParams())
        }
        #expect(error?.description.contains("8 tokens") == true)
        #expect(error?.description.contains("--context") == true)
    }

    @Test("an empty prompt is refused")
    func emptyPrompt() throws {
        let t = Transformer(model: model, capacity: 8)
        let committed = CommittedText(tokenizer: nil, maxNewTokens: 4, eosIDs: [])
        #expect(throws: GenerationError.self) {
            _ = try PlainDecoder.generate(t, promptIDs: [], committed: committed, sampling: SamplingParams())
        }
    }

    @Test("a full context ends the generation with stop reason context")
    func contextFull() throws {
        let t = Transformer(model: model, capacity: 6)
        let committed = CommittedText(tokenizer: nil, maxNewTokens: 100, eosIDs: [])
        let r = try PlainDecoder.generate(t, promptIDs: [1, 2, 3], committed: committed, sampling: SamplingParams())
        #expect(r.stopReason == .context)
        // 3 prompt positions + 3 decode steps fill 6 slots; the last step's token is the 4th output.
        #expect(r.outputIDs.count == 4)
    }

    @Test("EOS ends a generation and is kept in the ids; max tokens is honoured")
    func eosAndLength() throws {
        let t = Transformer(model: model, capacity: 64)
        let free = try PlainDecoder.generate(t, promptIDs: [1, 2, 3], committed: CommittedText(tokenizer: nil, maxNewTokens: 10, eosIDs: []),
                                             sampling: SamplingParams())
        #expect(free.outputIDs.count == 10 && free.stopReason == .length)
        let eos = free.outputIDs[4]
        let first = free.outputIDs.firstIndex(of: eos)!
        let stopped = try PlainDecoder.generate(t, promptIDs: [1, 2, 3], committed: CommittedText(tokenizer: nil, maxNewTokens: 10, eosIDs: [eos]),
                                                sampling: SamplingParams())
        #expect(stopped.stopReason == .eos)
        #expect(stopped.outputIDs == Array(free.outputIDs.prefix(first + 1)))
    }

    @Test("seeded sampling is reproducible and differs across seeds")
    func seededSampling() throws {
        let t = Transformer(model: model, capacity: 64)
        func run(_ seed: UInt64) throws -> [Int32] {
            try PlainDecoder.generate(t, promptIDs: [1, 2, 3], committed: CommittedText(tokenizer: nil, maxNewTokens: 20, eosIDs: []),
                                      sampling: SamplingParams(temperature: 1.5, topK: 50, topP: 0.95, seed: seed)).outputIDs
        }
        #expect(try run(7) == run(7))
        #expect(try run(7) != run(8))
    }
}
