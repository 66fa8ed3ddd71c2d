import Foundation
import SiriusMethod

/// Continuous batching over one transformer: up to `maxSequences` generations in flight, each at its own
/// point (prompt chunks, plain decode steps, Sirius drafts and verification passes, periods unaligned).
/// Every `step()` asks each sequence for its next pass, runs them all as one forward pass (dense
/// products shared, attention and sparse MLPs per sequence) and hands each its logits. A finished
/// sequence leaves at once and its slot can take a new one.
///
/// Nothing a sequence computes depends on its companions, on the batch size or on the prefix cache: the
/// kernels give each token the bits it gets alone, prompts are prefilled in canonical chunks, and the
/// prefix cache reuses whole chunks only (tests check all of it).
///
/// One owner (the engine thread), like the transformer.
public final class BatchDecoder {
    public let transformer: Transformer
    public let weights: SparseWeights
    public let prefixCache: PrefixCache?
    /// The canonical prompt chunk C.
    public let promptChunk: Int
    public private(set) var active: [DecodeSequence] = []
    /// While set, passes run this sequence only and the others wait, their state kept (a timing sample:
    /// decoded alone without draining the batch).
    public private(set) var solo: DecodeSequence?
    private var nextId = 0
    private var segments: [PassSegment] = []
    private var members: [(DecodeSequence, PassPhase)] = []
    /// Caches of finished sequences, reused by new ones (allocation per sequence, not per admission).
    private var spareCaches: [KVCache] = []

    /// Prompt chunk size: canonical for every worker (results depend on it in exact numerics).
    public static let defaultPromptChunk = 64

    public init(transformer: Transformer, weights: SparseWeights? = nil, prefixCache: PrefixCache? = nil,
                promptChunk: Int = BatchDecoder.defaultPromptChunk) {
        precondition(prefixCache == nil || prefixCache!.chunk == promptChunk, "the prefix cache must use the prompt chunk")
        self.transformer = transformer
        self.weights = weights ?? SparseWeights(model: transformer.model)
        self.prefixCache = prefixCache
        self.promptChunk = promptChunk
    }

    public var isEmpty: Bool { active.isEmpty }

    /// Starts a generation. Its cache is `cache` (e.g. the transformer's own, for one-sequence use) or one
    /// sized for the prompt, `committed.maxNewTokens` and a Sirius period's drafts. `solo`: it runs alone
    /// until it finishes (see `solo`; it never waits for a prefix entry another sequence computes).
    @discardableResult
    public func admit(method: MethodSpec, promptIDs: [Int32], committed: CommittedText, sampling: SamplingParams = SamplingParams(),
                      cache: KVCache? = nil, solo isSolo: Bool = false) throws -> DecodeSequence {
        precondition(!isSolo || solo == nil, "one solo sequence at a time")
        try method.validate()
        guard !promptIDs.isEmpty else { throw GenerationError("the prompt is empty: give some text to continue") }
        if method.kind == .sirius && !sampling.isGreedy {
            throw GenerationError("sirius decodes greedily (as the paper): drop --temperature, or use --method full")
        }
        let kv = cache ?? takeCache(capacity: promptIDs.count + committed.maxNewTokens + method.extraCachePositions + 1)
        guard promptIDs.count < kv.capacity else {
            throw GenerationError("the prompt has \(promptIDs.count) tokens but the context holds \(kv.capacity): shorten the prompt or raise --context (the model allows up to \(transformer.config.contextLength))")
        }
        let seq = DecodeSequence(id: nextId, method: method, promptIDs: promptIDs, committed: committed, sampling: sampling,
                                 cache: kv, weights: weights, chunk: promptChunk)
        nextId += 1
        if isSolo { solo = seq }
        if let pc = prefixCache { usePrefixCache(pc, seq) }
        active.append(seq)
        return seq
    }

