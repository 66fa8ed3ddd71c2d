/// A model or weight file could not be used. Names the file, what is wrong, and what to do about it.
public struct ModelLoadError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var problem: String
    public var fix: String

    public init(file: String, problem: String, fix: String) {
        self.file = file; self.problem = problem; self.fix = fix
    }

    public var description: String { "\(file): \(problem). Fix: \(fix)." }
}
