import Foundation

/// Per-layer CATS thresholds for one target density, as saved by `sirius-worker calibrate`. It travels
/// inside a method spec (so a run's workers need no file of their own).
public struct CATSCalibration: Codable, Sendable, Hashable {
    public var density: Double
    public var thresholds: [Float]
    /// Model file the thresholds were measured on, and the number of activation rows per layer used.
    public var model: String
    public var samples: Int

    public init(density: Double, thresholds: [Float], model: String, samples: Int) {
        self.density = density; self.thresholds = thresholds; self.model = model; self.samples = samples
    }

    public static func load(path: String) throws -> CATSCalibration {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw MethodError("\(path): cannot read the calibration file. Fix: create it with `sirius-worker calibrate --density D --out \(path)`")
        }
        do { return try JSONDecoder().decode(CATSCalibration.self, from: d) } catch {
            throw MethodError("\(path): not a calibration file (\(error)). Fix: recreate it with `sirius-worker calibrate`")
        }
    }

    public func save(path: String) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        try e.encode(self).write(to: URL(fileURLWithPath: path))
    }
}
