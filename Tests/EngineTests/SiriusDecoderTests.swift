import CKernels
import Foundation
import SiriusEngine
import SiriusMethod
import Testing
import TestSupport

/// The invariants of the Sirius correction loop (issue 3) on tiny random models.
@Suite("Sirius decoder on tiny random models")
struct SiriusDecoderTests {
    static let kinds: [SparsityKind] = [.griffin, .cats]

    /// With `--acceptance argmax` only drafts equal to the dense argmax survive and the correction is
    /// the dense argmax, so the committed ids are exactly dense greedy decoding's — whatever the sparse
    /// model drafts, for every tree width and period. F32 weights keep the numerics clean.
    @Test("argmax acceptance: sirius output equals full greedy, token for token",
          arguments: kinds, [1, 2, 4])
    func argmaxEqualsFullGreedy(kind: SparsityKind, width: Int) throws {
        let model = try SiriusRig.tinyModel(.f32, seed: 11)
        let prompts = SiriusRig.prompts([1, 6, 13], vocab: model.config.vocabSize, seed: 5)
        let maxNew = 40
        var drafted = 0, rolledBack = 0
        for period in [4, 16] {
            for prompt in prompts {
                let full = try SiriusRig.fullGreedy(model, prompt: prompt, maxNew: maxNew)
                let r = try SiriusRig.run(model, prompt: prompt, method: SiriusRig.sirius(kind, period: period, width: width),
                                          maxNew: maxNew)
                #expect(r.generation.outputIDs == full, "\(kind) W=\(width) K=\(period) prompt \(prompt.count) tokens")
                #expect(r.generation.stopReason == .length)
                drafted += r.counters.advancedTokens - r.counters.periods
                rolledBack += r.counters.rolledBackTokens
            }
        }
        // Both paths ran: some drafts were accepted, some rejected.
        print("[sirius] argmax \(kind) W=\(width): \(drafted) drafts accepted, \(rolledBack) rolled back")
        #expect(drafted > 0)
        #expect(rolledBack > 0)
    }

    /// The same invariant with quantised weights (Q4_0 layers; CATS reads a Q8_0 neuron-major down).
    @Test("argmax acceptance on a Q4_0 model equals full greedy", arguments: kinds)
    func argmaxEqualsFullGreedyQuantised(kind: SparsityKind) throws {
        let model = try SiriusRig.tinyModel(.q4_0, seed: 12)
        let prompts = SiriusRig.prompts([3, 9], vocab: model.config.vocabSize, seed: 8)
        for prompt in prompts {
            let full = try SiriusRig.fullGreedy(model, prompt: prompt, maxNew: 32)
            for (period, width) in [(4, 1), (8, 2), (16, 4)] {
                let r = try SiriusRig.run(model, prompt: prompt, method: SiriusRig.sirius(kind, density: 0.4, period: period, width: width),
                                          maxNew: 32)
                #expect(r.generation.outputIDs == full, "\(kind) W=\(width) K=\(period)")
            }
        }
    }

    /// Fast numerics (8-bit activations, integer products): the K-token verification pass and the
    /// one-token decode steps compute each token's row alike, so the invariant holds there too.
    /// Run on the CPU's widest kernels and again limited to AVX2 / AVX-VNNI (`ck_limit_avx512`), so the
    /// kernels a CPU without AVX-512 uses are checked here too.
    @Test("argmax acceptance with fast numerics equals full greedy with fast numerics",
          arguments: [GGMLType.q8_0, .q4_1], [false, true])
    func argmaxEqualsFullGreedyFast(type: GGMLType, limitAVX512: Bool) throws {
        try KernelSelection.shared.with(scalar: false) {
            ck_limit_avx512(limitAVX512 ? 1 : 0)
            defer { ck_limit_avx512(0) }
            try argmaxEqualsFullGreedyFastOnce(type: type)
        }
    }

