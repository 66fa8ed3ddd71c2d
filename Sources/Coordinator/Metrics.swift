import Foundation
import GRDB
import SiriusProtocol

/// Metrics of one method on one task, always recomputed from `results` rows (§4.4, §4.6):
/// counts are exact integers, ratios are ratios of sums.
struct MethodMetrics: Codable, Sendable, Equatable {
    var task: String
    var method: String
    var kind: String
    /// Examples in the task.
    var n: Int
    var results: Int
    var correct: Int
    /// Examples declared failed (counted wrong under the default `strict` policy).
    var failed: Int
    /// correct / n (failed and missing count as wrong), with a 95 % Wilson interval.
    var accuracy: Double
    var accuracyLow: Double
    var accuracyHigh: Double
    /// correct / results.
    var accuracyCompleted: Double
    /// Examples whose output gave an answer at all (the task's extractor found one): a sparse model's
    /// collapse shows here first. With a 95 % Wilson interval over n.
    var answered: Int
    var answeredLow: Double
    var answeredHigh: Double
    /// The method's density (kept fraction of MLP neurons; nil for full), the paper's parameter-count
    /// density d (§5.2) and our byte-based model density (§11).
    var density: Double?
    var paramDensity: Double?
    var modelDensity: Double?
    var period: Int?
    var threshold: Double?
    /// Σ advanced tokens / Σ periods (final periods excluded by the engine).
    var aal: Double?
    /// ((K − 1)·d + 1) / AAL (§5.3).
    var effectiveDensity: Double?
    var generatedTokens: Int
    var rollbacks: Int
    /// Results decoded alone (timing samples, or batch-1 workers): their seconds and tokens are latency.
    var timedResults: Int
    var timedSeconds: Double
    var timedTokens: Int
    /// Σ generated tokens / Σ seconds over the results decoded alone (non-deterministic, reported apart).
    var tokensPerSecond: Double?
    /// Seconds per token relative to `full` on the same task, over the results decoded alone.
    var timeRatioToFull: Double?
    /// Agreement with `full`: the fraction of the examples where both this method and `full` gave an
    /// answer on which the two answers are equal (`agreementN` such examples). Examples without an
    /// answer on either side are left out: two unanswered examples do not agree.
    var agreementWithFull: Double?
    var agreementN: Int
    /// The fraction of the examples with a result of both this method and `full` (`identicalN`) whose
    /// output text is identical to `full`'s.
    var identicalToFull: Double?
    var identicalN: Int
}

struct TaskReport: Codable, Sendable, Equatable {
    var task: String
    var n: Int
    var methods: [MethodMetrics]
}

/// The run's throughput: results and generated tokens over the span from the first lease to the last
/// commit (a resumed run's span includes the time it was stopped).
struct Throughput: Codable, Sendable, Equatable {
    var results: Int
    var generatedTokens: Int
    var seconds: Double
    var workers: Int
    /// Σ engine threads of the workers that produced results.
    var workerThreads: Int
    var resultsPerSecond: Double { seconds > 0 ? Double(results) / seconds : 0 }
    var tokensPerSecondPerThread: Double { seconds > 0 && workerThreads > 0 ? Double(generatedTokens) / seconds / Double(workerThreads) : 0 }
}

/// How much of the prompts the workers' prefix caches served.
struct PrefixReuse: Codable, Sendable, Equatable {
    /// Results that reused some prefix, of those that report it.
    var hits: Int
    var results: Int
    var reusedTokens: Int
    var promptTokens: Int
}

struct RunReport: Codable, Sendable {
    var runId: String
    var status: String
    var note: String?
    var model: String
    var engine: String
    var numerics: String
    var runSeed: UInt64
    var devices: [String]
    /// How generated code was isolated (nil: no task executes code).
    var codeExecution: String? = nil
    var duplicateConflicts: Int
    var throughput: Throughput?
    var prefixReuse: PrefixReuse?
    var tasks: [TaskReport]

    /// The deterministic metrics persisted in `run_metrics` (timings left out).
    var deterministicRows: [(task: String, method: String, metric: String, value: Double, n: Int)] {
        var rows: [(String, String, String, Double, Int)] = []
        for t in tasks {
            for m in t.methods {
                rows.append((t.task, m.method, "accuracy", m.accuracy, m.n))
                rows.append((t.task, m.method, "accuracy_completed", m.accuracyCompleted, m.results))
                rows.append((t.task, m.method, "correct", Double(m.correct), m.n))
                rows.append((t.task, m.method, "answered", Double(m.answered), m.n))
                rows.append((t.task, m.method, "failed", Double(m.failed), m.n))
                rows.append((t.task, m.method, "generated_tokens", Double(m.generatedTokens), m.results))
                if let a = m.aal { rows.append((t.task, m.method, "aal", a, m.results)) }
                if let e = m.effectiveDensity { rows.append((t.task, m.method, "effective_density", e, m.results)) }
                if let g = m.agreementWithFull { rows.append((t.task, m.method, "agreement_with_full", g, m.agreementN)) }
                if let g = m.identicalToFull { rows.append((t.task, m.method, "identical_to_full", g, m.identicalN)) }
            }
        }
        return rows.map { (task: $0.0, method: $0.1, metric: $0.2, value: $0.3, n: $0.4) }
    }
}

