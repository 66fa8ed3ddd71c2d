/// Benchmark tasks: prompts, stop strings, answer extraction and scoring (no engine, no network).
///
/// Entry points: `TaskRegistry` (tasks by name), `BenchmarkTask` (one benchmark), `TaskExample`,
/// `Prompt`, `ExampleScore`, `Accuracy` (Wilson interval), `PythonSandbox` (HumanEval execution),
/// `ExampleSeed` (per-example seeds).
public enum SiriusTasks {}
