/// Pair of symbol ids → (priority rank, merged id). Lower rank merges first; equal ranks merge leftmost first.
struct MergeTable: Sendable {
    private var map: [UInt64: UInt64] = [:]

    var count: Int { map.count }

    init(capacity: Int = 0) { map.reserveCapacity(capacity) }

    @inline(__always) private static func key(_ a: Int32, _ b: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
    }

    /// Keeps the first (best) rank when the same pair is added twice.
    mutating func add(_ a: Int32, _ b: Int32, rank: Int32, result: Int32) {
        let k = Self.key(a, b)
        if map[k] == nil { map[k] = UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(UInt32(bitPattern: result)) }
    }

    @inline(__always) func lookup(_ a: Int32, _ b: Int32) -> (rank: Int32, result: Int32)? {
        guard let v = map[Self.key(a, b)] else { return nil }
        return (Int32(bitPattern: UInt32(v >> 32)), Int32(bitPattern: UInt32(truncatingIfNeeded: v)))
    }
}

/// A symbol that never takes part in a merge (byte-fallback pieces, unknown).
let unmergeable: Int32 = -1

/// Applies BPE merges to `symbols` in place (ids; negative ids are never merged, `Int32.min` marks a dropped
/// symbol). Rank order, ties leftmost: the same order as Hugging Face tokenizers' `Word::merge_all` and, with
/// score-derived ranks, llama.cpp's SentencePiece tokenizer. Short inputs use a direct scan; long ones a
/// binary heap, so a pathological single word of n symbols costs O(n log n).
func applyMerges(_ symbols: inout [Int32], _ merges: MergeTable) {
    let n = symbols.count
    if n < 2 { return }
    if n <= 24 { mergeByScan(&symbols, merges); return }
    mergeByHeap(&symbols, merges)
}

private func mergeByScan(_ s: inout [Int32], _ merges: MergeTable) {
    // Cache each adjacent pair's rank; recompute only the neighbours of a merge.
    var ranks = [Int32](repeating: Int32.max, count: s.count)
    var results = [Int32](repeating: 0, count: s.count)
    @inline(__always) func fill(_ i: Int) {
        if i >= 0 && i + 1 < s.count, s[i] >= 0, s[i + 1] >= 0, let m = merges.lookup(s[i], s[i + 1]) {
            ranks[i] = m.rank; results[i] = m.result
        } else if i >= 0 && i < ranks.count {
            ranks[i] = Int32.max
        }
    }
    for i in 0..<(s.count - 1) { fill(i) }
    while s.count > 1 {
        var best = Int32.max, bi = -1
        for i in 0..<(s.count - 1) where ranks[i] < best { best = ranks[i]; bi = i }
        if bi < 0 { break }
        s[bi] = results[bi]
        s.remove(at: bi + 1)
        ranks.remove(at: bi + 1)
        results.remove(at: bi + 1)
        ranks[ranks.count - 1] = Int32.max
        fill(bi - 1)
        fill(bi)
    }
}

private struct HeapEntry {
    var key: UInt64   // rank << 32 | left position
    var left: Int32
    var right: Int32
}

private func mergeByHeap(_ s: inout [Int32], _ merges: MergeTable) {
    let n = s.count
    var ids = s
    var next = [Int32](unsafeUninitializedCapacity: n) { b, c in
        for i in 0..<n { b[i] = i + 1 < n ? Int32(i + 1) : -1 }
        c = n
    }
    var prev = [Int32](unsafeUninitializedCapacity: n) { b, c in
        for i in 0..<n { b[i] = Int32(i - 1) }
        c = n
    }
    var alive = [Bool](repeating: true, count: n)
    var heap: [HeapEntry] = []
    heap.reserveCapacity(n)

    func push(_ e: HeapEntry) {
        heap.append(e)
        var i = heap.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if heap[p].key <= heap[i].key { break }
            heap.swapAt(p, i); i = p
        }
    }
    func pop() -> HeapEntry {
        let top = heap[0]
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var i = 0
            let c = heap.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < c && heap[l].key < heap[m].key { m = l }
                if r < c && heap[r].key < heap[m].key { m = r }
                if m == i { break }
                heap.swapAt(i, m); i = m
            }
        }
        return top
    }
    func consider(_ i: Int) {
        guard i >= 0 else { return }
        let j = Int(next[i])
        guard j >= 0, ids[i] >= 0, ids[j] >= 0, let m = merges.lookup(ids[i], ids[j]) else { return }
        push(HeapEntry(key: UInt64(UInt32(bitPattern: m.rank)) << 32 | UInt64(i), left: ids[i], right: ids[j]))
    }
    for i in 0..<(n - 1) { consider(i) }
    while !heap.isEmpty {
        let e = pop()
        let i = Int(e.key & 0xFFFF_FFFF)
        guard alive[i], ids[i] == e.left else { continue }
        let j = Int(next[i])
        guard j >= 0, ids[j] == e.right, let m = merges.lookup(e.left, e.right) else { continue }
        ids[i] = m.result
        alive[j] = false
        let k = next[j]
        next[i] = k
        if k >= 0 { prev[Int(k)] = Int32(i) }
        consider(Int(prev[i]))
        consider(i)
    }
    var out: [Int32] = []
    out.reserveCapacity(n)
    var i = 0
    while i >= 0 && i < n {
        out.append(ids[i])
        i = Int(next[i])
    }
    s = out
}
