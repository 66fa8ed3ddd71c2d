import CKernels
import Foundation
import SiriusEngine
import Testing
import TestSupport

/// `ck_attend_gqa` (all query heads of one KV head, several tokens per call) against a double-precision
/// softmax attention, and the property the Sirius correction needs from it: a query's output is bit for
/// bit the same whether it is computed alone or with other queries, and wherever its visible positions
/// sit in the cache.
@Suite("Grouped-query attention kernel", .serialized)
struct AttentionKernelTests {
    /// Runs `body` with the CPU's widest kernels and again limited to AVX2 (the same path on a CPU
    /// without AVX-512), holding the kernel-selection lock.
    func onEveryPath(_ body: () -> Void) {
        for limited in [false, true] {
            KernelSelection.shared.with(scalar: false) {
                ck_limit_avx512(limited ? 1 : 0)
                defer { ck_limit_avx512(0) }
                body()
            }
        }
    }

    let d = 64, heads = 3

    func random(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = SeededRandom(seed: seed)
        return (0..<n).map { _ in (rng.nextUnit() * 2 - 1) * scale }
    }

    /// Cache rows as stored: floats, or halves (then read back as floats for the reference).
    struct Rows {
        var f32: [Float]
        var f16: [UInt16]
        init(_ x: [Float]) { f16 = x.map { ck_f32_to_f16($0) }; f32 = x }
        func values(half: Bool) -> [Float] { half ? f16.map { ck_f16_to_f32($0) } : f32 }
    }

    /// `ntok` tokens × `heads` queries; returns `[ntok][heads·d]`.
    func attend(_ q: [Float], ntok: Int, firstN: Int, k: Rows, v: Rows, half: Bool, visible: [UInt8]? = nil,
                vstride: Int = 0) -> [Float] {
        var out = [Float](repeating: .nan, count: ntok * heads * d)
        let npad = (firstN + ntok - 1 + 7) / 8 * 8
        var scores = [Float](repeating: 0, count: ntok * heads * npad)
        let scale = 1 / Float(d).squareRoot()
        func run(_ kp: UnsafeRawPointer, _ vp: UnsafeRawPointer) {
            if let visible {
                visible.withUnsafeBufferPointer { vis in
                    ck_attend_gqa(q, &out, Int64(heads * d), Int64(ntok), Int64(heads), Int64(d), Int64(firstN), kp, vp,
                                  half ? 1 : 0, Int64(d), scale, vis.baseAddress, Int64(vstride), &scores)
                }
            } else {
                ck_attend_gqa(q, &out, Int64(heads * d), Int64(ntok), Int64(heads), Int64(d), Int64(firstN), kp, vp,
                              half ? 1 : 0, Int64(d), scale, nil, 0, &scores)
            }
        }
        if half {
            k.f16.withUnsafeBytes { kb in v.f16.withUnsafeBytes { vb in run(kb.baseAddress!, vb.baseAddress!) } }
        } else {
            k.f32.withUnsafeBytes { kb in v.f32.withUnsafeBytes { vb in run(kb.baseAddress!, vb.baseAddress!) } }
        }
        return out
    }

    /// Softmax attention in doubles over the positions `seen`.
    func reference(q: ArraySlice<Float>, k: [Float], v: [Float], seen: [Int]) -> [Double] {
        let qa = Array(q)
        let s = seen.map { j in (0..<d).reduce(0.0) { $0 + Double(qa[$1]) * Double(k[j * d + $1]) } / Double(d).squareRoot() }
        let m = s.max()!
        let e = s.map { exp($0 - m) }, total = e.reduce(0, +)
        return (0..<d).map { c in zip(seen, e).reduce(0.0) { $0 + $1.1 * Double(v[$1.0 * d + c]) } / total }
    }

    @Test("matches a double-precision softmax; a token alone equals the same token in a batch, bit for bit",
          arguments: [false, true])
    func batchInvariance(half: Bool) { onEveryPath { batchInvarianceOnce(half: half) } }

