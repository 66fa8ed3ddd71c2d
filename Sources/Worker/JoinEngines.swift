import Foundation
import SiriusProtocol

/// Engines `sirius-worker join --engine NAME` can run. **The real engine plugs in here**: add a
/// case returning a factory whose `EvaluationEngine` wraps `SiriusEngine` (see
/// `Sources/Protocol/Worker/EvaluationEngine.swift` for what it receives and must return).
func joinEngineFactory(name: String, threads: Int?, fakeLatencyMs: Int?) throws -> EngineFactory {
    switch name {
    case "fake":
        var config = FakeEngineConfig.fromEnvironment()
        if let fakeLatencyMs { config.latencyMs = fakeLatencyMs }
        let c = config
        return { FakeEngine(config: c) }
    default:
        throw JoinError("engine \(name.debugDescription) is not available in this build yet; use --engine fake (the Sirius engine adapter is not wired in)")
    }
}

struct JoinError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
