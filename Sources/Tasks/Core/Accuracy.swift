import Foundation

/// An accuracy with its 95 % Wilson score interval, from exact counts.
public struct Accuracy: Sendable, Hashable, Codable, CustomStringConvertible {
    public var correct: Int
    public var total: Int

    public init(correct: Int, total: Int) {
        precondition(total >= 0 && correct >= 0 && correct <= total)
        self.correct = correct
        self.total = total
    }

    /// Counts the verdicts.
    public init<S: Sequence>(_ verdicts: S) where S.Element == Bool {
        var c = 0, n = 0
        for v in verdicts {
            n += 1
            if v { c += 1 }
        }
        self.init(correct: c, total: n)
    }

    /// `correct / total`; 0 for no examples.
    public var value: Double { total == 0 ? 0 : Double(correct) / Double(total) }

    /// The Wilson score interval at confidence `z` (default 1.959964 = 95 %); (0, 1) for no examples.
    public func wilsonInterval(z: Double = 1.959_963_984_540_054) -> (lower: Double, upper: Double) {
        guard total > 0 else { return (0, 1) }
        let n = Double(total)
        let p = value
        let z2 = z * z
        let denominator = 1 + z2 / n
        let center = (p + z2 / (2 * n)) / denominator
        let half = z * (p * (1 - p) / n + z2 / (4 * n * n)).squareRoot() / denominator
        return (max(0, center - half), min(1, center + half))
    }

    /// `45.0 % [40.2, 49.9] (90/200)`
    public var description: String {
        let (lo, hi) = wilsonInterval()
        return String(format: "%.1f %% [%.1f, %.1f] (%d/%d)", value * 100, lo * 100, hi * 100, correct, total)
    }
}
