import CKernels
import Foundation

/// How drafts are accepted against the dense verification (sirius-method.md §11).
public enum AcceptanceRule: String, Sendable, Codable, CaseIterable {
    /// The paper's rule: accept while softmax(z/T)[draft] ≥ τ.
    case threshold
    /// Also accept a draft that is the dense argmax when its probability is below τ.
    case thresholdOrArgmax = "threshold-or-argmax"
    /// Lossless: accept only the dense argmax (output equals full greedy decoding).
    case argmax
}

/// Settings of the Sirius correction loop.
public struct SiriusParams: Sendable, Equatable {
    /// Period K: K−1 sparse draft steps, then one dense pass over K tokens.
    public var period: Int = 16
    public var threshold: Float = 0.1
    public var acceptance: AcceptanceRule = .thresholdOrArgmax
    public var acceptanceTemperature: Float = 0.6
    /// Tree width W: W-way beam drafting, one dense pass over the flattened tree. 1 = no tree.
    public var treeWidth: Int = 1

    public init(period: Int = 16, threshold: Float = 0.1, acceptance: AcceptanceRule = .thresholdOrArgmax,
                acceptanceTemperature: Float = 0.6, treeWidth: Int = 1) {
        self.period = period; self.threshold = threshold; self.acceptance = acceptance
        self.acceptanceTemperature = acceptanceTemperature; self.treeWidth = treeWidth
    }
}

/// Raw counters of one generation (sirius-method.md §5, §11): counts, never averages.
public struct DecodeCounters: Sendable, Equatable, Codable {
    /// Periods and Σ(L+1) over them, excluding the sequence's final period (§5.1).
    public var periods = 0
    public var advancedTokens = 0
    /// The final period's advance (excluded above), kept so nothing is lost.
    public var finalPeriodAdvance = 0
    public var rollbacks = 0
    public var rolledBackTokens = 0
    public var sparseSteps = 0
    public var densePasses = 0
    public var tokensVerified = 0
    public var prefillSeconds = 0.0
    public var sparseSeconds = 0.0
    public var verifySeconds = 0.0
    public init() {}

    /// Average advance length, Σ(L+1)/#periods (nil without a complete period).
    public var aal: Double? { periods > 0 ? Double(advancedTokens) / Double(periods) : nil }

    /// Effective density ((K−1)·d + 1)/AAL (§5.3) for period `k` and sparse density `d`.
    public static func effectiveDensity(period k: Int, density d: Double, aal: Double) -> Double {
        (Double(k - 1) * d + 1) / aal
    }
}

/// The result of a Sirius generation: the text plus its counters.
public struct SiriusResult: Sendable {
    public var generation: GenerationResult
    public var counters: DecodeCounters
}

/// Sparse drafting corrected by the full model (sirius-method.md §3): per period, K−1 sparse steps
/// draft (a W-wide beam when W > 1), one dense pass verifies the whole period and overwrites its K/V,
/// the longest accepted prefix is kept, the cache is rolled back past it, and the dense model's own
/// token is appended (the correction, or a bonus when everything was accepted).
public final class SiriusDecoder {
    public let transformer: Transformer
    public let sparse: SparseMLP
    public let params: SiriusParams
    /// Called after every period's rollback with the number of committed cache positions (the
    /// prompt plus every committed token except the newest, whose K/V comes with the next pass):
    /// the cache then holds only dense K/V (tests check that invariant here).
    public var afterPeriod: ((_ cachedPositions: Int) -> Void)?

    public init(transformer: Transformer, sparse: SparseMLP, params: SiriusParams) {
        precondition(params.period >= 2 && params.treeWidth >= 1)
        self.transformer = transformer; self.sparse = sparse; self.params = params
    }

    /// One node of the draft tree: its token, its parent's index (−1 = the root) and depth.
    struct Node { var token: Int32; var parent: Int; var depth: Int; var score: Float }

