import Foundation

/// The seam between a worker and an engine. **The real engine adapter implements this**
/// (in `Sources/Worker`, wrapping `SiriusEngine`); `FakeEngine` is the deterministic stand-in.
///
/// Threading: an engine is created by its `EngineFactory` *on the engine thread* and used only
/// there, so it may hold non-Sendable state (model, KV caches). The worker's I/O thread keeps
/// heartbeating while `prepare` or `step` blocks, however long they take.
///
/// Per example the engine receives an `ExampleRequest`: rendered prompt text, stop strings, max
/// new tokens, the method (a `MethodSpec`) and a per-example seed. Up to `batchSize` examples are in
/// flight at once (continuous batching): `admit` starts one, each `step` advances all of them and
/// returns those that finished, as `ExampleOutcome`s (the generated text trimmed at the first stop
/// string, prompt/generated token counts, the stop reason, the raw counters, model and parameter
/// density, wall-clock seconds per phase) or failures. An example's outcome must not depend on the
/// others in flight. Scoring happens on the coordinator.
public protocol EvaluationEngine: AnyObject {
    /// Name reported in HELLO and stored with every result (e.g. `fake`, `sirius`).
    var name: String { get }
    /// Device description stored with every result (e.g. `cpu (1 thread, exact)`, `cuda:0 H200`).
    var device: String { get }
    /// Examples decoded at once at most.
    var batchSize: Int { get }
    /// Examples admitted and not yet returned by `step`.
    var inFlight: Int { get }
    /// Called before the first example of a model (with nothing in flight); loads as needed. The
    /// worker reports `loading` while this runs.
    func prepare(model: String) throws
    /// Starts decoding an example; `tag` names it in `step`'s results. Throw `EngineFailure` for an
    /// example that cannot start (`fatal_config` makes the worker leave the run). A timing sample
    /// (`request.timingSample`) is decoded alone: until it finishes, `step` advances it only and the
    /// others in flight wait (examples admitted meanwhile too; the worker never has two samples in flight).
    func admit(_ request: ExampleRequest, tag: Int) throws
    /// Advances every example in flight; returns those that finished. Throwing `SimulatedCrash` (fake
    /// engine) makes the worker die like a killed process.
    func step() throws -> [(tag: Int, result: Result<ExampleOutcome, EngineFailure>)]
    /// Drops an example in flight (its lease was cancelled).
    func cancel(tag: Int)
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
