/// How activations meet quantised weights.
public enum Numerics: String, Sendable, CaseIterable, Codable {
    /// Float activations against dequantised weights (matches the float reference).
    case exact
    /// Activations quantised to 8 bits per block of 32, integer dot products (llama.cpp style).
    case fast
}

/// One unit of attention work: the pass rows `row ..< row + tokens` of one sequence attend over that
/// sequence's cache, causally from `start` (row i sees slots `0 ... start + i`, minus the slots its
/// visibility row hides when `visible` is set: `[tokens][vstride]` bytes).
public struct AttentionJob {
    public var cache: KVCache
    public var row: Int
    public var tokens: Int
    public var start: Int
    public var visible: UnsafePointer<UInt8>?
    public var vstride: Int
}

/// The kernels the forward pass (and the sparse MLPs inside it) runs on. The decoders, the batch
/// scheduler and the workers never call a kernel: they build passes (`PassSegment`) and the
/// `Transformer` runs them through this protocol. `CPUBackend` is today's implementation; a GPU backend
/// implements the same operations over its own memory.
///
/// The contract every implementation keeps: the result for one token never depends on the other tokens
/// of a call (`matmul`, `attend`) — except `matmulPrompt`, which the forward pass uses only for
/// canonical prompt chunks, whose composition never depends on batching or caching.
public protocol ComputeBackend: AnyObject {
    var numerics: Numerics { get }
    var threads: Int { get }
    /// y[t][0..<rows] = W · x[t] for `tokens` rows of x (row stride `w.cols`, output stride `w.rows`); each
    /// token's result is bit-identical to the one-token product.
    func matmul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, tokens: Int)
    /// The same product for a prompt chunk, with the fastest kernel for many tokens (may differ in the
    /// last bits from `matmul`).
    func matmulPrompt(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, tokens: Int)
    /// y[i] = W_{rows[i]} · x for the listed rows (one token).
    func matvecRows(_ w: WeightMatrix, rows: UnsafePointer<Int32>, count: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>)
    /// Chosen (row, token) products of `tokens` rows of x (stride `w.cols`): for each listed row
    /// `rows[i]` and each token t whose bit is set in `masks[i]` (tokens ≤ 64), y[t·w.rows + rows[i]] =
    /// W_{rows[i]} · x[t]; nothing else is written. Each value equals `matvec`'s on that token alone; a
    /// row is read once for all its tokens.
    func matmulMasked(_ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int, rows: UnsafePointer<Int32>,
                      masks: UnsafePointer<UInt64>, count: Int, _ y: UnsafeMutablePointer<Float>)
    /// `accumulateRows` for several tokens, each with its own rows and coefficients, reading a row's
    /// part once for all the tokens that list it; each token's values equal `accumulateRows` on it alone.
    func accumulateRows(_ w: WeightMatrix, tokens: Int, coefficients: UnsafePointer<UnsafePointer<Float>>,
                        rows: UnsafePointer<UnsafePointer<Int32>>, counts: UnsafePointer<Int64>,
                        into y: UnsafePointer<UnsafeMutablePointer<Float>>)
    /// y[0..<w.cols] += Σ_i coefficients[i] · W_{rows[i]} (neuron-major rows; the sparse down projection;
    /// `rows` nil: rows 0 ..< count).
    func accumulateRows(_ w: WeightMatrix, coefficients: UnsafePointer<Float>, rows: UnsafePointer<Int32>?, count: Int,
                        into y: UnsafeMutablePointer<Float>)
    /// g = act(g) ⊙ u (or act(g) when u is nil), `count` elements; an element's value does not depend on
    /// where it sits in the array.
    func activate(_ activation: GatedActivation, _ g: UnsafeMutablePointer<Float>, _ u: UnsafePointer<Float>?, count: Int)
    /// out[r] = weight ⊙ x[r] / rms(x[r]) for `rows` rows of `width`.
    func rmsNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, eps: Float, out: UnsafeMutablePointer<Float>, rows: Int, width: Int)
    /// Attention of every query head for each job's rows of `q` (`[row][qDim]`), written to `out`; the
    /// scores are q·k times `scale`.
    func attend(layer: Int, jobs: [AttentionJob], q: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                heads: Int, kvHeads: Int, headDim: Int, scale: Float)
}