    private func usePrefixCache(_ pc: PrefixCache, _ seq: DecodeSequence) {
        switch pc.lookup(seq.promptIDs, completeOnly: seq === solo) {
        case .hit(let e, let length):
            pc.apply(e, length: length, to: seq)
            pc.count(prompt: seq.promptIDs.count, reused: length)
            // The rest of its prompt serves the other methods of the same question.
            seq.recording = pc.begin(seq.promptIDs, extending: e, reused: length)
        case .pending(let e):
            seq.state = .waiting(e)
        case .miss:
            seq.recording = pc.begin(seq.promptIDs)
            pc.count(prompt: seq.promptIDs.count, reused: 0)
        }
    }

    private func takeCache(capacity: Int) -> KVCache {
        if let i = spareCaches.firstIndex(where: { $0.capacity >= capacity }) { return spareCaches.remove(at: i) }
        // Rounded up so that caches fit later sequences of similar length.
        return transformer.makeCache(capacity: (capacity + 255) / 256 * 256)
    }

    /// Stops a sequence (cancelled, or its example failed) and frees its slot.
    public func remove(_ seq: DecodeSequence) {
        if let e = seq.recording { prefixCache?.abandon(e) }
        seq.recording = nil
        active.removeAll { $0 === seq }
        if seq === solo { solo = nil }
        release(seq)
    }

    private func release(_ seq: DecodeSequence) {
        if seq.cache !== transformer.cache && spareCaches.count < 4 { spareCaches.append(seq.cache) }
    }

    /// Runs one pass over every sequence that has work; returns the sequences that finished.
    @discardableResult
    public func step() -> [DecodeSequence] {
        resolveWaiting()
        segments.removeAll(keepingCapacity: true)
        members.removeAll(keepingCapacity: true)
        var done: [DecodeSequence] = []
        for seq in solo.map({ [$0] }) ?? active {
            if let (segment, phase) = seq.nextPass() {
                segments.append(segment)
                members.append((seq, phase))
            } else if seq.isFinished {
                done.append(seq)
            }
        }
        arrangeSegments()
        if !segments.isEmpty {
            let clock = ContinuousClock()
            let t0 = clock.now
            transformer.forward(segments)
            let passSeconds = (clock.now - t0).seconds
            if members.count > 1 { for (seq, _) in members { seq.sharedPasses = true } }
            segments.removeAll(keepingCapacity: true)
            for (i, (seq, phase)) in members.enumerated() {
                let s0 = clock.now
                seq.passDone(transformer.logits(segment: i), prefix: prefixCache)
                seq.add(passSeconds + (clock.now - s0).seconds, to: phase)
                if seq.isFinished { done.append(seq) }
            }
            members.removeAll(keepingCapacity: true)
        }
        for seq in done {
            if let e = seq.recording { prefixCache?.abandon(e); seq.recording = nil }
            active.removeAll { $0 === seq }
            if seq === solo { solo = nil }
            release(seq)
        }
        return done
    }

    /// Puts the pass's segments in the order its products run best: every product covers a run of
    /// adjacent segments, so the segments with the model's own MLP come first, then those with a sparse
    /// MLP (the attention projections and the output head cover both in one product, the dense MLP the
    /// first ones), then the prompt chunks (each a product of its own). Nothing a token computes
    /// depends on where its segment sits in the pass.
    private func arrangeSegments() {
        func rank(_ s: PassSegment) -> Int {
            if s.isPromptChunk { return 2 }
            if case .sparse = s.mlp { return 1 }
            return 0
        }
        let ranks = segments.map(rank)
        guard zip(ranks, ranks.dropFirst()).contains(where: { $0 > $1 }) else { return }
        let order = ranks.indices.sorted { ranks[$0] != ranks[$1] ? ranks[$0] < ranks[$1] : $0 < $1 }
        segments = order.map { segments[$0] }
        members = order.map { members[$0] }
    }

    /// Sequences waiting for a prefix entry look again (it is complete, or was abandoned).
    private func resolveWaiting() {
        guard let pc = prefixCache else { return }
        for seq in active {
            guard case .waiting(let e) = seq.state, e.complete || !pcHolds(e) else { continue }
            seq.state = .prefill(0)
            usePrefixCache(pc, seq)
        }
    }

    private func pcHolds(_ e: PrefixCache.Entry) -> Bool {
        active.contains { $0.recording === e }
    }

    /// Steps until every sequence has finished.
    public func runToCompletion() {
        while !active.isEmpty { step() }
    }
}
