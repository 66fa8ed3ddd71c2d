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
public final class KVCache {
    public let layerCount: Int
    public let kvDim: Int
    public let kvHeads: Int
    public let headDim: Int
    public let capacity: Int
    public let halfPrecision: Bool
    public private(set) var count: Int = 0
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
        precondition(length >= 0)
        let removed = max(0, count - length)
        count = min(count, length)
        return removed
    }

    public func reset() { count = 0 }

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
        let k = UnsafeRawPointer(keys[layer] + offset(head: group, position: 0))
        let v = UnsafeRawPointer(values[layer] + offset(head: group, position: 0))
        ck_attend_gqa(queries, out, Int64(tstride), Int64(tokens), Int64(heads), Int64(headDim), Int64(firstN),
                      k, v, halfPrecision ? 1 : 0, Int64(headDim), scale, visible, Int64(vstride), scores)
    }

    /// Bytes of keys and values held (all layers, whole capacity).
    public var byteCount: Int { 2 * layerCount * capacity * kvDim * esize }

    /// Makes positions `0..<count` a copy of `other`'s (same model and entry type; capacities may
    /// differ) and sets `count`. How a prefix cache entry is lent to a sequence and taken from one.
    public func copyPrefix(from other: KVCache, count n: Int) {
        precondition(other.kvDim == kvDim && other.kvHeads == kvHeads && other.layerCount == layerCount
                     && other.halfPrecision == halfPrecision && n <= other.count && n <= capacity)
        let bytes = n * headDim * esize
        for l in 0..<layerCount {
            for g in 0..<kvHeads {
                (keys[l] + offset(head: g, position: 0)).copyMemory(from: other.keys[l] + other.offset(head: g, position: 0), byteCount: bytes)
                (values[l] + offset(head: g, position: 0)).copyMemory(from: other.values[l] + other.offset(head: g, position: 0), byteCount: bytes)
            }
        }
        count = n
    }

    /// Copies the K/V of position `from` to position `to` in every layer (tree compaction).
    public func copyPosition(from: Int, to: Int) {
        guard from != to else { return }
        let bytes = headDim * esize
        for l in 0..<layerCount {
            for g in 0..<kvHeads {
                (keys[l] + offset(head: g, position: to)).copyMemory(from: keys[l] + offset(head: g, position: from), byteCount: bytes)
                (values[l] + offset(head: g, position: to)).copyMemory(from: values[l] + offset(head: g, position: from), byteCount: bytes)
            }
        }
    }

    /// A snapshot of positions `0..<count` of one layer as floats, `[count][kvDim]` (tests).
    public func snapshot(layer: Int) -> (keys: [Float], values: [Float]) {
        func read(_ p: UnsafeMutableRawPointer) -> [Float] {
            var out = [Float](repeating: 0, count: count * kvDim)
            for pos in 0..<count {
                for g in 0..<kvHeads {
                    let src = p + offset(head: g, position: pos)
                    for i in 0..<headDim {
                        out[pos * kvDim + g * headDim + i] = halfPrecision
                            ? ck_f16_to_f32(src.assumingMemoryBound(to: UInt16.self)[i])
                            : src.assumingMemoryBound(to: Float.self)[i]
                    }
                }
            }
            return out
        }
        return (read(keys[layer]), read(values[layer]))
    }
}