    func batchInvarianceOnce(half: Bool) {
        let n = 45, ntok = 7, firstN = n - ntok + 1
        let k = Rows(random(n * d, seed: 1, scale: 2)), v = Rows(random(n * d, seed: 2))
        let q = random(ntok * heads * d, seed: 3, scale: 2)
        let batch = attend(q, ntok: ntok, firstN: firstN, k: k, v: v, half: half)
        let kv = k.values(half: half), vv = v.values(half: half)
        for t in 0..<ntok {
            let one = attend(Array(q[(t * heads * d)..<((t + 1) * heads * d)]), ntok: 1, firstN: firstN + t, k: k, v: v, half: half)
            let slice = Array(batch[(t * heads * d)..<((t + 1) * heads * d)])
            #expect(Compare.bitsEqual(one, slice), "token \(t) alone differs from the batch")
            for h in 0..<heads {
                let base = (t * heads + h) * d
                let ref = reference(q: q[base..<(base + d)], k: kv, v: vv, seen: Array(0..<(firstN + t)))
                let err = (0..<d).map { abs(Double(batch[base + $0]) - ref[$0]) }.max()!
                #expect(err < 1e-5, "token \(t) head \(h): max error \(err)")
            }
        }
    }

    @Test("a query's visible positions give the same bits wherever they sit in the cache", arguments: [false, true])
    func slotInvariance(half: Bool) { onEveryPath { slotInvarianceOnce(half: half) } }

    func slotInvarianceOnce(half: Bool) {
        // Plain layout: the query (token 0 of the call) sees positions 0..<20.
        let n = 20
        let kPlain = random(n * d, seed: 11, scale: 2), vPlain = random(n * d, seed: 12)
        let q = random(heads * d, seed: 13, scale: 2)
        let plain = attend(q, ntok: 1, firstN: n, k: Rows(kPlain), v: Rows(vPlain), half: half)
        // Tree-like layout: positions 0..<13 as before, then 9 junk slots interleaved with the last 7
        // positions; the call's last token (slot 28) is our query and sees only the real ones.
        var kTree = Array(kPlain[0..<(13 * d)]), vTree = Array(vPlain[0..<(13 * d)])
        var seen = Array(0..<13)
        let junkK = random(9 * d, seed: 14, scale: 50), junkV = random(9 * d, seed: 15, scale: 50)
        var junk = 0
        for j in 13..<n {
            if j % 2 == 1 || junk < 2 {   // a junk slot before some real ones
                kTree += junkK[(junk * d)..<((junk + 1) * d)]; vTree += junkV[(junk * d)..<((junk + 1) * d)]; junk += 1
            }
            seen.append(kTree.count / d)
            kTree += kPlain[(j * d)..<((j + 1) * d)]; vTree += vPlain[(j * d)..<((j + 1) * d)]
        }
        let slots = kTree.count / d
        #expect(seen.last == slots - 1)
        // The call covers the tokens at the last 3 slots; visibility rows for all of them.
        let ntok = 3, firstN = slots - ntok + 1
        var vis = [UInt8](repeating: 0, count: ntok * slots)
        for t in 0..<ntok { for j in 0..<(firstN + t) where seen.contains(j) { vis[t * slots + j] = 1 } }
        var qs = random(ntok * heads * d, seed: 16)
        for i in 0..<(heads * d) { qs[(ntok - 1) * heads * d + i] = q[i] }
        let tree = attend(qs, ntok: ntok, firstN: firstN, k: Rows(kTree), v: Rows(vTree), half: half, visible: vis, vstride: slots)
        #expect(Compare.bitsEqual(Array(tree[((ntok - 1) * heads * d)...]), plain))
    }

    @Test("jobs that share a prefix (read once for all of them) equal each job alone over a copy of it, bit for bit",
          arguments: [false, true])
    func sharedPrefix(half: Bool) { onEveryPath { sharedPrefixOnce(half: half) } }

