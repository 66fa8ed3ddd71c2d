/// Benchmark tasks: prompts, stop strings, answer extraction and scoring (no engine, no network).
public enum SiriusTasks {}
