import CKernels
import Foundation
import SiriusMethod

/// Sparse drafting corrected by the full model (sirius-method.md §3), one period at a time, in named
/// steps:
/// - **draft**: K−1 sparse passes extend a tree of drafts from the newest dense token (the root); a
///   chain when the tree width W is 1, a W-wide beam otherwise; with an adaptive period the chain stops
///   early, after the first draft whose probability under the sparse model is below the bound;
/// - **verify**: one dense pass over every node, which overwrites the drafts' K/V with dense K/V;
/// - **accept**: the longest root-to-leaf prefix the acceptance rule keeps (ties to the better-ranked leaf);
/// - **roll back**: the accepted path's K/V compacted behind the root, everything after it dropped;
/// - **advance**: the accepted drafts and the dense model's own next token (the correction, or a bonus
///   when everything was accepted) are committed; that token is the next period's root.
///
/// Node i of a period sits in cache slot c + i (c = the root's slot); depth d's W nodes take slots
/// c+1+(d−1)W ..< c+1+dW.
final class SiriusSteps: MethodSteps {
    /// One node of the draft tree: its token, its parent's index (−1 = the root) and depth.
    struct Node { var token: Int32; var parent: Int; var depth: Int; var score: Float }

    private let K: Int, W: Int
    private let threshold: Float, invTemperature: Float
    private let acceptance: AcceptanceRule
    /// The adaptive period's bound on the sparse model's probability of its draft (nil: fixed K).
    private let adaptiveBound: Float?
    private let sparse: any SparseMLP
    /// The newest dense token and its slot (not yet in the cache).
    private var root: Int32 = 0
    private var c: Int
    private var nodes: [Node] = []
    private var frontier = 0..<1
    private var depth = 1
    private var verifying = false
    private var lastAdvance = 0
    // Pass inputs, reused.
    private var tokens: [Int32] = []
    private var positions: [Int] = []
    private var parents: [Int] = []

    init(method: MethodSpec, sparse: any SparseMLP, promptCount: Int) {
        precondition(method.period >= 2 && method.treeWidth >= 1)
        K = method.period; W = method.treeWidth
        threshold = Float(method.threshold)
        invTemperature = 1 / Float(method.acceptanceTemperature)
        acceptance = method.acceptance
        adaptiveBound = method.adaptivePeriod.map { Float($0) }
        self.sparse = sparse
        c = promptCount
        nodes.reserveCapacity((K - 1) * W + 1)
    }

    func begin(_ logits: UnsafeMutableBufferPointer<Float>, _ seq: DecodeSequence) {
        root = argmax(UnsafeBufferPointer(logits))
        seq.emit(root)
        startPeriod()
    }

    private func startPeriod() {
        nodes.removeAll(keepingCapacity: true)
        nodes.append(Node(token: root, parent: -1, depth: 0, score: 0))
        frontier = 0..<1
        depth = 1
        verifying = false
    }

    func nextPass(_ seq: DecodeSequence) -> (PassSegment, PassPhase)? {
        guard !seq.committed.isFinished else { return nil }
        if !verifying {
            guard depth > 1 || c + (K - 1) * W + 1 <= seq.cache.capacity else {
                seq.finishForContext()
                return nil
            }
            return (draftPass(seq), .draft)
        }
        return (verifyPass(seq), .verify)
    }

    func passDone(_ logits: UnsafeMutableBufferPointer<Float>, _ seq: DecodeSequence) {
        if !verifying {
            draft(logits, seq)
        } else {
            seq.counters.densePasses += 1
            seq.counters.tokensVerified += nodes.count
            let (path, accepted) = accept(logits)
            let correction = rollBack(path: path, accepted: accepted, logits: logits, seq)
            advance(path: path, accepted: accepted, correction: correction, seq)
        }
    }

    // MARK: draft

    /// The sparse pass over the frontier (the root, then the previous depth's nodes).
    private func draftPass(_ seq: DecodeSequence) -> PassSegment {
        tokens.removeAll(keepingCapacity: true)
        for i in frontier { tokens.append(nodes[i].token) }
        let slot0 = c + frontier.lowerBound
        guard W > 1 else { return PassSegment(cache: seq.cache, tokens: tokens, start: slot0, mlp: .sparse(sparse)) }
        positions.removeAll(keepingCapacity: true)
        for i in frontier { positions.append(c + nodes[i].depth) }
        return PassSegment(cache: seq.cache, tokens: tokens, start: slot0, positions: positions,
                           mask: treeMask(firstNode: frontier.lowerBound), mlp: .sparse(sparse), logits: .all)
    }

    /// Extends the tree by one depth from the sparse logits of the frontier.
    private func draft(_ logits: UnsafeMutableBufferPointer<Float>, _ seq: DecodeSequence) {
        seq.counters.sparseSteps += 1
        let first = nodes.count
        var confident = true
        if W == 1 {
            let token = argmax(UnsafeBufferPointer(logits))
            nodes.append(Node(token: token, parent: frontier.lowerBound, depth: depth, score: 0))
            if let bound = adaptiveBound {
                confident = ck_softmax_at(logits.baseAddress!, Int64(logits.count), 1, Int64(token)) >= bound
            }
        } else {
            expandBeam(logits: logits, vocab: logits.count / frontier.count)
        }
        frontier = first..<nodes.count
        depth += 1
        if depth == K || !confident { verifying = true }
    }

