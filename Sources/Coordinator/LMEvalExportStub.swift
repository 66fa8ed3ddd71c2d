import Foundation
// Temporary: replaced by LMEvalExport.swift (helper branch).
enum LMEvalExport {
    static func write(store: Store, runId: String, directory: URL, now: Date = Date()) throws -> [URL] { throw CoordinatorError("lm-eval export not built") }
}