/// 95 % Wilson score interval for k successes in n trials.
func wilsonInterval(_ k: Int, _ n: Int, z: Double = 1.959964) -> (low: Double, high: Double) {
    guard n > 0 else { return (0, 1) }
    let p = Double(k) / Double(n), nn = Double(n), z2 = z * z
    let denom = 1 + z2 / nn
    let center = (p + z2 / (2 * nn)) / denom
    let half = z * ((p * (1 - p) / nn + z2 / (4 * nn * nn)).squareRoot()) / denom
    return (max(0, center - half), min(1, center + half))
}

enum Metrics {
    static func compute(store: Store, runId: String) throws -> RunReport {
        guard let run = try store.run(runId) else { throw CoordinatorError("no run \(runId) in \(store.path)") }
        return try store.pool.read { db in
            let taskRows = try Row.fetchAll(db, sql: "SELECT task, n_examples FROM tasks WHERE run_id = ? ORDER BY rowid", arguments: [runId])
            let agg = try Row.fetchAll(db, sql: """
                SELECT task, method, COUNT(*), COALESCE(SUM(correct), 0), SUM(gen_tokens), SUM(periods), SUM(advanced_tokens),
                       COALESCE(SUM(CASE WHEN COALESCE(decoded_alone, 1) = 1 THEN total_s END), 0), MAX(param_density), MAX(model_density),
                       SUM(rollbacks), SUM(COALESCE(decoded_alone, 1)),
                       COALESCE(SUM(CASE WHEN COALESCE(decoded_alone, 1) = 1 THEN gen_tokens END), 0),
                       SUM(extracted_answer IS NOT NULL), SUM(tokens_verified), SUM(dense_passes)
                FROM results WHERE run_id = ? GROUP BY task, method
                """, arguments: [runId])
            var byKey: [String: Row] = [:]
            for r in agg { byKey["\(r[0] as String)\u{0}\(r[1] as String)"] = r }
            var failedBy: [String: Int] = [:]
            for r in try Row.fetchAll(db, sql: """
                SELECT f.task, f.method, COUNT(DISTINCT f.example_id) FROM example_failures f
                WHERE f.run_id = ? AND f.final = 1 AND NOT EXISTS (
                  SELECT 1 FROM results r WHERE r.run_id = f.run_id AND r.task = f.task AND r.example_id = f.example_id AND r.method = f.method)
                GROUP BY f.task, f.method
                """, arguments: [runId]) { failedBy["\(r[0] as String)\u{0}\(r[1] as String)"] = r[2] }
            // Per (task, method), over the examples that also have a `full` result: both answered, equal
            // answers among those, all pairs, identical output texts.
            var agreeBy: [String: (bothAnswered: Int, agree: Int, pairs: Int, identical: Int)] = [:]
            for r in try Row.fetchAll(db, sql: """
                SELECT r.task, r.method,
                       COALESCE(SUM(r.extracted_answer IS NOT NULL AND f.extracted_answer IS NOT NULL), 0),
                       COALESCE(SUM(r.extracted_answer IS NOT NULL AND r.extracted_answer = f.extracted_answer), 0),
                       COUNT(*), COALESCE(SUM(r.output_text = f.output_text), 0)
                FROM results r JOIN results f ON f.run_id = r.run_id AND f.task = r.task AND f.example_id = r.example_id AND f.method = 'full'
                WHERE r.run_id = ? GROUP BY r.task, r.method
                """, arguments: [runId]) { agreeBy["\(r[0] as String)\u{0}\(r[1] as String)"] = (r[2], r[3], r[4], r[5]) }
            let devices = try String.fetchAll(db, sql: "SELECT DISTINCT device || ' (' || engine || ')' FROM results WHERE run_id = ? ORDER BY 1", arguments: [runId])
            let conflicts = try Int.fetchOne(db, sql: "SELECT COUNT(DISTINCT task || '/' || example_id || '/' || method) FROM result_events WHERE run_id = ? AND kind = 'duplicate_conflict'", arguments: [runId]) ?? 0

            var tasks: [TaskReport] = []
            for t in taskRows {
                let task: String = t[0], n: Int = t[1]
                var ms: [MethodMetrics] = []
                var fullSecPerTok: Double? = nil
                for spec in run.config.methods {
                    let key = "\(task)\u{0}\(spec.name)"
                    let r = byKey[key]
                    let results = r?[2] as Int? ?? 0
                    let correct = r?[3] as Int? ?? 0
                    let gen = r?[4] as Int? ?? 0
                    let periods = r?[5] as Int? ?? 0
                    let advanced = r?[6] as Int? ?? 0
                    let secs = r?[7] as Double? ?? 0
                    let timed = r?[11] as Int? ?? 0
                    let timedGen = r?[12] as Int? ?? 0
                    let d = r?[8] as Double?
                    let md = r?[9] as Double?
                    let ci = wilsonInterval(correct, n)
                    let answered = r?[13] as Int? ?? 0
                    let ai = wilsonInterval(answered, n)
                    let aal = DecodeCounters.aal(advancedTokens: advanced, periods: periods)
                    var ed: Double? = nil
                    if let aal, let d, spec.kind == .sirius {
                        // An adaptive period is priced by the mean period it chose (tokens per verification pass).
                        let verified = r?[14] as Int? ?? 0, passes = r?[15] as Int? ?? 0
                        let k = spec.adaptivePeriod != nil && passes > 0 ? Double(verified) / Double(passes) : Double(spec.period)
                        ed = DecodeCounters.effectiveDensity(period: k, paramDensity: d, aal: aal)
                    }
                    let agree = agreeBy[key]
                    let m = MethodMetrics(
                        task: task, method: spec.name, kind: spec.kind.rawValue, n: n, results: results, correct: correct,
                        failed: failedBy[key] ?? 0, accuracy: n > 0 ? Double(correct) / Double(n) : 0,
                        accuracyLow: ci.low, accuracyHigh: ci.high,
                        accuracyCompleted: results > 0 ? Double(correct) / Double(results) : 0,
                        answered: answered, answeredLow: ai.low, answeredHigh: ai.high,
                        density: spec.kind == .full ? nil : spec.density, paramDensity: d, modelDensity: md,
                        period: spec.kind == .sirius ? spec.period : nil, threshold: spec.kind == .sirius ? spec.threshold : nil,
                        aal: aal, effectiveDensity: ed,
                        generatedTokens: gen, rollbacks: r?[10] as Int? ?? 0, timedResults: timed, timedSeconds: secs, timedTokens: timedGen,
                        tokensPerSecond: secs > 0 ? Double(timedGen) / secs : nil, timeRatioToFull: nil,
                        agreementWithFull: spec.kind == .full ? nil : agree.flatMap { $0.bothAnswered > 0 ? Double($0.agree) / Double($0.bothAnswered) : nil },
                        agreementN: spec.kind == .full ? 0 : agree?.bothAnswered ?? 0,
                        identicalToFull: spec.kind == .full ? nil : agree.flatMap { $0.pairs > 0 ? Double($0.identical) / Double($0.pairs) : nil },
                        identicalN: spec.kind == .full ? 0 : agree?.pairs ?? 0)
                    if spec.kind == .full, timedGen > 0, secs > 0 { fullSecPerTok = secs / Double(timedGen) }
                    ms.append(m)
                }
                if let f = fullSecPerTok {
                    for i in ms.indices where ms[i].timedTokens > 0 && ms[i].timedSeconds > 0 {
                        ms[i].timeRatioToFull = (ms[i].timedSeconds / Double(ms[i].timedTokens)) / f
                    }
                }
                tasks.append(TaskReport(task: task, n: n, methods: ms))
            }
            return RunReport(runId: runId, status: run.status.rawValue, note: run.note, model: run.config.model, engine: run.config.engine,
                             numerics: run.config.numerics, runSeed: run.config.runSeed, devices: devices, codeExecution: run.codeExecution, duplicateConflicts: conflicts,
                             throughput: try throughput(db, runId), prefixReuse: try prefixReuse(db, runId), tasks: tasks)
        }
    }

