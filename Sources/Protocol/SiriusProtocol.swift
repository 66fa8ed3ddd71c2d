/// Messages, framing and transports between `sirius-coord` and `sirius-worker`
/// (distributed-design.md §4.1–4.2), plus the worker-side session (`WorkerAgent`) and the
/// engine seam (`EvaluationEngine`) that it drives.
public enum SiriusProtocol {
    /// The version this build speaks. A peer whose major differs is refused (T10); a newer minor
    /// is accepted and its extra fields are ignored.
    /// 2.0: one method vocabulary (typed method spec, `paramDensity`, counters with the final period's
    /// advance), worker numerics and batch size in HELLO, timing samples and prefix reuse in results.
    /// 2.1: worker threads and spooled (decoded, unacknowledged) results in HELLO.
    public static let version = ProtocolVersion(major: 2, minor: 1)
    /// Majors this build accepts from a peer.
    public static let acceptedMajors: ClosedRange<UInt16> = 2...2
    /// First frame of every message.
    public static let magic = "SIRIUS"
    /// Largest message either side accepts (also set as `ZMQ_MAXMSGSIZE`).
    public static let maxMessageBytes = 16 << 20

    /// Human-readable description of the accepted range, used in `REJECT version`.
    public static var acceptedDescription: String {
        acceptedMajors.count == 1 ? "\(acceptedMajors.lowerBound).x" :
            "\(acceptedMajors.lowerBound).x–\(acceptedMajors.upperBound).x"
    }
}

public struct ProtocolVersion: Codable, Sendable, Equatable, CustomStringConvertible {
    public var major: UInt16
    public var minor: UInt16
    public init(major: UInt16, minor: UInt16) { self.major = major; self.minor = minor }
    public var description: String { "\(major).\(minor)" }
}

/// Defaults of a worker that the coordinator passes on to the workers it spawns.
public enum WorkerDefaults {
    /// Examples a sirius worker decodes at once (from the batch-size curve in the README).
    public static let batchSize = 16
    /// Memory of a worker's prefix cache.
    public static let prefixCacheMiB = 512
}
