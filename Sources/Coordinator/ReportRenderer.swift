import Foundation

/// Report formats: Markdown (the paper's table plus what it lacks), CSV, JSON, one self-contained HTML
/// page with SVG figures, and lm-evaluation-harness's results and samples files (a directory).
enum ReportFormat: String, CaseIterable, Sendable {
    case md, csv, json, html
    case lmEval = "lm-eval"
    /// The HTML report's figures, one standalone .svg file each.
    case svg

    /// Written into a directory (`--out DIR`) rather than one text.
    var isDirectory: Bool { self == .lmEval || self == .svg }
}

enum ReportRenderer {
    static func render(_ r: RunReport, _ format: ReportFormat, config: RunConfig) -> String {
        switch format {
        case .json:
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            return String(decoding: (try? enc.encode(r)) ?? Data(), as: UTF8.self)
        case .csv:
            var out = "task,method,kind,n,results,correct,failed,accuracy,ci_low,ci_high,accuracy_completed,answered,answered_ci_low,answered_ci_high,density,param_density,model_density,period,aal,effective_density,generated_tokens,timed_results,timed_s,tokens_per_s,time_ratio_to_full,agreement_with_full,agreement_n,identical_to_full,identical_n\n"
            for t in r.tasks {
                for m in t.methods {
                    let cols: [String] = [
                        t.task, m.method, m.kind, "\(m.n)", "\(m.results)", "\(m.correct)", "\(m.failed)", f(m.accuracy, 4),
                        f(m.accuracyLow, 4), f(m.accuracyHigh, 4), f(m.accuracyCompleted, 4),
                        "\(m.answered)", f(m.answeredLow, 4), f(m.answeredHigh, 4), o(m.density, 2), o(m.paramDensity, 2), o(m.modelDensity, 3),
                        m.period.map(String.init) ?? "", o(m.aal, 3), o(m.effectiveDensity, 3), "\(m.generatedTokens)",
                        "\(m.timedResults)", f(m.timedSeconds, 3), o(m.tokensPerSecond, 1), o(m.timeRatioToFull, 3),
                        o(m.agreementWithFull, 4), "\(m.agreementN)", o(m.identicalToFull, 4), "\(m.identicalN)"]
                    out += cols.map(csvField).joined(separator: ",") + "\n"
                }
            }
            return out
        case .html:
            return HTMLReport.render(r, config: config)
        case .lmEval, .svg:
            preconditionFailure("\(format.rawValue) output is a directory: ReportOutput.writeDirectory")
        case .md:
            var out = "# Run \(r.runId) — \(r.status)\(r.note.map { " (\($0))" } ?? "")\n\n"
            for fact in facts(r) { out += (fact.warning ? "**\(fact.text)**" : fact.text) + "\n" }
            for t in r.tasks {
                out += "\n## \(t.task) (n = \(t.n))\n\n"
                if let summary = summaryTable(t, config: config) { out += markdown(summary) + "\n" }
                out += markdown(methodTable(t))
                out += "\n" + agreementRule + "\n"
                if t.methods.contains(where: { $0.failed > 0 }) { out += "\n" + strictNote + "\n" }
            }
            out += "\n" + timingNote(r) + "\n"
            return out
        }
    }

    /// The table note naming how agreement and identity with `full` are counted.
    static let agreementRule = "Answered: the task's extractor found an answer in the output. Agreement with full: equal answers among the examples where both this method and full answered (n shown; an example unanswered on either side is left out). Identical to full: the share of examples whose output text equals full's."

    /// The run's facts above the tables: model, numerics, devices, throughput, prefix cache, how code
    /// ran; warnings (no isolation, mixed devices, non-determinism) flagged.
    static func facts(_ r: RunReport) -> [(text: String, warning: Bool)] {
        var out: [(String, Bool)] = []
        out.append(("Model \(r.model), engine \(r.engine), \(r.numerics) numerics, run seed \(r.runSeed). Devices: \(r.devices.joined(separator: ", ")).", false))
        if let t = r.throughput {
            out.append((String(format: "Throughput: %d results in %.0f s = %.2f results/s; %.1f generated tokens/s per worker thread (%d workers, %d threads).",
                               t.results, t.seconds, t.resultsPerSecond, t.tokensPerSecondPerThread, t.workers, t.workerThreads), false))
        }
        if let p = r.prefixReuse {
            out.append((String(format: "Prefix cache: %d of %d results reused a cached prefix; %d of %d prompt tokens (%.1f %%) came from it.",
                               p.hits, p.results, p.reusedTokens, p.promptTokens, 100 * Double(p.reusedTokens) / Double(max(1, p.promptTokens))), false))
        }
        if let c = r.codeExecution {
            out.append(c.contains("none") ? ("Generated code ran without isolation (--unsafe-code-execution): \(c).", true)
                : ("Generated code ran in \(c) (no network, read-only system, private work directory).", false))
        }
        if r.devices.count > 1 { out.append(("Mixed-device run: numerics may differ between devices.", true)) }
        if r.duplicateConflicts > 0 { out.append(("Non-determinism observed: \(r.duplicateConflicts) examples had conflicting duplicate results (first kept).", true)) }
        return out
    }

    static func timingNote(_ r: RunReport) -> String {
        let timed = r.tasks.flatMap(\.methods).map(\.timedResults)
        return "Tokens/s and time ratios are wall-clock latency of the examples decoded alone (the timing sample: \(timed.min() ?? 0)–\(timed.max() ?? 0) per task and method; a batched example's wall-clock is not its latency); throughput counts the whole run. Everything else is recomputed from the stored rows."
    }

