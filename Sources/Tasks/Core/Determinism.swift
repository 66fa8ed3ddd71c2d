/// FNV-1a, 64-bit: a stable hash (unlike `hashValue`, the same in every process and on every machine).
public struct FNV1a64: Sendable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    public init() {}

    public mutating func combine<S: Sequence>(bytes: S) where S.Element == UInt8 {
        for byte in bytes {
            value ^= UInt64(byte)
            value = value &* 0x0000_0100_0000_01b3
        }
    }

    /// Adds a string's UTF-8 bytes followed by a 0 separator.
    public mutating func combine(_ string: String) {
        combine(bytes: string.utf8)
        combine(bytes: CollectionOfOne(0))
    }

    /// Adds an integer's 8 little-endian bytes.
    public mutating func combine(_ number: UInt64) {
        combine(bytes: (0..<8).map { UInt8(truncatingIfNeeded: number >> (8 * $0)) })
    }

    public static func hash(_ string: String) -> UInt64 {
        var hasher = FNV1a64()
        hasher.combine(bytes: string.utf8)
        return hasher.value
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a small, fast generator with a 64-bit state; the same
/// sequence on every platform.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state = state &+ 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// A uniform integer in `0..<bound` (rejection sampling; no modulo bias). The algorithm is
    /// fixed here so that results never depend on the standard library's implementation.
    public mutating func uniform(below bound: Int) -> Int {
        precondition(bound > 0)
        let b = UInt64(bound)
        let limit = UInt64.max - (UInt64.max % b) // values ≥ limit would bias the result
        while true {
            let x = next()
            if x < limit { return Int(x % b) }
        }
    }

    /// `count` distinct indices from `0..<population`, in the order drawn.
    public mutating func sampleIndices(_ count: Int, from population: Int) -> [Int] {
        precondition(count >= 0 && count <= population)
        var chosen: [Int] = []
        chosen.reserveCapacity(count)
        var taken = Set<Int>()
        while chosen.count < count {
            let candidate = uniform(below: population)
            if taken.insert(candidate).inserted { chosen.append(candidate) }
        }
        return chosen
    }
}

/// Per-example seeds: a pure function of (task, example id, run seed), never of order or worker.
public enum ExampleSeed {
    /// The seed of one example in one run. Use it for few-shot selection and for sampling.
    public static func derive(task: String, exampleID: String, runSeed: UInt64) -> UInt64 {
        var hasher = FNV1a64()
        hasher.combine("sirius-example-seed-v1")
        hasher.combine(task)
        hasher.combine(exampleID)
        hasher.combine(runSeed)
        return hasher.value
    }

    /// A generator seeded for one example.
    public static func generator(task: String, exampleID: String, runSeed: UInt64) -> SplitMix64 {
        SplitMix64(seed: derive(task: task, exampleID: exampleID, runSeed: runSeed))
    }
}