    func sharedPrefixOnce(half: Bool) {
        let split = 24
        let kPrefix = random(split * d, seed: 21, scale: 2), vPrefix = random(split * d, seed: 22)
        // Three sequences after the prefix: (own positions, tokens in the call, a visibility row or not).
        let shapes: [(own: Int, ntok: Int, masked: Bool)] = [(5, 1, false), (19, 4, false), (11, 3, true)]
        let scale = 1 / Float(d).squareRoot()
        func store(_ x: [Float]) -> [UInt8] {
            half ? x.map { ck_f32_to_f16($0) }.withUnsafeBytes { Array($0) } : x.withUnsafeBytes { Array($0) }
        }
        var alone: [[Float]] = [], ownK: [[UInt8]] = [], ownV: [[UInt8]] = [], queries: [[Float]] = [], masks: [[UInt8]] = []
        for (i, shape) in shapes.enumerated() {
            let n = split + shape.own, firstN = n - shape.ntok + 1
            let kSuffix = random(shape.own * d, seed: 30 + UInt64(i), scale: 2), vSuffix = random(shape.own * d, seed: 40 + UInt64(i))
            let q = random(shape.ntok * heads * d, seed: 50 + UInt64(i), scale: 2)
            var vis = [UInt8](repeating: 1, count: shape.ntok * n)
            if shape.masked { for t in 0..<shape.ntok { for j in stride(from: 3, to: n - 1, by: 4) { vis[t * n + j] = 0 } } }
            alone.append(attend(q, ntok: shape.ntok, firstN: firstN, k: Rows(kPrefix + kSuffix), v: Rows(vPrefix + vSuffix),
                                half: half, visible: shape.masked ? vis : nil, vstride: n))
            // The job's own buffers hold NaN where the prefix would be: the kernel must not read there.
            ownK.append(store([Float](repeating: .nan, count: split * d) + kSuffix))
            ownV.append(store([Float](repeating: .nan, count: split * d) + vSuffix))
            queries.append(q)
            masks.append(vis)
        }
        // The kernel's inputs in buffers of their own (freed at the end).
        var buffers: [UnsafeMutableRawPointer] = []
        defer { for b in buffers { b.deallocate() } }
        func buffer<T>(_ x: [T]) -> UnsafeMutablePointer<T> {
            let p = UnsafeMutablePointer<T>.allocate(capacity: max(1, x.count))
            p.initialize(from: x, count: x.count)
            buffers.append(UnsafeMutableRawPointer(p))
            return p
        }
        var jobs: [ck_attn_job] = [], outs: [UnsafeMutablePointer<Float>] = []
        for (i, shape) in shapes.enumerated() {
            let n = split + shape.own
            outs.append(buffer([Float](repeating: .nan, count: shape.ntok * heads * d)))
            jobs.append(ck_attn_job(q: buffer(queries[i]), out: outs[i], ntok: Int64(shape.ntok), first_n: Int64(n - shape.ntok + 1),
                                    k: buffer(ownK[i]), v: buffer(ownV[i]), vis: shape.masked ? UnsafePointer(buffer(masks[i])) : nil,
                                    vstride: Int64(n), scores: buffer([Float](repeating: 0, count: shape.ntok * heads * (n + 7) / 8 * 8))))
        }
        ck_attend_gqa_jobs(jobs, Int64(jobs.count), Int64(heads * d), Int64(heads), Int64(d), buffer(store(kPrefix)),
                           buffer(store(vPrefix)), Int64(split), half ? 1 : 0, Int64(d), scale)
        for i in shapes.indices {
            let got = Array(UnsafeBufferPointer(start: outs[i], count: shapes[i].ntok * heads * d))
            #expect(Compare.bitsEqual(got, alone[i]), "job \(i) differs from its attention alone")
        }
    }
}
