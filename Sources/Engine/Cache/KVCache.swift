/// Keys and values of every layer for positions `0..<count`, stored per layer as
/// `[capacity][kvDim]` floats. A forward pass over positions `start..<start+T` (with `start <= count`)
/// writes those slots — overwriting any that were there — and sets `count = start + T`. That is the
/// rewrite primitive of the Sirius correction: the dense verification pass overwrites the sparse
/// drafts' K/V, and `trim(to:)` rolls rejected drafts back.
public final class KVCache {
    public let layerCount: Int
    public let kvDim: Int
    public let capacity: Int
    public private(set) var count: Int = 0
    let keys: [UnsafeMutablePointer<Float>]
    let values: [UnsafeMutablePointer<Float>]

    public init(layerCount: Int, kvDim: Int, capacity: Int) {
        precondition(capacity > 0)
        self.layerCount = layerCount; self.kvDim = kvDim; self.capacity = capacity
        keys = (0..<layerCount).map { _ in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: capacity * kvDim)
            p.initialize(repeating: 0, count: capacity * kvDim)
            return p
        }
        values = (0..<layerCount).map { _ in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: capacity * kvDim)
            p.initialize(repeating: 0, count: capacity * kvDim)
            return p
        }
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

    public func key(layer: Int, position: Int) -> UnsafeMutablePointer<Float> { keys[layer] + position * kvDim }
    public func value(layer: Int, position: Int) -> UnsafeMutablePointer<Float> { values[layer] + position * kvDim }

    /// Copies the K/V of position `from` to position `to` in every layer (tree compaction).
    public func copyPosition(from: Int, to: Int) {
        guard from != to else { return }
        for l in 0..<layerCount {
            (keys[l] + to * kvDim).update(from: keys[l] + from * kvDim, count: kvDim)
            (values[l] + to * kvDim).update(from: values[l] + from * kvDim, count: kvDim)
        }
    }

    /// A snapshot of positions `0..<count` of one layer (tests).
    public func snapshot(layer: Int) -> (keys: [Float], values: [Float]) {
        (Array(UnsafeBufferPointer(start: keys[layer], count: count * kvDim)),
         Array(UnsafeBufferPointer(start: values[layer], count: count * kvDim)))
    }
}
