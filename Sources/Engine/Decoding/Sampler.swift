/// SplitMix64: a small, seedable generator whose sequence is the same on every platform.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// A uniform float in [0, 1).
    public mutating func nextUnit() -> Float { Float(next() >> 40) / Float(1 << 24) }
}

/// Sampling settings. `temperature == 0` is greedy decoding.
public struct SamplingParams: Sendable, Equatable {
    public var temperature: Float = 0
    public var topK: Int = 0
    public var topP: Float = 1
    public var seed: UInt64 = 0
    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature; self.topK = topK; self.topP = topP; self.seed = seed
    }
    public var isGreedy: Bool { temperature <= 0 }
}

/// Index of the largest logit (the first one on ties, as torch.argmax does).
public func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
    var best = 0
    var bestV = -Float.infinity
    for i in 0..<logits.count where logits[i] > bestV {
        bestV = logits[i]; best = i
    }
    return Int32(best)
}

/// Picks the next token from logits: greedy, or temperature / top-k / top-p sampling with a seeded RNG.
/// Buffers are kept between calls, so steady-state sampling allocates nothing.
public struct Sampler {
    public let params: SamplingParams
    private var rng: SeededRandom
    private var order: [Int32] = []
    private var probs: [Float] = []

    public init(params: SamplingParams) {
        self.params = params
        rng = SeededRandom(seed: params.seed)
    }

    public mutating func sample(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
        if params.isGreedy { return argmax(logits) }
        let n = logits.count
        if order.count != n {
            order = (0..<Int32(n)).map { $0 }
            probs = [Float](repeating: 0, count: n)
        }
        let t = params.temperature
        var maxL = -Float.infinity
        for i in 0..<n where logits[i] > maxL { maxL = logits[i] }
        var sum: Float = 0
        for i in 0..<n {
            let p = exp((logits[i] - maxL) / t)
            probs[i] = p
            sum += p
        }
        for i in 0..<n { probs[i] /= sum }
        // Candidates: top-k first (partial order), then the nucleus.
        var count = n
        for i in 0..<n { order[i] = Int32(i) }
        let p = probs
        if params.topK > 0 && params.topK < n {
            count = params.topK
            order.withUnsafeMutableBufferPointer { o in
                // Partial selection: move the k most probable ids to the front.
                for i in 0..<count {
                    var best = i
                    for j in (i + 1)..<n where p[Int(o[j])] > p[Int(o[best])] { best = j }
                    o.swapAt(i, best)
                }
            }
        } else if params.topP < 1 {
            order.sort { p[Int($0)] > p[Int($1)] }
        }
        if params.topP < 1 {
            if params.topK > 0 { order[0..<count].sort { p[Int($0)] > p[Int($1)] } }
            var cum: Float = 0
            var keep = 0
            for i in 0..<count {
                cum += p[Int(order[i])]
                keep = i + 1
                if cum >= params.topP { break }
            }
            count = keep
        }
        var total: Float = 0
        for i in 0..<count { total += p[Int(order[i])] }
        var r = rng.nextUnit() * total
        for i in 0..<count {
            r -= p[Int(order[i])]
            if r < 0 { return order[i] }
        }
        return order[count - 1]
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
