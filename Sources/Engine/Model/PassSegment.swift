/// Which cache slots a query may attend to, for passes that are not a plain causal chain (the Sirius
/// tree). Slots before `from` are always visible; for `j >= from`, `visible(i, j)` says whether query
/// `i` of this segment may see slot `j` (causality still applies: never a slot after the query's own).
public struct AttentionMask {
    public var from: Int
    public var visible: (Int, Int) -> Bool
    public init(from: Int, visible: @escaping (Int, Int) -> Bool) { self.from = from; self.visible = visible }
}

/// Reads the dense MLP's intermediate rows of a segment's tokens: `gate` is the gate projection before
/// the SiLU, `activation` is silu(gate) ⊙ up (Griffin scores prompts from it; CATS calibration reads the
/// gates). Both are `[tokens][intermediate]`, valid during the call only.
public protocol MLPObserver: AnyObject {
    func observe(layer: Int, gate: UnsafePointer<Float>, tokens: Int)
    func observe(layer: Int, activation: UnsafePointer<Float>, tokens: Int)
}

extension MLPObserver {
    public func observe(layer: Int, gate: UnsafePointer<Float>, tokens: Int) {}
    public func observe(layer: Int, activation: UnsafePointer<Float>, tokens: Int) {}
}

/// The MLP a segment's tokens go through.
public enum MLPRoute {
    /// The model's own MLP.
    case dense
    /// The model's own MLP, its intermediate rows shown to an observer.
    case observed(any MLPObserver)
    /// A sparse MLP (Griffin's kept neurons, CATS's active neurons).
    case sparse(any SparseMLP)
}

/// Which logits a segment wants back.
public enum LogitRows: Sendable {
    case none
    /// The last token's.
    case last
    /// Every token's, `[tokens][vocab]`.
    case all
}

/// One sequence's part of a forward pass: `tokens` at slots `start ..< start + tokens.count` of `cache`
/// (written there, overwriting what was; the cache is then truncated to `start + tokens.count`),
/// rotated by `positions` (default: the slots), attending as `mask` allows (default: causal), through
/// `mlp`. Each token's bits depend only on its own segment, never on the others in the pass.
public struct PassSegment {
    public var cache: KVCache
    public var tokens: [Int32]
    public var start: Int
    public var positions: [Int]?
    public var mask: AttentionMask?
    public var mlp: MLPRoute
    public var logits: LogitRows
    /// A canonical prompt chunk (its products may use the prompt kernels: `ComputeBackend.matmulPrompt`).
    public var isPromptChunk: Bool

    public init(cache: KVCache, tokens: [Int32], start: Int, positions: [Int]? = nil, mask: AttentionMask? = nil,
                mlp: MLPRoute = .dense, logits: LogitRows = .last, isPromptChunk: Bool = false) {
        self.cache = cache; self.tokens = tokens; self.start = start; self.positions = positions; self.mask = mask
        self.mlp = mlp; self.logits = logits; self.isPromptChunk = isPromptChunk
    }
}