    func argmaxEqualsFullGreedyFastOnce(type: GGMLType) throws {
        let model = try SiriusRig.tinyModel(type, seed: 13)
        for prompt in SiriusRig.prompts([4, 10], vocab: model.config.vocabSize, seed: 9) {
            let full = try SiriusRig.fullGreedy(model, prompt: prompt, maxNew: 32, numerics: .fast)
            for (kind, period, width) in [(SparsityKind.griffin, 4, 1), (.cats, 8, 2), (.griffin, 16, 4), (.cats, 16, 1)] {
                let r = try SiriusRig.run(model, prompt: prompt, method: SiriusRig.sirius(kind, period: period, width: width),
                                          maxNew: 32, numerics: .fast)
                #expect(r.generation.outputIDs == full, "\(type) \(kind) W=\(width) K=\(period)")
            }
        }
    }

    /// After every period the cache holds exactly the committed positions, and their K/V equal a dense
    /// forward over the committed tokens — the full model has rewritten every draft's K/V, rejected
    /// drafts are gone, and with a tree the accepted path was compacted into place. Threshold acceptance
    /// (τ = 0.1, as the paper) so that non-argmax drafts are accepted and rollbacks happen.
    @Test("after every period the cached K/V equal a dense forward over the committed tokens",
          arguments: kinds, [1, 3])
    func cacheEqualsDenseAfterEveryPeriod(kind: SparsityKind, width: Int) throws {
        let model = try SiriusRig.tinyModel(.f32, seed: 21)
        let c = model.config
        let prompts = SiriusRig.prompts([4, 11], vocab: c.vocabSize, seed: 31)
        var compared = 0, rollbacks = 0, nonArgmax = 0
        for prompt in prompts {
            let maxNew = 48
            let dense = Transformer(model: model, capacity: prompt.count + maxNew + 80)
            var worst: Float = 0
            let method = SiriusRig.sirius(kind, period: 6, width: width, acceptance: .threshold)
            let r = try SiriusRig.run(model, prompt: prompt, method: method, maxNew: maxNew) { t, committed, cached in
                #expect(t.cache.count == cached)
                let sequence = prompt + committed.ids
                // Every committed token but the newest is cached — except after the last period, which may
                // end the generation (token limit) before all its accepted tokens are committed.
                if !committed.isFinished { #expect(sequence.count == cached + 1) }
                guard sequence.count >= cached else { return }
                dense.forward(tokens: Array(sequence.prefix(cached)), start: 0)
                for l in 0..<c.layerCount {
                    let got = t.cache.snapshot(layer: l), want = dense.cache.snapshot(layer: l)
                    worst = max(worst, Compare.relDiff(got.keys, want.keys), Compare.relDiff(got.values, want.values))
                }
                compared += 1
            }
            #expect(worst <= 1e-5, "\(kind) W=\(width): worst K/V relDiff \(worst)")
            rollbacks += r.counters.rollbacks
            // Non-argmax drafts were accepted: the output departs from full greedy.
            if r.generation.outputIDs != (try SiriusRig.fullGreedy(model, prompt: prompt, maxNew: maxNew)) { nonArgmax += 1 }
        }
        print("[sirius] K/V check \(kind) W=\(width): \(compared) periods compared, \(rollbacks) rollbacks, \(nonArgmax) outputs differ from greedy")
        #expect(compared >= 10)
        #expect(rollbacks > 0)
    }

    /// With density 1.0 the sparse MLP keeps every neuron, so the sparse model's logits equal the dense
    /// model's (float tolerance: only summation order differs), for single-token steps and for the
    /// several rows of a tree step.
    @Test("density 1.0: sparse logits equal dense logits", arguments: kinds)
    func fullDensitySparseEqualsDense(kind: SparsityKind) throws {
        let model = try SiriusRig.tinyModel(.f32, seed: 31)
        let tokens = TinyLlama.tokens(20, vocab: model.config.vocabSize, seed: 3)
        let prompt = Array(tokens.prefix(8))
        let dense = Transformer(model: model, capacity: 32)
        let sparseT = Transformer(model: model, capacity: 32)
        let scores = PromptScores(layers: model.config.layerCount, width: model.config.intermediateSize)
        let p0 = sparseT.logits(prompt, start: 0, mlp: .observed(scores))[0]
        let mlp = SparseWeights(model: model).makeMLP(MethodSpec(kind: .sparse, sparsity: kind, density: 1.0), scores: scores)
        #expect(Compare.bitsEqual(p0, dense.logits(prompt, start: 0)[0]), "the prefill is dense")
        if let g = mlp as? GriffinMLP { #expect(g.selection.allSatisfy { $0 == (0..<Int32(model.config.intermediateSize)).map { $0 } }) }
        var worst: Float = 0
        // Single-token steps.
        for (i, tok) in tokens[8..<16].enumerated() {
            let s = sparseT.logits([tok], start: 8 + i, mlp: .sparse(mlp))[0]
            let d = dense.logits([tok], start: 8 + i)[0]
            worst = max(worst, Compare.relDiff(s, d))
        }
        // A 4-row step (tree drafting: CATS shares one mask across the rows; at density 1 it keeps all).
        let s4 = sparseT.logits(Array(tokens[16..<20]), start: 16, all: true, mlp: .sparse(mlp))
        let d4 = dense.logits(Array(tokens[16..<20]), start: 16, all: true)
        for (s, d) in zip(s4, d4) { worst = max(worst, Compare.relDiff(s, d)) }
        if let c = mlp as? CATSMLP {
            #expect(c.layerSteps.reduce(0, +) == 9 * model.config.layerCount)
            #expect(c.activeNeurons.reduce(0, +) == c.layerSteps.reduce(0, +) * model.config.intermediateSize)
        }
        #expect(worst <= 2e-5, "\(kind): worst logits relDiff \(worst)")
        print("[sirius] density 1.0 \(kind): worst sparse-vs-dense logits relDiff \(worst)")
    }

    /// With density 1.0 the drafts are the dense argmax, so `threshold-or-argmax` accepts every draft:
    /// each period advances K tokens, nothing is rolled back, and the output is full greedy's.
    @Test("density 1.0 with threshold-or-argmax: every period advances K tokens", arguments: kinds, [4, 16])
    func fullDensityAdvancesKEveryPeriod(kind: SparsityKind, period: Int) throws {
        let model = try SiriusRig.tinyModel(.f32, seed: 41)
        for prompt in SiriusRig.prompts([5, 12], vocab: model.config.vocabSize, seed: 17) {
            let maxNew = 3 * period + 5
            var advances: [Int] = []
            var last = prompt.count
            let method = SiriusRig.sirius(kind, density: 1.0, period: period, acceptance: .thresholdOrArgmax)
            let r = try SiriusRig.run(model, prompt: prompt, method: method, maxNew: maxNew) { _, _, cached in
                advances.append(cached - last); last = cached
            }
            let k = r.counters
            #expect(advances.count == 4 && advances.allSatisfy { $0 == period }, "\(advances)")
            #expect(k.periods == advances.count - 1)
            #expect(k.advancedTokens == k.periods * period)
            #expect(k.finalPeriodAdvance == period)
            #expect(k.rollbacks == 0 && k.rolledBackTokens == 0)
            #expect(k.sparseSteps == advances.count * (period - 1))
            #expect(k.densePasses == advances.count && k.tokensVerified == advances.count * period)
            #expect(k.aal == Double(period))
            #expect(r.generation.outputIDs == (try SiriusRig.fullGreedy(model, prompt: prompt, maxNew: maxNew)))
        }
    }

    /// §5: AAL = Σ(L+1)/#periods and effective density ((K−1)·d + 1)/AAL; the paper's Llama-3-8B
    /// GSM8K CSparse row: AAL 15.22/16 at density 0.65 gives 0.706.
    @Test("effective density reproduces the paper's 15.22/16 at 0.65 → 0.706")
    func effectiveDensityPaper() {
        let ed = DecodeCounters.effectiveDensity(period: 16, paramDensity: 0.65, aal: 15.22)
        #expect((ed * 1000).rounded() / 1000 == 0.706, "\(ed)")
        // The dense-every-token limit: AAL 1 at K = 1 is density 1.
        #expect(DecodeCounters.effectiveDensity(period: 1, paramDensity: 0.5, aal: 1) == 1)
        var c = DecodeCounters()
        #expect(c.aal == nil)
        c.periods = 4; c.advancedTokens = 50
        #expect(c.aal == 12.5)
    }

    /// The counters of a real run: every period is counted by `afterPeriod`; the counters hold all but
    /// the last (§5.1), whose advance is kept aside in `finalPeriodAdvance`; rollbacks are the periods
    /// that advanced less than K, and the rolled-back drafts are K − advance each.
    @Test("counters exclude the final period and agree with the periods observed", arguments: kinds, [1, 2])
    func countersExcludeFinalPeriod(kind: SparsityKind, width: Int) throws {
        let model = try SiriusRig.tinyModel(.f32, seed: 51)
        let K = 8
        for prompt in SiriusRig.prompts([7], vocab: model.config.vocabSize, seed: 23) {
            var advances: [Int] = []
            var last = prompt.count
            let method = SiriusRig.sirius(kind, period: K, width: width, acceptance: .threshold)
            let r = try SiriusRig.run(model, prompt: prompt, method: method, maxNew: 60) { _, _, cached in
                advances.append(cached - last); last = cached
            }
            let k = r.counters
            #expect(advances.count >= 3)
            #expect(k.periods == advances.count - 1)
            #expect(k.finalPeriodAdvance == advances.last)
            #expect(k.advancedTokens == advances.dropLast().reduce(0, +))
            #expect(k.densePasses == advances.count)
            #expect(k.sparseSteps == advances.count * (K - 1))
            #expect(k.tokensVerified == advances.count * ((K - 1) * width + 1))
            // Rollbacks and rolled-back drafts count every period, the final one included (unlike periods
            // and advances).
            #expect(k.rollbacks == advances.filter { $0 < K }.count)
            #expect(k.rolledBackTokens == advances.reduce(0) { $0 + K - $1 })
            #expect(advances.allSatisfy { $0 >= 1 && $0 <= K })
            // Every committed token but the final period's overshoot came from these periods.
            #expect(1 + advances.reduce(0, +) >= r.generation.outputIDs.count)
            let aal = try #require(k.aal)
            #expect(aal == Double(k.advancedTokens) / Double(k.periods))
            print("[sirius] counters \(kind) W=\(width): advances \(advances), AAL \(aal)")
        }
    }
}

/// The adaptive period (an option): a period ends after the first draft the sparse model is unsure of.
@Suite("Adaptive period")
struct AdaptivePeriodTests {
    static func adaptive(_ kind: SparsityKind, period: Int, bound: Double, acceptance: AcceptanceRule) -> MethodSpec {
        var m = SiriusRig.sirius(kind, period: period, acceptance: acceptance)
        m.adaptivePeriod = bound
        return m
    }

    @Test("argmax acceptance stays lossless with an adaptive period", arguments: SiriusDecoderTests.kinds)
    func losslessWithArgmax(kind: SparsityKind) throws {
        let model = try SiriusRig.tinyModel(.f32, seed: 11)
        for prompt in SiriusRig.prompts([3, 10], vocab: model.config.vocabSize, seed: 5) {
            let full = try SiriusRig.fullGreedy(model, prompt: prompt, maxNew: 40)
            for bound in [0.01, 0.05, 0.5] {
                let r = try SiriusRig.run(model, prompt: prompt, method: Self.adaptive(kind, period: 8, bound: bound, acceptance: .argmax), maxNew: 40)
                #expect(r.generation.outputIDs == full, "\(kind) bound \(bound)")
            }
        }
    }

    /// A bound no draft reaches gives one draft per period; a bound every draft passes gives fixed K,
    /// the same output and counters; in between, periods of several lengths, counted consistently.
    @Test("the bound decides the period length; counters stay consistent", arguments: SiriusDecoderTests.kinds)
    func boundDecidesPeriodLength(kind: SparsityKind) throws {
        let model = try SiriusRig.tinyModel(.f32, seed: 51)
        let K = 8
        let prompt = SiriusRig.prompts([7], vocab: model.config.vocabSize, seed: 23)[0]
        func run(_ bound: Double?) throws -> (MethodOutcome, [Int]) {
            var m = SiriusRig.sirius(kind, period: K, acceptance: .threshold)
            m.adaptivePeriod = bound
            var advances: [Int] = [], last = prompt.count
            let r = try SiriusRig.run(model, prompt: prompt, method: m, maxNew: 60) { _, _, cached in advances.append(cached - last); last = cached }
            return (r, advances)
        }
        let (fixed, _) = try run(nil)
        let (always, _) = try run(1e-12)
        #expect(always.generation.outputIDs == fixed.generation.outputIDs && always.counters == fixed.counters)
        let (never, nAdv) = try run(0.999999)
        #expect(never.counters.tokensVerified == 2 * never.counters.densePasses, "one draft per period")
        #expect(nAdv.allSatisfy { $0 == 1 || $0 == 2 })
        // A bound in the middle of the drafts' probabilities (their median on this model) mixes lengths.
        var probs: [Double] = []
        do {
            let t = Transformer(model: model, capacity: 80)
            let scores = PromptScores(layers: model.config.layerCount, width: model.config.intermediateSize)
            var logits = t.logits(prompt, start: 0, mlp: .observed(scores))[0]
            let mlp = SparseWeights(model: model).makeMLP(MethodSpec(kind: .sparse, sparsity: kind, density: 0.5), scores: scores)
            for i in 0..<20 {
                let tok = Int32(logits.indices.max { logits[$0] < logits[$1] }!)
                probs.append(Double(ck_softmax_at(logits, Int64(logits.count), 1, Int64(tok))))
                logits = t.logits([tok], start: prompt.count + i, mlp: .sparse(mlp))[0]
            }
        }
        let median = probs.sorted()[probs.count / 2]
        let (mid, mAdv) = try run(median)
        let k = mid.counters
        #expect(k.tokensVerified == k.densePasses + k.sparseSteps, "a chain: each pass verifies the root and its drafts")
        #expect(k.densePasses == mAdv.count)
        #expect(k.tokensVerified < K * k.densePasses && k.tokensVerified > 2 * k.densePasses, "periods of several lengths")
        print("[sirius] adaptive \(kind) bound \(median): mean period \(Double(k.tokensVerified) / Double(k.densePasses)), AAL \(k.aal ?? 0)")
    }
}

/// §5.2: the paper's parameter-count density, on Llama-3-8B's shape.
@Suite("Method densities")
struct MethodDensityTests {
    static let llama3_8B = ModelConfig(vocabSize: 128256, hiddenSize: 4096, intermediateSize: 14336, layerCount: 32,
                                       headCount: 32, kvHeadCount: 8, contextLength: 8192, rmsNormEps: 1e-5,
                                       ropeTheta: 500000, ropeStyle: .halfSplit, tiedEmbeddings: false)

    static func sparse(_ kind: SparsityKind, _ density: Double) -> MethodSpec { MethodSpec(kind: .sparse, sparsity: kind, density: density) }

    @Test("param density of Llama-3-8B: CSparse 0.649 / 0.579, FSparse 0.766 / 0.719 (§5.2)")
    func paramDensityLlama3() {
        func d(_ kind: SparsityKind, _ density: Double) -> Double {
            (Self.sparse(kind, density).paramDensity(Self.llama3_8B)! * 1000).rounded() / 1000
        }
        #expect(d(.griffin, 0.5) == 0.649)
        #expect(d(.cats, 0.5) == 0.766)
        #expect(d(.griffin, 0.4) == 0.579)
        #expect(d(.cats, 0.4) == 0.719)
        // The blog's Fig. 1(a) points are s = 0.7, 0.6, 0.5, 0.4, 0.3, 0.1 under the CSparse formula.
        let fig = [(0.3, 0.51), (0.4, 0.58), (0.5, 0.65), (0.6, 0.72), (0.7, 0.79), (0.9, 0.93)].map { kept, shown in
            ((Self.sparse(.griffin, kept).paramDensity(Self.llama3_8B)! * 100).rounded() / 100, shown)
        }
        for (got, shown) in fig { #expect(got == shown) }
        #expect(Self.sparse(.cats, 1).paramDensity(Self.llama3_8B) == 1)
        #expect(MethodSpec.full.paramDensity(Self.llama3_8B) == nil)
    }

    @Test("kept neurons: floor(density · D), at least 1, at most D")
    func keptNeurons() {
        #expect(Self.sparse(.griffin, 0.5).keptNeurons(14336) == 7168)
        #expect(Self.sparse(.griffin, 0.4).keptNeurons(1536) == 614)
        #expect(Self.sparse(.cats, 0.001).keptNeurons(100) == 1)
        #expect(Self.sparse(.cats, 1).keptNeurons(100) == 100)
    }
}

/// Griffin's step: the kept rows of gate and up in the model's own weights, the kept neurons' rows of
/// the shared neuron-major down; several sequences' steps run together in one pass.
@Suite("Griffin step")
struct GriffinStepTests {
    @Test("a step equals the kept neurons' MLP computed in doubles (kept count not a multiple of 32)", arguments: [1, 3])
    func keptNeuronsMLP(tokens: Int) throws {
        let model = try SiriusRig.tinyModel(.q4_0, seed: 12)
        let c = model.config
        let t = Transformer(model: model, capacity: 32)
        let scores = PromptScores(layers: c.layerCount, width: c.intermediateSize)
        _ = t.logits(SiriusRig.prompts([9], vocab: c.vocabSize, seed: 3)[0], start: 0, mlp: .observed(scores))
        let mlp = GriffinMLP(weights: SparseWeights(model: model), scores: scores, density: 0.4)
        let kept = mlp.selection
        #expect(kept[0].count % 32 != 0)
        #expect(mlp.modelDensity < 1)
        var rng = SeededRandom(seed: 5)
        let x = (0..<(tokens * c.hiddenSize)).map { _ in rng.nextUnit() * 2 - 1 }
        for l in 0..<c.layerCount {
            var y = [Float](repeating: .nan, count: tokens * c.hiddenSize)
            t.reserve(tokens: tokens)
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { mlp.run(layer: l, input: xp.baseAddress!, output: $0.baseAddress!, tokens: tokens, in: t) } }
            let layer = model.layers[l]
            func row(_ w: WeightMatrix, _ r: Int) -> [Float] {
                var out = [Float](repeating: 0, count: w.cols)
                out.withUnsafeMutableBufferPointer { w.dequantizeRow(r, into: $0.baseAddress!) }
                return out
            }
            let downRows = (0..<c.hiddenSize).map { row(layer.down, $0) }
            for tok in 0..<tokens {
                let xs = Array(x[(tok * c.hiddenSize)..<((tok + 1) * c.hiddenSize)])
                var h: [Int: Double] = [:]
                for j in kept[l] {
                    let g = zip(row(layer.gate, Int(j)), xs).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                    let u = zip(row(layer.up, Int(j)), xs).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                    h[Int(j)] = g / (1 + Foundation.exp(-g)) * u
                }
                let ref = (0..<c.hiddenSize).map { r in h.reduce(0.0) { $0 + $1.value * Double(downRows[r][$1.key]) } }
                let scale = max(1, ref.map(abs).max()!)
                let err = (0..<c.hiddenSize).map { abs(Double(y[tok * c.hiddenSize + $0]) - ref[$0]) }.max()!
                // The neuron-major down rows are requantised to Q8_0: error of that order, not more.
                #expect(err <= 0.02 * scale, "layer \(l) token \(tok): max error \(err) (scale \(scale))")
            }
        }
    }

    /// The packed copies of kept rows are bounded per model: with a limit of one, the first sequence
    /// alone in its pass gets a copy, a second one alone reads the scattered rows — the same bits as
    /// with its own copy — and the copy goes with its MLP, so the next sequence gets one again.
    @Test("packed kept rows: at most packedCopyLimit copies per model, same bits with or without one")
    func packedCopiesAreBounded() throws {
        let model = try SiriusRig.tinyModel(.q4_1, seed: 43)
        let c = model.config
        let t = Transformer(model: model, capacity: 32)
        let prompts = SiriusRig.prompts([8, 11], vocab: c.vocabSize, seed: 9)
        func mlp(_ weights: SparseWeights, _ p: [Int32]) -> GriffinMLP {
            let scores = PromptScores(layers: c.layerCount, width: c.intermediateSize)
            t.forward([PassSegment(cache: t.makeCache(capacity: 32), tokens: p, start: 0, mlp: .observed(scores), logits: .none)])
            return GriffinMLP(weights: weights, scores: scores, density: 0.5)
        }
        /// Logits of tokens [5, 9] after prompt p through `m` alone in the pass.
        func alone(_ m: GriffinMLP, _ p: [Int32]) -> [Float] {
            let kv = t.makeCache(capacity: 32)
            t.forward([PassSegment(cache: kv, tokens: p, start: 0, mlp: .dense, logits: .none)])
            t.forward([PassSegment(cache: kv, tokens: [5, 9], start: p.count, mlp: .sparse(m), logits: .all)])
            return Array(t.logits(segment: 0))
        }
        let limited = SparseWeights(model: model)
        limited.packedCopyLimit = 1
        var a: GriffinMLP? = mlp(limited, prompts[0])
        let b = mlp(limited, prompts[1])
        let aLogits = alone(a!, prompts[0])
        #expect(a!.holdsPackedRows && limited.packedCopies == 1)
        let bScattered = alone(b, prompts[1])
        #expect(!b.holdsPackedRows && limited.packedCopies == 1, "the limit keeps the second sequence from copying")
        a = nil
        #expect(limited.packedCopies == 0, "a copy goes with its MLP")
        let bPacked = alone(b, prompts[1])
        #expect(b.holdsPackedRows && limited.packedCopies == 1)
        #expect(Compare.bitsEqual(bScattered, bPacked), "scattered and packed rows give the same bits")
        // And against an unlimited model's copy (a fresh MLP with the same selection).
        let free = SparseWeights(model: model)
        do {
            let m = mlp(free, prompts[0])
            #expect(Compare.bitsEqual(alone(m, prompts[0]), aLogits))
            #expect(free.packedCopies == 1)
        }
        #expect(free.packedCopies == 0, "released when the MLP went")
    }

    /// Several Griffin MLPs with different kept neurons (and a dense sequence between them, so their
    /// rows are not adjacent) in one pass: every token's logits equal its sequence's pass alone.
    @Test("Griffin steps of several sequences in one pass equal each alone, bit for bit",
          arguments: [GGMLType.f32, .q4_1, .q8_0])
    func batchedEqualsAlone(type: GGMLType) throws {
        let model = try SiriusRig.tinyModel(type, seed: 41)
        let c = model.config
        let prompts = SiriusRig.prompts([7, 12, 9, 5], vocab: c.vocabSize, seed: 8)
        let densities = [0.4, 0.55, 0.7]
        let steps: [[Int32]] = [[5], [17], [33, 2], [101]]   // 2nd: dense; 3rd: two tokens (a tree step)
        for numerics in Numerics.allCases {
            for threads in [1, 2] {
                let t = Transformer(model: model, capacity: 32, numerics: numerics, threads: threads)
                let weights = SparseWeights(model: model)
                /// Fresh caches holding the prompts, and each prompt's Griffin MLP.
                func prefilled() -> [KVCache] {
                    prompts.map { p in
                        let kv = t.makeCache(capacity: 32)
                        t.forward([PassSegment(cache: kv, tokens: p, start: 0, mlp: .dense, logits: .none)])
                        return kv
                    }
                }
                var mlps: [GriffinMLP] = []
                for (i, p) in prompts.enumerated() where i != 1 {
                    let scores = PromptScores(layers: c.layerCount, width: c.intermediateSize)
                    t.forward([PassSegment(cache: t.makeCache(capacity: 32), tokens: p, start: 0, mlp: .observed(scores), logits: .none)])
                    mlps.append(GriffinMLP(weights: weights, scores: scores, density: densities[mlps.count]))
                }
                #expect(Set(mlps.map(\.selection)).count == 3, "the sequences keep different neurons")
                let routes: [MLPRoute] = [.sparse(mlps[0]), .dense, .sparse(mlps[1]), .sparse(mlps[2])]
                func segments(_ caches: [KVCache], _ which: [Int]) -> [PassSegment] {
                    which.map { PassSegment(cache: caches[$0], tokens: steps[$0], start: prompts[$0].count, mlp: routes[$0], logits: .all) }
                }
                let together = prefilled()
                t.forward(segments(together, [0, 1, 2, 3]))
                let batched = (0..<4).map { Array(t.logits(segment: $0)) }
                let single = prefilled()
                for i in 0..<4 {
                    t.forward(segments(single, [i]))
                    #expect(Compare.bitsEqual(Array(t.logits(segment: 0)), batched[i]), "\(type) \(numerics) threads=\(threads) sequence \(i)")
                }
            }
        }
    }
}
