import Foundation
import SiriusMethod

/// What a pass is for, from one sequence's point of view (its time is counted in that phase).
public enum PassPhase: Sendable {
    /// A canonical prompt chunk (dense, observed for Griffin's scores).
    case prefill
    /// A dense decode step of `full`.
    case decode
    /// A sparse step: the sparse baseline's decode step, or a Sirius draft.
    case draft
    /// A Sirius verification pass.
    case verify
}

/// A method's decoding after the prompt: it asks for passes and consumes their logits, one at a time.
/// `PlainSteps` (full and the sparse baselines) and `SiriusSteps` implement it.
protocol MethodSteps: AnyObject {
    /// The prompt's last logits: the first new token comes from them.
    func begin(_ logits: UnsafeMutableBufferPointer<Float>, _ seq: DecodeSequence)
    /// The next pass, or nil once the generation is over.
    func nextPass(_ seq: DecodeSequence) -> (PassSegment, PassPhase)?
    /// The logits of the pass `nextPass` returned.
    func passDone(_ logits: UnsafeMutableBufferPointer<Float>, _ seq: DecodeSequence)
}

/// One generation in progress: its prompt, its KV cache, its method's state, its committed text, its
/// counters and timings. A `BatchDecoder` asks it for its next pass and hands it that pass's logits;
/// nothing in here depends on which other sequences share the passes.
///
/// The prompt is prefilled in canonical chunks (`[kC, (k+1)C)` for the scheduler's chunk size C,
/// whatever was reused from the prefix cache, which only ever reuses whole chunks), so its K/V, its
/// Griffin scores and its first logits are the same bits with or without batching and caching.
public final class DecodeSequence {
    public let id: Int
    public let method: MethodSpec
    public let promptIDs: [Int32]
    public let committed: CommittedText
    public let cache: KVCache
    public internal(set) var counters = DecodeCounters()
    public internal(set) var timings = PhaseTimings()
    /// Prompt tokens whose K/V (and Griffin scores) came from the prefix cache.
    public internal(set) var reusedPromptTokens = 0
    /// Some pass of this sequence held another sequence too (its timings are then not its latency).
    public internal(set) var sharedPasses = false
    /// Weight bytes of one sparse step relative to a dense step; nil for `full`.
    public internal(set) var modelDensity: Double?
    /// Called after every Sirius period's roll back with the number of committed cache positions (the
    /// prompt plus every committed token except the newest, whose K/V comes with the next pass): the
    /// cache then holds only dense K/V (tests check that invariant here).
    public var afterPeriod: ((_ cachedPositions: Int) -> Void)?
    /// Receives committed text as it becomes visible.
    public var onText: ((String) -> Void)?

    let sampling: SamplingParams
    let weights: SparseWeights
    let scores: PromptScores
    let chunk: Int
    let admitted: ContinuousClock.Instant
    var sparse: (any SparseMLP)?
    private var steps: (any MethodSteps)?

    enum State {
        /// Waits for a prefix entry another sequence is computing.
        case waiting(PrefixCache.Entry)
        /// Prefills from this prompt position.
        case prefill(Int)
        case decoding
        case finished
    }
    var state: State
    /// The prefix entry this sequence fills while it prefills (it was the first with this prefix).
    var recording: PrefixCache.Entry?

    init(id: Int, method: MethodSpec, promptIDs: [Int32], committed: CommittedText, sampling: SamplingParams,
         cache: KVCache, weights: SparseWeights, chunk: Int) {
        self.id = id; self.method = method; self.promptIDs = promptIDs; self.committed = committed
        self.sampling = sampling; self.cache = cache; self.weights = weights; self.chunk = chunk
        let c = weights.model.config
        scores = PromptScores(layers: c.layerCount, width: c.intermediateSize)
        state = .prefill(0)
        admitted = ContinuousClock.now
        cache.reset()
    }

    public var isFinished: Bool { if case .finished = state { true } else { false } }
    /// Still computing (or waiting for) its prompt.
    public var isPrefilling: Bool {
        switch state {
        case .waiting, .prefill: true
        case .decoding, .finished: false
        }
    }

    /// The stop reason once finished.
    public var stopReason: StopReason { committed.stopReason ?? .length }

    /// Continues after `length` prompt tokens whose K/V and scores were copied in.
    func resume(afterReused length: Int) {
        reusedPromptTokens = length
        state = .prefill(length)
    }