    public func generate(promptIDs: [Int32], committed: CommittedText, onText: ((String) -> Void)? = nil) throws -> SiriusResult {
        let t = transformer
        let K = params.period, W = params.treeWidth
        try PlainDecoder.checkFits(promptIDs.count, committed.maxNewTokens, t)
        let vocab = t.config.vocabSize
        var counters = DecodeCounters()
        var timings = GenerationTimings()
        let clock = ContinuousClock()
        let start = clock.now
        t.cache.reset()
        t.mlpOverride = nil
        sparse.beginPrompt()
        var logits = t.forward(tokens: promptIDs, start: 0)
        sparse.freeze()
        counters.prefillSeconds = (clock.now - start).seconds
        timings.prefillSeconds = counters.prefillSeconds
        let sparseHook: (Int, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void = { [unowned sparse] l, x, y, n in
            sparse.run(layer: l, input: x, output: y, tokens: n)
        }
        defer { t.mlpOverride = nil }
        // The newest dense token, at position c (not yet in the cache).
        var root = argmax(UnsafeBufferPointer(logits))
        var c = promptIDs.count
        emit(root, committed, onText)
        var lastAdvance = 0
        let d0 = clock.now
        var nodes: [Node] = []
        nodes.reserveCapacity((K - 1) * W + 1)
        var treeTokens: [Int32] = []
        var positions: [Int] = []
        var one: [Int32] = [0]
        while !committed.isFinished {
            guard c + (K - 1) * W + 1 <= t.cache.capacity else {
                let piece = committed.finish(.context)
                if !piece.isEmpty { onText?(piece) }
                break
            }
            // Draft: node 0 is the root at slot c; depth d's W nodes take slots c+1+(d−1)W ..< c+1+dW.
            let sp0 = clock.now
            t.mlpOverride = sparseHook
            nodes.removeAll(keepingCapacity: true)
            nodes.append(Node(token: root, parent: -1, depth: 0, score: 0))
            var frontier = 0..<1
            for depth in 1..<K {
                // Sparse forward over the frontier (the root, then the previous depth's nodes).
                let slot0 = c + frontier.lowerBound
                treeTokens.removeAll(keepingCapacity: true)
                for i in frontier { treeTokens.append(nodes[i].token) }
                let mask: AttentionMask? = W == 1 ? nil : treeMask(c: c, firstNode: frontier.lowerBound, parents: nodes.map(\.parent))
                if W > 1 {
                    positions.removeAll(keepingCapacity: true)
                    for i in frontier { positions.append(c + nodes[i].depth) }
                }
                if W == 1 { one[0] = nodes[frontier.lowerBound].token }
                logits = t.forward(tokens: W == 1 ? one : treeTokens, start: slot0, allLogits: W > 1,
                                   mask: mask, positions: W > 1 ? positions : nil)
                counters.sparseSteps += 1
                let first = nodes.count
                if W == 1 {
                    nodes.append(Node(token: argmax(UnsafeBufferPointer(logits)), parent: frontier.lowerBound, depth: depth, score: 0))
                } else {
                    expandBeam(logits: logits, frontier: frontier, depth: depth, vocab: vocab, into: &nodes)
                }
                frontier = first..<nodes.count
            }
            counters.sparseSeconds += (clock.now - sp0).seconds
            // Verify: one dense pass over every node (the root and all drafts), overwriting their K/V.
            let v0 = clock.now
            t.mlpOverride = nil
            treeTokens.removeAll(keepingCapacity: true)
            for n in nodes { treeTokens.append(n.token) }
            if W > 1 {
                positions.removeAll(keepingCapacity: true)
                for n in nodes { positions.append(c + n.depth) }
            }
            let dense = t.forward(tokens: treeTokens, start: c, allLogits: true,
                                  mask: W == 1 ? nil : treeMask(c: c, firstNode: 0, parents: nodes.map(\.parent)), positions: W > 1 ? positions : nil)
            counters.densePasses += 1
            counters.tokensVerified += nodes.count
            // Accept: the longest accepted root-to-leaf prefix (ties to the better-ranked leaf).
            var bestLeaf = -1, bestL = -1
            for leaf in frontier {
                var path: [Int] = []
                var i = leaf
                while i > 0 { path.append(i); i = nodes[i].parent }
                path.reverse()
                var L = 0
                for i in path {
                    if accepts(token: nodes[i].token, logits: dense, row: nodes[i].parent, vocab: vocab) { L += 1 } else { break }
                }
                if L > bestL { bestL = L; bestLeaf = leaf }
            }
            var path: [Int] = []
            var i = bestLeaf
            while i > 0 { path.append(i); i = nodes[i].parent }
            path.reverse()
            let L = bestL
            let lastAccepted = L == 0 ? 0 : path[L - 1]
            // Roll back: compact the accepted path's K/V into c+1 ... c+L, drop the rest.
            for (d, node) in path.prefix(L).enumerated() { t.cache.copyPosition(from: c + node, to: c + 1 + d) }
            t.cache.trim(to: c + L + 1)
            let correction = argmax(UnsafeBufferPointer(rebasing: dense[(lastAccepted * vocab)..<((lastAccepted + 1) * vocab)]))
            counters.verifySeconds += (clock.now - v0).seconds
            if L < K - 1 {
                counters.rollbacks += 1
                counters.rolledBackTokens += K - 1 - L
            }
            counters.periods += 1
            counters.advancedTokens += L + 1
            lastAdvance = L + 1
            for node in path.prefix(L) where !committed.isFinished { emit(nodes[node].token, committed, onText) }
            if !committed.isFinished { emit(correction, committed, onText) }
            root = correction
            c += L + 1
            afterPeriod?(c)
        }
        // The final period is excluded from AAL (§5.1).
        if counters.periods > 0 {
            counters.periods -= 1
            counters.advancedTokens -= lastAdvance
            counters.finalPeriodAdvance = lastAdvance
        }
        timings.decodeSeconds = (clock.now - d0).seconds
        timings.decodeTokens = max(0, committed.ids.count - 1)
        let g = GenerationResult(promptIDs: promptIDs, outputIDs: committed.ids, text: committed.text,
                                 stopReason: committed.stopReason ?? .length, timings: timings)
        return SiriusResult(generation: g, counters: counters)
    }

    private func emit(_ id: Int32, _ committed: CommittedText, _ onText: ((String) -> Void)?) {
        let piece = committed.append(id)
        if !piece.isEmpty { onText?(piece) }
    }

    /// Tree attention within a period: a node sees the committed prefix, and itself and its ancestors.
    /// Node `i` sits in slot c + i; query q of the pass is node `firstNode + q`.
    private func treeMask(c: Int, firstNode: Int, parents: [Int]) -> AttentionMask {
        AttentionMask(from: c) { q, j in
            var i = firstNode + q
            let target = j - c
            while i >= target {
                if i == target { return true }
                i = parents[i]
            }
            return false
        }
    }

    /// Whether the draft `token` is accepted given the dense logits of `row` (its parent's position).
    private func accepts(token: Int32, logits: UnsafeMutableBufferPointer<Float>, row: Int, vocab: Int) -> Bool {
        let z = UnsafeBufferPointer(rebasing: logits[(row * vocab)..<((row + 1) * vocab)])
        let isArgmax = argmax(z) == token
        switch params.acceptance {
        case .argmax: return isArgmax
        case .thresholdOrArgmax: if isArgmax { return true }
        case .threshold: break
        }
        return probability(of: token, z) >= params.threshold
    }

    /// softmax(z / T)[token].
    private func probability(of token: Int32, _ z: UnsafeBufferPointer<Float>) -> Float {
        ck_softmax_at(z.baseAddress!, Int64(z.count), 1 / params.acceptanceTemperature, Int64(token))
    }

    /// W-wide beam step: each frontier node proposes its top-W tokens scored by cumulative
    /// log_softmax(z/T); the W best candidates overall become the next depth (best first).
    private func expandBeam(logits: UnsafeMutableBufferPointer<Float>, frontier: Range<Int>, depth: Int, vocab: Int, into nodes: inout [Node]) {
        let W = params.treeWidth
        let invT = 1 / params.acceptanceTemperature
        var cands: [Node] = []
        for (r, parent) in frontier.enumerated() {
            let z = UnsafeBufferPointer(rebasing: logits[(r * vocab)..<((r + 1) * vocab)])
            var m = -Float.infinity
            for v in z where v > m { m = v }
            var sum: Float = 0
            for v in z { sum += expf((v - m) * invT) }
            let logZ = logf(sum)
            // Top-W of this row.
            var top: [(Int32, Float)] = []
            for (j, v) in z.enumerated() where top.count < W || v > top[top.count - 1].1 {
                let e = (Int32(j), v)
                let pos = top.firstIndex { $0.1 < v } ?? top.count
                top.insert(e, at: pos)
                if top.count > W { top.removeLast() }
            }
            for (tok, v) in top {
                cands.append(Node(token: tok, parent: parent, depth: depth, score: nodes[parent].score + (v - m) * invT - logZ))
            }
        }
        cands.sort { $0.score > $1.score }
        nodes.append(contentsOf: cands.prefix(W))
    }
}
