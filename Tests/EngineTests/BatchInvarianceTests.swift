import Foundation
import SiriusEngine
import SiriusMethod
import Testing
import TestSupport

/// One generation to run: a method on a prompt.
struct BatchJob {
    var method: MethodSpec
    var prompt: [Int32]
    var maxNew: Int
    var stop: Set<Int32> = []
}

/// What must not depend on batching or caching: the ids, the stop reason, every counter, the densities.
struct BatchOutcome: Equatable, CustomStringConvertible {
    var ids: [Int32]
    var stop: StopReason
    var counters: DecodeCounters
    var modelDensity: Double?
    var reused: Int
    /// Every pass it ran in was its own.
    var alone = false

    static func == (a: Self, b: Self) -> Bool {
        a.ids == b.ids && a.stop == b.stop && a.counters == b.counters && a.modelDensity == b.modelDensity
    }
    var description: String { "\(ids.count) ids, \(stop), \(counters), reused \(reused)" }
}

/// How a run schedules its jobs.
struct Schedule {
    var batch: Int
    var prefixCache: Bool
    /// New sequences join at most this many per step (1: they trickle in while others decode).
    var joinPerStep: Int = .max
    var threads = 1
    /// Jobs admitted as solo sequences (timing samples): nothing joins while one runs.
    var solo: Set<Int> = []
}

enum BatchRig {
    /// Runs `jobs` through one `BatchDecoder`: up to `batch` in flight, a finished one's slot refilled at
    /// once. Returns the outcomes in job order, and how many prompt tokens the prefix cache served.
    static func run(_ jobs: [BatchJob], model: LanguageModel, numerics: Numerics, schedule s: Schedule,
                    chunk: Int) throws -> (outcomes: [BatchOutcome], reused: Int, maxActive: Int) {
        let t = Transformer(model: model, capacity: 1, numerics: numerics, threads: s.threads)
        let d = BatchDecoder(transformer: t, prefixCache: s.prefixCache ? PrefixCache(chunk: chunk, budgetBytes: 256 << 20) : nil,
                             promptChunk: chunk)
        var next = 0, maxActive = 0
        var bySeq: [Int: Int] = [:]
        var out = [BatchOutcome?](repeating: nil, count: jobs.count)
        while next < jobs.count || !d.isEmpty {
            var joined = 0
            while d.active.count < s.batch, next < jobs.count, joined < s.joinPerStep, d.solo == nil {
                let j = jobs[next]
                let seq = try d.admit(method: j.method, promptIDs: j.prompt,
                                      committed: CommittedText(tokenizer: nil, maxNewTokens: j.maxNew, eosIDs: j.stop),
                                      solo: s.solo.contains(next))
                bySeq[seq.id] = next
                next += 1
                joined += 1
            }
            maxActive = max(maxActive, d.active.count)
            for seq in d.step() {
                out[bySeq[seq.id]!] = BatchOutcome(ids: seq.committed.ids, stop: seq.stopReason, counters: seq.counters,
                                                   modelDensity: seq.modelDensity, reused: seq.reusedPromptTokens, alone: !seq.sharedPasses)
            }
        }
        return (out.map { $0! }, d.prefixCache?.reusedTokens ?? 0, maxActive)
    }

    /// Every method kind, Sirius with a chain and a tree, threshold acceptance (drafts accepted and rejected).
    static let methods: [MethodSpec] = [
        .full,
        MethodSpec(kind: .sparse, sparsity: .griffin, density: 0.5),
        MethodSpec(kind: .sparse, sparsity: .cats, density: 0.5),
        MethodSpec(kind: .sirius, sparsity: .griffin, density: 0.5, period: 6, acceptance: .threshold, treeWidth: 1),
        MethodSpec(kind: .sirius, sparsity: .cats, density: 0.5, period: 4, acceptance: .threshold, treeWidth: 2),
        MethodSpec(kind: .sirius, sparsity: .griffin, density: 0.4, period: 5, acceptance: .thresholdOrArgmax, treeWidth: 1),
    ]
}

