import Foundation
import SiriusEngine
import SiriusProtocol

/// Engines `sirius-worker join --engine NAME` can run. **The real engine plugs in here**: add a
/// case returning a factory whose `EvaluationEngine` wraps `SiriusEngine` (see
/// `Sources/Protocol/Worker/EvaluationEngine.swift` for what it receives and must return).
func joinEngineFactory(name: String, threads: Int?, numerics: Numerics, batchSize: Int, prefixCacheBytes: Int?,
                       fakeLatencyMs: Int?, log: @escaping @Sendable (String) -> Void) throws -> EngineFactory {
    switch name {
    case "fake":
        var config = FakeEngineConfig.fromEnvironment()
        if let fakeLatencyMs { config.latencyMs = fakeLatencyMs }
        let c = config
        return { FakeEngine(config: c) }
    case "sirius":
        let n = threads ?? 1
        return { SiriusEvaluationEngine(threads: n, numerics: numerics, batchSize: batchSize, prefixCacheBytes: prefixCacheBytes, log: log) }
    default:
        throw JoinError("engine \(name.debugDescription) is not known: use --engine sirius (the real engine) or --engine fake (the deterministic stand-in for tests)")
    }
}

struct JoinError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
