import Foundation

/// The seam between a worker and an engine. **The real engine adapter implements this**
/// (in `Sources/Worker`, wrapping `SiriusEngine`); `FakeEngine` is the deterministic stand-in.
///
/// Threading: an engine is created by its `EngineFactory` *on the engine thread* and used only
/// there, so it may hold non-Sendable state (model, KV cache). The worker's I/O thread keeps
/// heartbeating while `prepare` or `run` blocks, however long they take.
///
/// Per example the engine receives an `ExampleRequest`: rendered prompt text, stop strings, max
/// new tokens, the method (`full` / `sparse` / `sirius` with density, period, threshold, tree
/// width, acceptance rule) and a per-example seed. It returns an `ExampleOutcome`: the generated
/// text (trimmed at the first stop string), prompt/generated token counts, the stop reason, the
/// raw Sirius counters (periods and advanced tokens excluding each sequence's final period,
/// rollbacks, rolled-back tokens, sparse steps, dense passes, tokens verified), model density and
/// the paper's density, and wall-clock seconds per phase. Scoring happens on the coordinator.
public protocol EvaluationEngine: AnyObject {
    /// Name reported in HELLO and stored with every result (e.g. `fake`, `sirius`).
    var name: String { get }
    /// Device description stored with every result (e.g. `cpu`, `cuda:0 H200`).
    var device: String { get }
    /// Called before the first example of each lease; loads or re-configures as needed.
    /// The worker reports `loading` while this runs.
    func prepare(model: String, method: MethodSpec) throws
    /// Decodes one example. Throw `EngineFailure` for a per-example failure the coordinator should
    /// count (`oom`, `engine_error`); throwing `fatal_config` makes the worker leave the run.
    func run(_ request: ExampleRequest) throws -> ExampleOutcome
}

/// Creates the engine on the engine thread (model loading happens here or in `prepare`).
public typealias EngineFactory = @Sendable () throws -> any EvaluationEngine

/// A failure the worker reports to the coordinator as `FAIL`.
public struct EngineFailure: Error, Sendable, CustomStringConvertible {
    public var errorClass: FailureClass
    public var message: String
    public init(_ errorClass: FailureClass, _ message: String) { self.errorClass = errorClass; self.message = message }
    public var description: String { "\(errorClass.rawValue): \(message)" }
}

/// Thrown by `FakeEngine` in `.throwCrash` mode: the worker behaves as if killed (no BYE, no more
/// messages), the in-process equivalent of the process dying on a poison example.
public struct SimulatedCrash: Error, Sendable {
    public var exampleId: String
}
