import Foundation

/// FNV-1a 64-bit: a stable, platform-independent hash for seeds and result digests.
/// Not a security primitive (authentication uses CURVE and a token, §4.7).
public struct StableHasher: Sendable {
    private var state: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func combine(_ bytes: some Sequence<UInt8>) {
        for b in bytes {
            state ^= UInt64(b)
            state = state &* 0x0000_0100_0000_01b3
        }
    }

    /// Strings are length-prefixed so that ("ab","c") and ("a","bc") differ.
    public mutating func combine(_ s: String) {
        combine(UInt64(s.utf8.count))
        combine(s.utf8)
    }

    public mutating func combine(_ v: UInt64) {
        withUnsafeBytes(of: v.littleEndian) { combine($0) }
    }

    public mutating func combine(_ v: Int) { combine(UInt64(bitPattern: Int64(v))) }

    public var value: UInt64 {
        // Final avalanche (splitmix64 finaliser) so that low bits are well mixed.
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    public var hex: String { String(format: "%016llx", value) }

    public static func hash(_ parts: String...) -> UInt64 {
        var h = StableHasher()
        for p in parts { h.combine(p) }
        return h.value
    }
}

/// Per-example seed: a pure function of (run seed, task, example id), §4.6 item 2.
public func exampleSeed(runSeed: UInt64, task: String, exampleId: String) -> UInt64 {
    var h = StableHasher()
    h.combine(runSeed)
    h.combine(task)
    h.combine(exampleId)
    return h.value
}