    /// The end of the canonical prompt chunk that starts at `p`.
    private func chunkEnd(_ p: Int) -> Int { min(promptIDs.count, (p / chunk + 1) * chunk) }

    /// The next pass this sequence needs; nil when it waits or is finished.
    func nextPass() -> (PassSegment, PassPhase)? {
        switch state {
        case .waiting, .finished:
            return nil
        case .prefill(let p):
            let end = chunkEnd(p)
            let seg = PassSegment(cache: cache, tokens: Array(promptIDs[p..<end]), start: p, mlp: .observed(scores),
                                  logits: end == promptIDs.count ? .last : .none, isPromptChunk: true)
            return (seg, .prefill)
        case .decoding:
            if let next = steps!.nextPass(self) { return next }
            finish()
            return nil
        }
    }

    /// The pass from `nextPass` ran; `prefix` records the chunk into a prefix entry this sequence fills.
    func passDone(_ logits: UnsafeMutableBufferPointer<Float>, prefix: PrefixCache?) {
        switch state {
        case .prefill(let p):
            let end = chunkEnd(p)
            if let entry = recording, let prefix { prefix.record(entry, sequence: self, through: end) }
            if end < promptIDs.count {
                state = .prefill(end)
                return
            }
            startDecoding(logits)
        case .decoding:
            steps!.passDone(logits, self)
        case .waiting, .finished:
            preconditionFailure("a pass for a sequence that asked for none")
        }
    }

    /// The prompt is in the cache: make the sparse MLP (Griffin packs its rows from the prompt's scores)
    /// and begin the method's steps with the prompt's last logits.
    private func startDecoding(_ logits: UnsafeMutableBufferPointer<Float>) {
        state = .decoding
        if method.isSparse { sparse = weights.makeMLP(method, scores: scores) }
        steps = method.kind == .sirius ? SiriusSteps(method: method, sparse: sparse!, promptCount: promptIDs.count)
                                       : PlainSteps(sampling: sampling, sparse: sparse)
        steps!.begin(logits, self)
    }

    /// Commits one token, streaming its visible text.
    func emit(_ id: Int32) {
        let piece = committed.append(id)
        if !piece.isEmpty { onText?(piece) }
    }

    /// Ends the generation for lack of room in the cache.
    func finishForContext() {
        let piece = committed.finish(.context)
        if !piece.isEmpty { onText?(piece) }
    }

    func finish() {
        guard !isFinished else { return }
        if let s = steps as? SiriusSteps { s.excludeFinalPeriod(self) }
        modelDensity = sparse?.modelDensity
        state = .finished
        timings.totalSeconds = (ContinuousClock.now - admitted).seconds
    }

    func add(_ seconds: Double, to phase: PassPhase) {
        switch phase {
        case .prefill: timings.prefillSeconds += seconds
        case .decode: timings.decodeSeconds += seconds
        case .draft: timings.sparseSeconds += seconds
        case .verify: timings.verifySeconds += seconds
        }
    }
}

/// Dense or sparse decoding one token per pass: `full`, and the Griffin / CATS baselines (a dense
/// prefill, then the sparse model alone).
final class PlainSteps: MethodSteps {
    private var sampler: Sampler
    private let sparse: (any SparseMLP)?
    private var next: Int32 = 0
    /// The one-token pass input, reused (no allocation per token).
    private var token: [Int32] = [0]

    init(sampling: SamplingParams, sparse: (any SparseMLP)?) {
        sampler = Sampler(params: sampling)
        self.sparse = sparse
    }

    func begin(_ logits: UnsafeMutableBufferPointer<Float>, _ seq: DecodeSequence) {
        next = sampler.sample(UnsafeBufferPointer(logits))
        seq.emit(next)
    }

    func nextPass(_ seq: DecodeSequence) -> (PassSegment, PassPhase)? {
        guard !seq.committed.isFinished else { return nil }
        guard seq.cache.count < seq.cache.capacity else {
            seq.finishForContext()
            return nil
        }
        let route: MLPRoute = sparse.map { .sparse($0) } ?? .dense
        token[0] = next
        return (PassSegment(cache: seq.cache, tokens: token, start: seq.cache.count, mlp: route), sparse == nil ? .decode : .draft)
    }

    func passDone(_ logits: UnsafeMutableBufferPointer<Float>, _ seq: DecodeSequence) {
        next = sampler.sample(UnsafeBufferPointer(logits))
        if sparse != nil { seq.counters.sparseSteps += 1 }
        seq.emit(next)
    }
}
