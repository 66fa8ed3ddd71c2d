import CKernels

/// Keys and values of every layer for positions `0..<count`. A forward pass over positions
/// `start..<start+T` (with `start <= count`) writes those slots — overwriting any that were there — and
/// sets `count = start + T`. That is the rewrite primitive of the Sirius correction: the dense
/// verification pass overwrites the sparse drafts' K/V, and `trim(to:)` rolls rejected drafts back.
///
/// Layout per layer: KV head-major, `[kvHeads][capacity][headDim]`, so the attention of one KV head
/// reads one contiguous stream. Entries are f32, or IEEE halves with `halfPrecision` (fast numerics:
/// half the bytes each decode step reads from the cache; exact numerics keep f32 to match the float
/// reference).
///
/// Positions below `sharedLength` may live in another cache (`shared`, a prefix cache entry): a sequence
/// that reuses a prefix reads it there instead of holding a copy, and the attention of every sequence
/// that shares one prefix reads it once per pass (`ck_attend_gqa_jobs`). The values are the same bits a
/// copy would hold, so nothing a sequence computes depends on whether it shares.
public final class KVCache {
    public let layerCount: Int
    public let kvDim: Int
    public let kvHeads: Int
    public let headDim: Int
    public let capacity: Int
    public let halfPrecision: Bool
    public private(set) var count: Int = 0
    /// The cache holding positions `0..<sharedLength` (nil: this cache holds them all).
    public private(set) var shared: KVCache?
    public private(set) var sharedLength = 0
    let keys: [UnsafeMutableRawPointer]
    let values: [UnsafeMutableRawPointer]
    private var esize: Int { halfPrecision ? 2 : 4 }

    public init(layerCount: Int, kvDim: Int, kvHeads: Int = 1, capacity: Int, halfPrecision: Bool = false) {
        precondition(capacity > 0 && kvHeads > 0 && kvDim % kvHeads == 0)
        self.layerCount = layerCount; self.kvDim = kvDim; self.capacity = capacity
        self.kvHeads = kvHeads; self.headDim = kvDim / kvHeads
        self.halfPrecision = halfPrecision
        let bytes = capacity * kvDim * (halfPrecision ? 2 : 4)
        func buffer() -> UnsafeMutableRawPointer {
            let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            p.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
            return p
        }
        keys = (0..<layerCount).map { _ in buffer() }
        values = (0..<layerCount).map { _ in buffer() }
    }

    deinit {
        for p in keys { p.deallocate() }
        for p in values { p.deallocate() }
    }

    /// Drops every position at or after `length`; returns how many were removed.
    @discardableResult
    public func trim(to length: Int) -> Int {
        precondition(length >= sharedLength, "cannot trim into a shared prefix")
        let removed = max(0, count - length)
        count = min(count, length)
        return removed
    }

    /// Empties the cache (and drops a shared prefix).
    public func reset() {
        count = 0
        shared = nil
        sharedLength = 0
    }

    /// Reads positions `0..<n` from `prefix` from now on (they must be the same values this cache would
    /// compute there); `count` becomes at least `n`. `n` is a multiple of 8 (whole attention tiles).
    public func share(prefix: KVCache, count n: Int) {
        precondition(prefix.kvDim == kvDim && prefix.kvHeads == kvHeads && prefix.layerCount == layerCount
                     && prefix.halfPrecision == halfPrecision && prefix.shared == nil)
        precondition(n % 8 == 0 && n <= prefix.count && n <= capacity && (shared == nil || shared === prefix))
        shared = prefix
        sharedLength = n
        count = max(count, n)
    }

    /// Marks positions `start..<end` as written (called by the forward pass after it stores them).
    func commitWrite(start: Int, end: Int) {
        precondition(start <= count && end <= capacity)
        count = end
    }

    /// Byte offset of (KV head `g`, position `p`) within a layer's buffer.
    @inline(__always)
    fileprivate func offset(head g: Int, position p: Int) -> Int { ((g * capacity) + p) * headDim * esize }

    /// Stores one position's keys and values (`kvDim` floats each, heads one after another) in `layer`.
    func store(layer: Int, position: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>) {
        precondition(position >= sharedLength, "cannot write into a shared prefix")
        for g in 0..<kvHeads {
            let kd = keys[layer] + offset(head: g, position: position)
            let vd = values[layer] + offset(head: g, position: position)
            let ks = k + g * headDim, vs = v + g * headDim
            if halfPrecision {
                ck_f32_to_f16_row(ks, kd.assumingMemoryBound(to: UInt16.self), Int64(headDim))
                ck_f32_to_f16_row(vs, vd.assumingMemoryBound(to: UInt16.self), Int64(headDim))
            } else {
                kd.assumingMemoryBound(to: Float.self).update(from: ks, count: headDim)
                vd.assumingMemoryBound(to: Float.self).update(from: vs, count: headDim)
            }
        }
    }