/// The guarantee of the batch decoder: an example's output and counters do not depend on the batch
/// size, on which other examples share its passes (methods mixed, sequences joining and leaving), on
/// the prefix cache (hit, miss, waiting for an entry, or no cache), or on the thread count.
@Suite("Batching and prefix caching give every sequence the bits it gets alone")
struct BatchInvarianceTests {
    /// Prompts sharing a 3-chunk prefix (chunk 8) with different suffixes, two repeated, plus
    /// unrelated ones; lengths chosen so some end inside a chunk and one is shorter than a chunk.
    static func jobs(vocab: Int) -> [BatchJob] {
        let shared = TinyLlama.tokens(27, vocab: vocab, seed: 101)
        var prompts: [[Int32]] = []
        for (i, n) in [4, 9, 1, 13, 6].enumerated() { prompts.append(shared + TinyLlama.tokens(n, vocab: vocab, seed: 200 + UInt64(i))) }
        prompts.append(shared + TinyLlama.tokens(4, vocab: vocab, seed: 200))            // same prompt as the first
        prompts += SiriusRig.prompts([5, 19, 33], vocab: vocab, seed: 300)
        var jobs: [BatchJob] = []
        for (i, p) in prompts.enumerated() {
            // Methods cycle so that each batch mixes them; max-new varies so sequences leave at different steps.
            let m = BatchRig.methods[i % BatchRig.methods.count]
            jobs.append(BatchJob(method: m, prompt: p, maxNew: 18 + 5 * (i % 4)))
            jobs.append(BatchJob(method: BatchRig.methods[(i + 3) % BatchRig.methods.count], prompt: p, maxNew: 24))
        }
        return jobs
    }

