import CKernels

/// Keys and values of every layer for positions `0..<count`, stored per layer as
/// `[capacity][kvDim]` floats. A forward pass over positions `start..<start+T` (with `start <= count`)
/// writes those slots — overwriting any that were there — and sets `count = start + T`. That is the
/// rewrite primitive of the Sirius correction: the dense verification pass overwrites the sparse
/// drafts' K/V, and `trim(to:)` rolls rejected drafts back.
///
/// Entries are f32, or IEEE halves with `halfPrecision` (fast numerics: half the bytes each decode step
/// reads from the cache; exact numerics keep f32 to match the float reference).
public final class KVCache {
    public let layerCount: Int
    public let kvDim: Int
    public let capacity: Int
    public let halfPrecision: Bool
    public private(set) var count: Int = 0
    let keys: [UnsafeMutableRawPointer]
    let values: [UnsafeMutableRawPointer]
    /// Bytes of one position of one layer's keys (or values).
    var rowBytes: Int { kvDim * (halfPrecision ? 2 : 4) }

    public init(layerCount: Int, kvDim: Int, capacity: Int, halfPrecision: Bool = false) {
        precondition(capacity > 0)
        self.layerCount = layerCount; self.kvDim = kvDim; self.capacity = capacity
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

    /// Stores one position's keys and values (`kvDim` floats each) in `layer`.
    func store(layer: Int, position: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>) {
        let kd = keys[layer] + position * rowBytes, vd = values[layer] + position * rowBytes
        if halfPrecision {
            ck_f32_to_f16_row(k, kd.assumingMemoryBound(to: UInt16.self), Int64(kvDim))
            ck_f32_to_f16_row(v, vd.assumingMemoryBound(to: UInt16.self), Int64(kvDim))
        } else {
            kd.assumingMemoryBound(to: Float.self).update(from: k, count: kvDim)
            vd.assumingMemoryBound(to: Float.self).update(from: v, count: kvDim)
        }
    }

    /// One attention head of one query over positions `0..<n` of `layer`, KV head `group`
    /// (see `ck_attend`).
    func attend(layer: Int, group: Int, headDim: Int, query: UnsafePointer<Float>, positions n: Int, scale: Float,
                visible: UnsafePointer<UInt8>?, scores: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>) {
        if halfPrecision {
            let k = keys[layer].assumingMemoryBound(to: UInt16.self) + group * headDim
            let v = values[layer].assumingMemoryBound(to: UInt16.self) + group * headDim
            ck_attend_f16(query, k, v, Int64(kvDim), Int64(n), Int64(headDim), scale, visible, scores, out)
        } else {
            let k = keys[layer].assumingMemoryBound(to: Float.self) + group * headDim
            let v = values[layer].assumingMemoryBound(to: Float.self) + group * headDim
            ck_attend(query, k, v, Int64(kvDim), Int64(n), Int64(headDim), scale, visible, scores, out)
        }
    }

    /// Copies the K/V of position `from` to position `to` in every layer (tree compaction).
    public func copyPosition(from: Int, to: Int) {
        guard from != to else { return }
        for l in 0..<layerCount {
            (keys[l] + to * rowBytes).copyMemory(from: keys[l] + from * rowBytes, byteCount: rowBytes)
            (values[l] + to * rowBytes).copyMemory(from: values[l] + from * rowBytes, byteCount: rowBytes)
        }
    }

    /// A snapshot of positions `0..<count` of one layer as floats (tests).
    public func snapshot(layer: Int) -> (keys: [Float], values: [Float]) {
        func read(_ p: UnsafeMutableRawPointer) -> [Float] {
            let n = count * kvDim
            if halfPrecision {
                let h = p.assumingMemoryBound(to: UInt16.self)
                return (0..<n).map { ck_f16_to_f32(h[$0]) }
            }
            return Array(UnsafeBufferPointer(start: p.assumingMemoryBound(to: Float.self), count: n))
        }
        return (read(keys[layer]), read(values[layer]))
    }
}
