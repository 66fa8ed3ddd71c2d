import CKernels

/// Streaming read bandwidth of this machine, for the memory-bound decode ceiling
/// (weight bytes per token ÷ bytes per second).
public enum MemoryBandwidth {
    /// Best of `repetitions` streaming reads of a `bytes`-sized buffer, in bytes per second.
    public static func measureRead(bytes: Int = 1 << 30, repetitions: Int = 5) -> Double {
        let n = bytes / 4
        let a = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { a.deallocate() }
        a.initialize(repeating: 1, count: n)
        let clock = ContinuousClock()
        var best = Double.infinity
        var sink: Float = 0
        for _ in 0..<repetitions {
            let s = clock.now
            // Dot with a 64 KiB vector repeated: reads the big buffer once, the small one from L1/L2.
            var i = 0
            while i < n {
                let m = min(16384, n - i)
                sink += ck_dot(a + i, a, Int64(m))
                i += m
            }
            best = min(best, (clock.now - s).seconds)
        }
        precondition(sink > 0)
        return Double(bytes) / best
    }
}