    /// Attention of the `heads` query heads that share KV head `group`, for `tokens` consecutive tokens
    /// whose causal lengths are `firstN, firstN + 1, …` (see `ck_attend_gqa`). Queries and outputs are
    /// `[tokens][tstride]` with the group's heads at offset 0 (the caller offsets both pointers).
    func attendGroup(layer: Int, group: Int, headDim: Int, heads: Int, tokens: Int, firstN: Int,
                     queries: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, tstride: Int, scale: Float,
                     visible: UnsafePointer<UInt8>?, vstride: Int, scores: UnsafeMutablePointer<Float>) {
        precondition(headDim == self.headDim)
        let (k0, v0) = shared.map { $0.base(layer: layer, group: group) } ?? (nil, nil)
        let (k, v) = base(layer: layer, group: group)
        var job = ck_attn_job(q: queries, out: out, ntok: Int64(tokens), first_n: Int64(firstN), k: k, v: v,
                              vis: visible, vstride: Int64(vstride), scores: scores)
        ck_attend_gqa_jobs(&job, 1, Int64(tstride), Int64(heads), Int64(headDim), k0, v0, Int64(sharedLength),
                           halfPrecision ? 1 : 0, Int64(headDim), scale)
    }

    /// Keys and values of KV head `group` in `layer`, position 0 (positions `headDim` entries apart).
    func base(layer: Int, group: Int) -> (keys: UnsafeRawPointer, values: UnsafeRawPointer) {
        (UnsafeRawPointer(keys[layer] + offset(head: group, position: 0)), UnsafeRawPointer(values[layer] + offset(head: group, position: 0)))
    }

    /// The cache that holds position `p` (this one or the shared prefix's).
    private func holder(_ p: Int) -> KVCache { p < sharedLength ? shared! : self }

    /// Bytes of keys and values held (all layers, whole capacity).
    public var byteCount: Int { 2 * layerCount * capacity * kvDim * esize }

    /// Copies positions `range` of `other` (same model and entry type; capacities may differ) to
    /// positions `at ..< at + range.count` of this cache, and sets `count` to `at + range.count`. How a
    /// prefix cache entry is taken from a sequence and lent to one.
    public func copyPositions(_ range: Range<Int>, from other: KVCache, to at: Int) {
        precondition(other.kvDim == kvDim && other.kvHeads == kvHeads && other.layerCount == layerCount
                     && other.halfPrecision == halfPrecision && range.upperBound <= other.count)
        precondition(at >= sharedLength && at <= count && at + range.count <= capacity, "copy into positions this cache holds")
        // Two runs: what `other` reads from its shared prefix, then what it holds itself.
        let split = min(max(range.lowerBound, other.sharedLength), range.upperBound)
        for (source, from, to) in [(other.shared, range.lowerBound, split), (other, split, range.upperBound)] where to > from {
            let src = source!, bytes = (to - from) * headDim * esize, dest = at + from - range.lowerBound
            for l in 0..<layerCount {
                for g in 0..<kvHeads {
                    (keys[l] + offset(head: g, position: dest)).copyMemory(from: src.keys[l] + src.offset(head: g, position: from), byteCount: bytes)
                    (values[l] + offset(head: g, position: dest)).copyMemory(from: src.values[l] + src.offset(head: g, position: from), byteCount: bytes)
                }
            }
        }
        count = at + range.count
    }

    /// Copies the K/V of position `from` to position `to` in every layer (tree compaction).
    public func copyPosition(from: Int, to: Int) {
        guard from != to else { return }
        precondition(to >= sharedLength, "cannot write into a shared prefix")
        let bytes = headDim * esize, src = holder(from)
        for l in 0..<layerCount {
            for g in 0..<kvHeads {
                (keys[l] + offset(head: g, position: to)).copyMemory(from: src.keys[l] + src.offset(head: g, position: from), byteCount: bytes)
                (values[l] + offset(head: g, position: to)).copyMemory(from: src.values[l] + src.offset(head: g, position: from), byteCount: bytes)
            }
        }
    }

    /// A snapshot of positions `0..<count` of one layer as floats, `[count][kvDim]` (tests).
    public func snapshot(layer: Int) -> (keys: [Float], values: [Float]) {
        func read(_ buffers: (KVCache) -> UnsafeMutableRawPointer) -> [Float] {
            var out = [Float](repeating: 0, count: count * kvDim)
            for pos in 0..<count {
                let h = holder(pos)
                for g in 0..<kvHeads {
                    let src = buffers(h) + h.offset(head: g, position: pos)
                    for i in 0..<headDim {
                        out[pos * kvDim + g * headDim + i] = halfPrecision
                            ? ck_f16_to_f32(src.assumingMemoryBound(to: UInt16.self)[i])
                            : src.assumingMemoryBound(to: Float.self)[i]
                    }
                }
            }
            return out
        }
        return (read { $0.keys[layer] }, read { $0.values[layer] })
    }
}