    static let strictNote = "Accuracy counts failed examples as wrong (strict); completed-only accuracy (correct ÷ results) is in the CSV and JSON."

    /// A table as header and rows of cell text, rendered as Markdown or HTML.
    struct Table {
        var header: [String]
        var rows: [[String]]
    }

    /// The paper's table, one row per sparse method: full, sparse and the matching Sirius (same
    /// sparsity and density) side by side — accuracy and answered — with Sirius's AAL and effective
    /// density. Nil when the task has no sparse method.
    static func summaryTable(_ t: TaskReport, config: RunConfig) -> Table? {
        let full = t.methods.first { $0.kind == "full" }
        let sparse = t.methods.filter { $0.kind == "sparse" }
        guard !sparse.isEmpty else { return nil }
        var table = Table(header: ["Sparse method", "Density (param.)", "Full", "Sparse", "Sirius", "Answered: full / sparse / Sirius", "AAL", "Eff. density"], rows: [])
        for s in sparse {
            let corrections: [MethodMetrics?] = siriusMatching(s, in: t, config: config)?.map { $0 } ?? [nil]
            for sir in corrections {
                let period = sir?.period.map { "/\($0)" } ?? ""
                let answered = [full, s, sir].map { $0.map { "\($0.answered)" } ?? "–" }.joined(separator: " / ")
                table.rows.append(["\(s.method)\(sir.map { " → \($0.method)" } ?? "")", "\(o(s.density, 2)) (\(o(s.paramDensity, 2)))", full.map { pct($0.accuracy) } ?? "–",
                                   pct(s.accuracy), sir.map { pct($0.accuracy) } ?? "–", answered,
                                   sir.flatMap { $0.aal }.map { f($0, 2) + period } ?? "–", o(sir?.effectiveDensity, 3)])
            }
        }
        return table
    }

    /// Every method of a task: accuracy and answered with their intervals, agreement and identity with
    /// full, results, failures, AAL, effective density, speed of the timing sample.
    static func methodTable(_ t: TaskReport) -> Table {
        Table(header: ["Method", "Accuracy [95 % CI]", "Answered [95 % CI]", "Agreement with full", "Identical to full", "Results", "Failed",
                       "AAL", "Eff. density", "Tokens/s", "Time ratio to full"],
              rows: t.methods.map { m in
                  [m.method, "\(pct(m.accuracy)) [\(pct(m.accuracyLow)), \(pct(m.accuracyHigh))]",
                   "\(m.answered)/\(m.n) [\(pct(m.answeredLow)), \(pct(m.answeredHigh))]",
                   m.agreementWithFull.map { "\(pct($0)) (n = \(m.agreementN))" } ?? "–", m.identicalToFull.map(pct) ?? "–",
                   "\(m.results)/\(m.n)", "\(m.failed)", o(m.aal, 2), o(m.effectiveDensity, 3), o(m.tokensPerSecond, 1), o(m.timeRatioToFull, 3)]
              })
    }

    static func markdown(_ t: Table) -> String {
        var out = "| " + t.header.joined(separator: " | ") + " |\n|" + String(repeating: "---|", count: t.header.count) + "\n"
        for r in t.rows { out += "| " + r.joined(separator: " | ") + " |\n" }
        return out
    }

    /// The Sirius methods that correct `sparse` (same sparsity and density), nil when none.
    static func siriusMatching(_ sparse: MethodMetrics, in t: TaskReport, config: RunConfig) -> [MethodMetrics]? {
        let spec = config.methods.first { $0.name == sparse.method }
        let found = t.methods.filter { m in
            guard m.kind == "sirius", let ms = config.methods.first(where: { $0.name == m.method }) else { return false }
            return ms.sparsity == spec?.sparsity && ms.density == spec?.density
        }
        return found.isEmpty ? nil : found
    }

    static func f(_ v: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", v) }
    static func o(_ v: Double?, _ digits: Int) -> String { v.map { f($0, digits) } ?? "–" }
    static func pct(_ v: Double) -> String { String(format: "%.1f%%", v * 100) }
    static func csvField(_ s: String) -> String {
        let s = s == "–" ? "" : s
        return s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }
}

/// Writing reports to files.
enum ReportOutput {
    /// Writes `text` to `path`, creating its directory; the error names the path.
    static func write(_ text: String, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url, options: .atomic)
        } catch {
            throw CoordinatorError("cannot write the report to \(path): \(error.localizedDescription)")
        }
    }

    /// The formats written as several files into a directory (lm-eval); returns the files.
    static func writeDirectory(_ format: ReportFormat, store: Store, runId: String, directory: String) throws -> [URL] {
        let dir = URL(fileURLWithPath: directory)
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw CoordinatorError("cannot create \(directory): \(error.localizedDescription)")
        }
        switch format {
        case .lmEval: return try LMEvalExport.write(store: store, runId: runId, directory: dir)
        case .svg:
            guard let run = try store.run(runId) else { throw CoordinatorError("no run \(runId) in \(store.path)") }
            let report = try Metrics.compute(store: store, runId: runId)
            var files: [URL] = []
            for t in report.tasks {
                for f in ReportFigures.figures(for: t, config: run.config) {
                    let url = dir.appendingPathComponent("\(f.id).svg")
                    try write(f.render(standalone: true), to: url.path)
                    files.append(url)
                }
            }
            return files
        default: throw CoordinatorError("--format \(format.rawValue) prints one text; use --out FILE")
        }
    }
}
