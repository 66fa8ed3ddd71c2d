/// Every task, in the order `task list` shows them. A new task is one new file plus its type here.
public enum TaskRegistry {
    public static let all: [any BenchmarkTask.Type] = [
        GSM8K.self,
        GSM8KCoT.self,
        CommonsenseQA.self,
        StrategyQA.self,
        DateUnderstanding.self,
        SportsUnderstanding.self,
        HumanEval.self,
    ]

    public static var names: [String] { all.map { $0.name } }

    /// The task type with this name.
    public static func type(named name: String) throws -> any BenchmarkTask.Type {
        guard let t = all.first(where: { $0.name == name }) else { throw TaskError.unknownTask(name) }
        return t
    }

    /// Loads the named task from the configuration's data directory.
    public static func load(_ name: String, _ configuration: TaskConfiguration = TaskConfiguration()) throws -> any BenchmarkTask {
        try type(named: name).load(configuration)
    }
}