    @Test("batch 1, 3 and 8, joining mid-batch, prefix cache on and off, 1 and 2 threads: identical outcomes",
          arguments: [(GGMLType.f32, Numerics.exact), (.q4_1, .exact), (.q8_0, .fast), (.q4_1, .fast)])
    func identicalOutcomes(type: GGMLType, numerics: Numerics) throws {
        let model = try SiriusRig.tinyModel(type, seed: 61)
        let jobs = Self.jobs(vocab: model.config.vocabSize)
        let chunk = 8
        let reference = try BatchRig.run(jobs, model: model, numerics: numerics, schedule: Schedule(batch: 1, prefixCache: false), chunk: chunk)
        #expect(reference.reused == 0 && reference.maxActive == 1)
        // The runs exercise what they claim: Sirius rolled back and accepted drafts, CATS and Griffin ran.
        let sirius = reference.outcomes.filter { $0.counters.densePasses > 0 }
        #expect(sirius.reduce(0) { $0 + $1.counters.rollbacks } > 0)
        #expect(sirius.reduce(0) { $0 + $1.counters.advancedTokens - $1.counters.periods } > 0)
        let schedules = [
            Schedule(batch: 3, prefixCache: false), Schedule(batch: 8, prefixCache: false),
            Schedule(batch: 1, prefixCache: true), Schedule(batch: 3, prefixCache: true),
            Schedule(batch: 8, prefixCache: true), Schedule(batch: 8, prefixCache: true, joinPerStep: 1),
            Schedule(batch: 5, prefixCache: true, joinPerStep: 1, threads: 2),
            // Timing samples decoded alone in the middle of a full batch, which waits meanwhile.
            Schedule(batch: 8, prefixCache: true, solo: [9, 10, 15]),
        ]
        for s in schedules {
            let r = try BatchRig.run(jobs, model: model, numerics: numerics, schedule: s, chunk: chunk)
            #expect(r.maxActive == min(s.batch, jobs.count), "\(s)")
            for i in s.solo { #expect(r.outcomes[i].alone, "\(s): solo job \(i) shared a pass") }
            if !s.solo.isEmpty { #expect(r.outcomes.filter { !$0.alone }.count >= jobs.count / 2, "\(s): the batch did not run batched") }
            if s.prefixCache { #expect(r.reused >= 20 * chunk, "\(s): the prefix cache served \(r.reused) tokens") }
            for (i, (got, want)) in zip(r.outcomes, reference.outcomes).enumerated() {
                #expect(got == want, "\(type) \(numerics) \(s) job \(i) (\(jobs[i].method.name)): \(got) vs \(want)")
            }
        }
    }

    @Test("a hit reuses whole chunks only, never the prompt's last token; a pending entry makes the next prompt wait")
    func prefixCacheBookkeeping() throws {
        let model = try SiriusRig.tinyModel(.f32, seed: 62)
        let v = model.config.vocabSize
        let shared = TinyLlama.tokens(20, vocab: v, seed: 5)
        let a = shared + TinyLlama.tokens(3, vocab: v, seed: 6), b = shared + TinyLlama.tokens(9, vocab: v, seed: 7)
        let t = Transformer(model: model, capacity: 1)
        let pc = PrefixCache(chunk: 8, budgetBytes: 64 << 20)
        let d = BatchDecoder(transformer: t, prefixCache: pc, promptChunk: 8)
        let committed = { CommittedText(tokenizer: nil, maxNewTokens: 4, eosIDs: []) }
        let first = try d.admit(method: .full, promptIDs: a, committed: committed())
        let second = try d.admit(method: .full, promptIDs: b, committed: committed())   // waits for `first`'s entry
        let third = try d.admit(method: .full, promptIDs: Array(shared.prefix(9)), committed: committed())
        d.runToCompletion()
        #expect(first.reusedPromptTokens == 0)
        #expect(second.reusedPromptTokens == 16)         // 20 shared tokens → two whole chunks
        #expect(third.reusedPromptTokens == 8)           // 9 tokens: at most 8 (the last is computed)
        // `second` went on for a chunk past what it reused: it left an extension for its own prompt.
        #expect(pc.hits == 2 && pc.misses == 1 && pc.entryCount == 2)
        // The same prompt again (another method of the same question) reuses all of it but the last
        // partial chunk: the shared prefix read from the first entry, the rest copied from the extension.
        let repeated = try d.admit(method: MethodSpec(kind: .sparse, sparsity: .griffin, density: 0.5), promptIDs: b, committed: committed())
        let other = try d.admit(method: .full, promptIDs: shared + TinyLlama.tokens(9, vocab: v, seed: 8), committed: committed())
        d.runToCompletion()
        #expect(repeated.reusedPromptTokens == 24)
        #expect(other.reusedPromptTokens == 16)          // the extension serves only its own question
        #expect(pc.hits == 4 && pc.entryCount == 3)
        // Past the extension limit, the least recently used extensions go.
        pc.extensionLimit = 1
        let newest = shared + TinyLlama.tokens(10, vocab: v, seed: 9)
        try d.admit(method: .full, promptIDs: newest, committed: committed())
        d.runToCompletion()
        #expect(pc.entryCount == 2)
        let kept = try d.admit(method: .full, promptIDs: newest, committed: committed())
        let evicted = try d.admit(method: .full, promptIDs: b, committed: committed())
        d.runToCompletion()
        #expect(kept.reusedPromptTokens == 24 && evicted.reusedPromptTokens == 16)
        let alone = try BatchRig.run([BatchJob(method: repeated.method, prompt: b, maxNew: 4)], model: model, numerics: .exact,
                                     schedule: Schedule(batch: 1, prefixCache: false), chunk: 8)
        #expect(repeated.committed.ids == alone.outcomes[0].ids && repeated.counters == alone.outcomes[0].counters)
        // An entry larger than the budget is dropped once complete; the next prompt computes its own.
        let small = PrefixCache(chunk: 8, budgetBytes: 1)
        let d2 = BatchDecoder(transformer: t, prefixCache: small, promptChunk: 8)
        try d2.admit(method: .full, promptIDs: a, committed: committed())
        d2.runToCompletion()
        let again = try d2.admit(method: .full, promptIDs: b, committed: committed())
        d2.runToCompletion()
        #expect(again.reusedPromptTokens == 0 && small.entryCount == 0)
    }

    @Test("a removed sequence abandons its entry: the sequence waiting for it computes its own")
    func abandonedEntry() throws {
        let model = try SiriusRig.tinyModel(.f32, seed: 63)
        let v = model.config.vocabSize
        let shared = TinyLlama.tokens(24, vocab: v, seed: 8)
        let t = Transformer(model: model, capacity: 1)
        let d = BatchDecoder(transformer: t, prefixCache: PrefixCache(chunk: 8, budgetBytes: 64 << 20), promptChunk: 8)
        let committed = { CommittedText(tokenizer: nil, maxNewTokens: 6, eosIDs: []) }
        let creator = try d.admit(method: .full, promptIDs: shared + [1, 2], committed: committed())
        let waiter = try d.admit(method: .full, promptIDs: shared + [3], committed: committed())
        d.step()
        d.remove(creator)
        d.runToCompletion()
        #expect(waiter.isFinished && waiter.reusedPromptTokens == 0)
        let alone = try BatchRig.run([BatchJob(method: .full, prompt: shared + [3], maxNew: 6)], model: model, numerics: .exact,
                                     schedule: Schedule(batch: 1, prefixCache: false), chunk: 8)
        #expect(waiter.committed.ids == alone.outcomes[0].ids)
    }
}

/// The same guarantee on the real model and real prompts: 12 CommonsenseQA prompts (the 5-shot CoT
/// prefix of the reference runs plus each question; fixture from `sirius-coord task prompt --json`),
/// full / griffin@0.5 / sirius/griffin@0.5 with the paper's threshold acceptance, decoded one at a time
/// without a prefix cache, then 8 at a time with it: identical ids, stop reasons, counters, densities.
@Suite("SmolLM2: batch 8 with the prefix cache equals batch 1 without it on CSQA prompts")
struct SmolLM2BatchInvarianceTests {
    struct Fixture: Decodable {
        struct Example: Decodable { var id: String; var question: String }
        var add_bos: Bool
        var prefix: String
        var examples: [Example]
    }

    @Test("12 CSQA prompts × full / griffin@0.5 / sirius/griffin@0.5", arguments: Numerics.allCases)
    func csqaPrompts(numerics: Numerics) throws {
        let f = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: fixtureURL("csqa/prompts12.json")))
        #expect(f.examples.count == 12)
        let path = try DevelopmentModel.require()
        let gguf = try GGUFFile(path: path)
        let model = try ModelLoader.load(gguf: gguf)
        let tokenizer = try Tokenizer(gguf: gguf)
        let prefix = tokenizer.encode(f.prefix, addBOS: f.add_bos)
        let methods: [MethodSpec] = [
            .full, MethodSpec(kind: .sparse, sparsity: .griffin, density: 0.5),
            MethodSpec(kind: .sirius, sparsity: .griffin, density: 0.5, period: 16, threshold: 0.1, acceptance: .threshold),
        ]
        // 48 new tokens each (the task allows 256): enough for every method's passes and periods, in CI time.
        var jobs: [BatchJob] = []
        for e in f.examples {
            let prompt = prefix + tokenizer.encode(e.question, addBOS: false)
            for m in methods { jobs.append(BatchJob(method: m, prompt: prompt, maxNew: 48, stop: tokenizer.eosIDs)) }
        }
        let chunk = BatchDecoder.defaultPromptChunk
        let alone = try BatchRig.run(jobs, model: model, numerics: numerics, schedule: Schedule(batch: 1, prefixCache: false), chunk: chunk)
        let batched = try BatchRig.run(jobs, model: model, numerics: numerics, schedule: Schedule(batch: 8, prefixCache: true), chunk: chunk)
        #expect(batched.maxActive == 8)
        #expect(batched.reused >= 35 * (prefix.count / chunk) * chunk, "prefix cache served \(batched.reused) tokens")
        for (i, (got, want)) in zip(batched.outcomes, alone.outcomes).enumerated() {
            #expect(got == want, "\(numerics) job \(i) (\(jobs[i].method.name)): \(got) vs \(want)")
        }
        let rollbacks = alone.outcomes.reduce(0) { $0 + $1.counters.rollbacks }
        print("[batch] SmolLM2 CSQA \(numerics): \(jobs.count) generations equal; prefix cache served \(batched.reused) prompt tokens; \(rollbacks) Sirius rollbacks")
        #expect(rollbacks > 0)
    }
}