    static func throughput(_ db: Database, _ runId: String) throws -> Throughput? {
        guard let r = try Row.fetchOne(db, sql: "SELECT COUNT(*), SUM(gen_tokens), MAX(committed_at) FROM results WHERE run_id = ?", arguments: [runId]),
              let n = r[0] as Int?, n > 0, let last = r[2] as Int64?,
              let first = try Int64.fetchOne(db, sql: "SELECT MIN(granted_at) FROM leases WHERE run_id = ?", arguments: [runId]) else { return nil }
        let threads = try Int.fetchAll(db, sql: "SELECT MAX(COALESCE(threads, 1)) FROM results WHERE run_id = ? GROUP BY worker_id", arguments: [runId])
        return Throughput(results: n, generatedTokens: r[1] as Int? ?? 0, seconds: Double(max(0, last - first)) / 1000,
                          workers: threads.count, workerThreads: threads.reduce(0, +))
    }

    static func prefixReuse(_ db: Database, _ runId: String) throws -> PrefixReuse? {
        guard let r = try Row.fetchOne(db, sql: """
            SELECT SUM(reused_prompt_tokens > 0), COUNT(*), SUM(reused_prompt_tokens), SUM(prompt_tokens)
            FROM results WHERE run_id = ? AND reused_prompt_tokens IS NOT NULL
            """, arguments: [runId]), let n = r[1] as Int?, n > 0 else { return nil }
        return PrefixReuse(hits: r[0] as Int? ?? 0, results: n, reusedTokens: r[2] as Int? ?? 0, promptTokens: r[3] as Int? ?? 0)
    }
}
