// SiriusTasks: benchmark tasks — prompts, stop strings, answer extraction and scoring, sandboxed
// code execution (HumanEval). No engine, no network.
//
// Entry points: `TaskRegistry` (tasks by name), `BenchmarkTask` (one benchmark), `TaskExample`,
// `Prompt`, `GenerationRequest`, `ExampleScore`, `Accuracy` (Wilson interval), `PythonSandbox`
// (HumanEval execution), `ExampleSeed` (per-example seeds), `DataDirectory` (where the files are).
//
// There is deliberately no type named `SiriusTasks`, so `SiriusTasks.TaskExample` always names
// this module's type (the coordinator has a `TaskExample` of its own).
