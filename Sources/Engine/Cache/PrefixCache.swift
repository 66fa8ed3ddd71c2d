/// Shared-prefix KV cache of one worker: prompts that begin with the same tokens (a task's few-shot
/// prompt) compute that prefix's K/V once, and every sequence that reuses it reads it from the entry.
/// An entry holds the K/V of the first L positions of the prompt that created it (L a multiple of the
/// prefill chunk C, and shorter than that prompt), and the Griffin prompt scores after every chunk. A
/// later prompt reuses R positions: the common prefix rounded down to whole chunks (and at most its own
/// length − 1, so that its last token is always computed). Its own prefill then continues at R in the
/// same canonical chunks as without the cache, so every bit of its result is the same with a hit, a
/// miss or no cache at all.
///
/// A prompt that reuses R positions of an entry and goes on for at least a chunk more extends it: a new
/// entry for its whole prompt that holds only the positions after R and reads the first R from the
/// entry it extends. So the other methods of one question (the same prompt) prefill only its last,
/// partial chunk, for a few MiB per question instead of a copy of the few-shot prefix. A sequence that
/// reuses an extension shares the extended entry's positions and copies the extension's.
///
/// Bounded by bytes (least recently used entries go first, with their extensions). A prompt that shares
/// a prefix with an entry still being computed waits for it rather than computing it again.
public final class PrefixCache {
    public final class Entry {
        /// The prompt that created the entry.
        let tokens: [Int32]
        /// Positions the entry serves once complete.
        let length: Int
        /// The entry this one extends, whose positions `0..<baseLength` it serves (nil: it holds all).
        let base: Entry?
        let baseLength: Int
        /// Positions `baseLength..<length`, at `0..<length − baseLength`.
        var kv: KVCache?
        /// Griffin scores after positions baseLength + C, baseLength + 2C, … , length.
        var scores: [Int: PromptScores] = [:]
        var complete = false
        var lastUse = 0
        var bytes = 0

        init(tokens: [Int32], length: Int, base: Entry?, baseLength: Int) {
            self.tokens = tokens; self.length = length; self.base = base; self.baseLength = baseLength
        }
    }

    public let chunk: Int
    public let budgetBytes: Int
    /// Extensions kept at most (least recently used go first).
    public var extensionLimit = 32
    public private(set) var hits = 0
    public private(set) var misses = 0
    public private(set) var reusedTokens = 0
    public private(set) var promptTokens = 0
    private var entries: [Entry] = []
    private var clock = 0

    public init(chunk: Int, budgetBytes: Int) {
        precondition(chunk > 0)
        self.chunk = chunk; self.budgetBytes = budgetBytes
    }

    public var bytes: Int { entries.reduce(0) { $0 + $1.bytes } }
    public var entryCount: Int { entries.count }

    enum Lookup {
        /// Reuse `length` positions of a complete entry.
        case hit(Entry, length: Int)
        /// A matching entry is still being computed.
        case pending(Entry)
        case miss
    }

    /// Positions of `prompt` an entry can serve.
    private func reusable(_ e: Entry, _ prompt: [Int32]) -> Int {
        let limit = min(e.length, (prompt.count - 1) / chunk * chunk)
        var n = 0
        while n < limit && e.tokens[n] == prompt[n] { n += 1 }
        return n / chunk * chunk
    }

    /// The entry serving most of `prompt`; `completeOnly`: never one still being computed (for a
    /// sequence that must not wait).
    func lookup(_ prompt: [Int32], completeOnly: Bool = false) -> Lookup {
        var best: Entry?, bestR = 0
        for e in entries where e.complete || !completeOnly {
            let r = reusable(e, prompt)
            if r > bestR || (r == bestR && r > 0 && e.complete && !(best?.complete ?? false)) { best = e; bestR = r }
        }
        guard var best, bestR > 0 else { return .miss }
        // What an extension serves of its base only is served by the base itself.
        if let base = best.base, bestR <= best.baseLength { best = base }
        return best.complete ? .hit(best, length: bestR) : .pending(best)
    }

    /// Counts a sequence's outcome (once per admitted prompt).
    func count(prompt: Int, reused: Int) {
        promptTokens += prompt
        reusedTokens += reused
        if reused > 0 { hits += 1 } else { misses += 1 }
    }

    /// Serves a hit: `seq` reads the first `length` positions from the entry (no copy; its attention
    /// shares the reads with every other sequence on the same prefix; an extension's own positions are
    /// copied) and starts from the scores after them.
    func apply(_ e: Entry, length: Int, to seq: DecodeSequence) {
        clock += 1
        e.lastUse = clock
        e.base?.lastUse = clock
        if let base = e.base {
            seq.cache.share(prefix: base.kv!, count: e.baseLength)
            seq.cache.copyPositions(0..<(length - e.baseLength), from: e.kv!, to: e.baseLength)
        } else {
            seq.cache.share(prefix: e.kv!, count: length)
        }
        seq.scores.load(e.scores[length]!)
        seq.resume(afterReused: length)
    }

    /// A new entry filled by the sequence of `prompt` as it prefills: for the whole prompt after a miss,
    /// or, after a hit on `base` for `reused` positions, an extension holding the positions after those.
    /// Nil when the prompt adds no whole chunk (or `base` is itself an extension).
    func begin(_ prompt: [Int32], extending base: Entry? = nil, reused: Int = 0) -> Entry? {
        let length = (prompt.count - 1) / chunk * chunk
        guard length >= reused + chunk, base?.base == nil else { return nil }
        let e = Entry(tokens: prompt, length: length, base: base, baseLength: base == nil ? 0 : reused)
        clock += 1
        e.lastUse = clock
        entries.append(e)
        return e
    }

    /// The recording sequence finished the prompt chunk ending at `end`: keep the scores there, and the
    /// K/V once `end` reaches the entry's length.
    func record(_ e: Entry, sequence seq: DecodeSequence, through end: Int) {
        guard !e.complete, end <= e.length, end % chunk == 0 else { return }
        e.scores[end] = PromptScores(copying: seq.scores)
        if end == e.length {
            let kv = KVCache(layerCount: seq.cache.layerCount, kvDim: seq.cache.kvDim, kvHeads: seq.cache.kvHeads,
                             capacity: e.length - e.baseLength, halfPrecision: seq.cache.halfPrecision)
            kv.copyPositions(e.baseLength..<e.length, from: seq.cache, to: 0)
            e.kv = kv
            e.complete = true
            // The recording sequence holds the same values: it reads a whole prompt's entry from there
            // too from now on (an extension's positions it keeps).
            if e.base == nil { seq.cache.share(prefix: kv, count: e.length) }
            let scoreBytes = e.scores.values.reduce(0) { $0 + $1.values.count * $1.width * 4 }
            e.bytes = kv.byteCount + scoreBytes + e.tokens.count * 4
            seq.recording = nil
            evict()
        }
    }

    /// The recording sequence stopped before completing its entry: drop it (waiters look again).
    func abandon(_ e: Entry) {
        if !e.complete { entries.removeAll { $0 === e } }
    }

    private func evict() {
        while bytes > budgetBytes, let victim = entries.filter(\.complete).min(by: { $0.lastUse < $1.lastUse }) {
            entries.removeAll { $0 === victim || $0.base === victim }
        }
        // An extension serves the other methods of its question, which a worker runs soon after the
        // first (the coordinator leases them together): old ones only take memory.
        while entries.count(where: { $0.base != nil }) > extensionLimit,
              let victim = entries.filter({ $0.complete && $0.base != nil }).min(by: { $0.lastUse < $1.lastUse }) {
            entries.removeAll { $0 === victim }
        }
    }
}
