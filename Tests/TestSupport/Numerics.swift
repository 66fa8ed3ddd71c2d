#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CKernels
import SiriusEngine

/// Runs test bodies under a kernel switch (`ck_force_scalar`, `ck_limit_avx512`). The switches are
/// per thread in the kernels themselves (a switch on one test's thread never reaches another's);
/// this lock adds that no two switching bodies overlap and that `stable` bodies never see a switch
/// begin or end on their own thread.
public final class KernelSelection: @unchecked Sendable {
    public static let shared = KernelSelection()
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    private init() {
        lock = .allocate(capacity: 1)
        pthread_rwlock_init(lock, nil)
    }

    /// Runs `body` while nobody changes the kernel selection.
    public func stable<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    /// Runs `body` with the portable scalar kernels forced on (or off), restoring the default after.
    public func with<T>(scalar: Bool, _ body: () throws -> T) rethrows -> T {
        pthread_rwlock_wrlock(lock)
        defer {
            ck_force_scalar(0)
            pthread_rwlock_unlock(lock)
        }
        ck_force_scalar(scalar ? 1 : 0)
        return try body()
    }
}

/// Comparison helpers for logits.
public enum Compare {
    public static func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "\(a.count) vs \(b.count) values")
        var m: Float = 0
        for i in a.indices {
            let d = abs(a[i] - b[i])
            if d.isNaN { return .infinity }
            m = max(m, d)
        }
        return m
    }
    public static func maxAbs(_ a: [Float]) -> Float { a.reduce(0) { max($0, abs($1)) } }

    /// Largest difference relative to the larger of 1 and the reference's largest magnitude.
    public static func relDiff(_ a: [Float], _ ref: [Float]) -> Float {
        maxAbsDiff(a, ref) / max(1, maxAbs(ref))
    }

    public static func argmax(_ a: [Float]) -> Int { a.indices.max { a[$0] < a[$1] || (a[$0] == a[$1] && $0 > $1) }! }

    /// Bitwise equality (NaN equals NaN of the same bits).
    public static func bitsEqual(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
    }
}

extension Transformer {
    /// Logits as arrays: every token's when `all`, otherwise the last token's only. `prompt`: a prompt
    /// chunk (products may use sgemm).
    public func logits(_ tokens: [Int32], start: Int, all: Bool = false, prompt: Bool = false, mlp: MLPRoute = .dense) -> [[Float]] {
        let buf = forward(tokens: tokens, start: start, allLogits: all, mlp: mlp, promptChunk: prompt)
        let v = config.vocabSize
        return (0..<(buf.count / v)).map { Array(buf[($0 * v)..<(($0 + 1) * v)]) }
    }
}

extension Transformer {
    /// The CPU backend's knobs (tests tune the sgemm threshold).
    public var cpu: CPUBackend { backend as! CPUBackend }
}