    /// W-wide beam step: each frontier node proposes its top-W tokens scored by cumulative
    /// log_softmax(z/T); the W best candidates overall become the next depth (best first).
    private func expandBeam(logits: UnsafeMutableBufferPointer<Float>, vocab: Int) {
        var cands: [Node] = []
        for (r, parent) in frontier.enumerated() {
            let z = UnsafeBufferPointer(rebasing: logits[(r * vocab)..<((r + 1) * vocab)])
            var m = -Float.infinity
            for v in z where v > m { m = v }
            var sum: Float = 0
            for v in z { sum += expf((v - m) * invTemperature) }
            let logZ = logf(sum)
            // Top-W of this row.
            var top: [(Int32, Float)] = []
            for (j, v) in z.enumerated() where top.count < W || v > top[top.count - 1].1 {
                let pos = top.firstIndex { $0.1 < v } ?? top.count
                top.insert((Int32(j), v), at: pos)
                if top.count > W { top.removeLast() }
            }
            for (tok, v) in top {
                cands.append(Node(token: tok, parent: parent, depth: depth, score: nodes[parent].score + (v - m) * invTemperature - logZ))
            }
        }
        cands.sort { $0.score > $1.score }
        nodes.append(contentsOf: cands.prefix(W))
    }

    // MARK: verify

    /// One dense pass over every node (the root and all drafts), overwriting their K/V.
    private func verifyPass(_ seq: DecodeSequence) -> PassSegment {
        tokens.removeAll(keepingCapacity: true)
        for n in nodes { tokens.append(n.token) }
        guard W > 1 else { return PassSegment(cache: seq.cache, tokens: tokens, start: c, logits: .all) }
        positions.removeAll(keepingCapacity: true)
        for n in nodes { positions.append(c + n.depth) }
        return PassSegment(cache: seq.cache, tokens: tokens, start: c, positions: positions, mask: treeMask(firstNode: 0), logits: .all)
    }

    /// Tree attention within a period: a node sees the committed prefix, and itself and its ancestors.
    /// Query q of the pass is node `firstNode + q`.
    private func treeMask(firstNode: Int) -> AttentionMask {
        parents.removeAll(keepingCapacity: true)
        for n in nodes { parents.append(n.parent) }
        let parents = self.parents, c = self.c
        return AttentionMask(from: c) { q, j in
            var i = firstNode + q
            let target = j - c
            while i >= target {
                if i == target { return true }
                i = parents[i]
            }
            return false
        }
    }

    // MARK: accept

    /// The best leaf's root-to-leaf path and how many of its drafts are accepted.
    private func accept(_ dense: UnsafeMutableBufferPointer<Float>) -> (path: [Int], accepted: Int) {
        let vocab = dense.count / nodes.count
        var bestLeaf = -1, bestL = -1
        for leaf in frontier {
            let path = pathTo(leaf)
            var L = 0
            for i in path {
                if accepts(token: nodes[i].token, logits: dense, row: nodes[i].parent, vocab: vocab) { L += 1 } else { break }
            }
            if L > bestL { bestL = L; bestLeaf = leaf }
        }
        return (pathTo(bestLeaf), bestL)
    }

    private func pathTo(_ leaf: Int) -> [Int] {
        var path: [Int] = []
        var i = leaf
        while i > 0 { path.append(i); i = nodes[i].parent }
        return path.reversed()
    }

    /// Whether the draft `token` is accepted given the dense logits of `row` (its parent's position).
    private func accepts(token: Int32, logits: UnsafeMutableBufferPointer<Float>, row: Int, vocab: Int) -> Bool {
        let z = UnsafeBufferPointer(rebasing: logits[(row * vocab)..<((row + 1) * vocab)])
        let isArgmax = argmax(z) == token
        switch acceptance {
        case .argmax: return isArgmax
        case .thresholdOrArgmax: if isArgmax { return true }
        case .threshold: break
        }
        return ck_softmax_at(z.baseAddress!, Int64(z.count), invTemperature, Int64(token)) >= threshold
    }

    // MARK: roll back

    /// Compacts the accepted path's K/V into slots c+1 … c+L, drops the rest, and returns the dense
    /// model's token after the last accepted node (the correction, or a bonus when all were accepted).
    private func rollBack(path: [Int], accepted L: Int, logits dense: UnsafeMutableBufferPointer<Float>, _ seq: DecodeSequence) -> Int32 {
        let vocab = dense.count / nodes.count
        for (d, node) in path.prefix(L).enumerated() { seq.cache.copyPosition(from: c + node, to: c + 1 + d) }
        seq.cache.trim(to: c + L + 1)
        let drafted = depth - 1   // K − 1, or fewer when an adaptive period ended early
        if L < drafted {
            seq.counters.rollbacks += 1
            seq.counters.rolledBackTokens += drafted - L
        }
        let last = L == 0 ? 0 : path[L - 1]
        return argmax(UnsafeBufferPointer(rebasing: dense[(last * vocab)..<((last + 1) * vocab)]))
    }

    // MARK: advance

    /// Commits the accepted drafts and the correction; the correction becomes the next root.
    private func advance(path: [Int], accepted L: Int, correction: Int32, _ seq: DecodeSequence) {
        seq.counters.periods += 1
        seq.counters.advancedTokens += L + 1
        lastAdvance = L + 1
        for node in path.prefix(L) where !seq.committed.isFinished { seq.emit(nodes[node].token) }
        if !seq.committed.isFinished { seq.emit(correction) }
        root = correction
        c += L + 1
        seq.afterPeriod?(c)
        startPeriod()
    }

    /// The sequence's final period is excluded from AAL (§5.1); its advance is kept apart.
    func excludeFinalPeriod(_ seq: DecodeSequence) {
        guard seq.counters.periods > 0 else { return }
        seq.counters.periods -= 1
        seq.counters.advancedTokens -= lastAdvance
        seq.counters.finalPeriodAdvance = lastAdvance
    }
}
