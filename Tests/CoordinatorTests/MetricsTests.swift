import Foundation
import Testing
import SiriusTasks
@testable import SiriusProtocol
@testable import sirius_coord

@Suite struct MetricsTests {
    @Test func wilsonMatchesKnownValues() {
        let (lo, hi) = wilsonInterval(8, 10)
        #expect(abs(lo - 0.4902) < 0.001)
        #expect(abs(hi - 0.9433) < 0.001)
        let empty = wilsonInterval(0, 0)
        #expect(empty.low == 0 && empty.high == 1)
    }

    @Test func aalIsARatioOfSumsAndReportRenders() async throws {
        let run = try TestRun(config: TestRun.defaultConfig(examples: 8, shardSize: 4))
        let out = await runCluster(run, ClusterPlan(workers: 1))
        #expect(out.outcome == .completed)
        let report = try Metrics.compute(store: run.store, runId: run.runId)
        let sirius = try #require(report.tasks[0].methods.first { $0.kind == "sirius" })
        let sums = try await run.store.pool.read { db in
            try [Int](Int.fetchAll(db, sql: "SELECT SUM(advanced_tokens) FROM results WHERE method = ? UNION ALL SELECT SUM(periods) FROM results WHERE method = ?", arguments: [sirius.method, sirius.method]))
        }
        #expect(sirius.aal == Double(sums[0]) / Double(sums[1]))
        #expect(sirius.effectiveDensity != nil)
        #expect(sirius.agreementWithFull != nil)
        let md = ReportRenderer.render(report, .md, config: run.config)
        #expect(md.contains("| Sparse method | Density (param.) | Full | Sparse | Sirius | Answered: full / sparse / Sirius | AAL | Eff. density |"))
        let csv = ReportRenderer.render(report, .csv, config: run.config)
        #expect(csv.split(separator: "\n").count == 1 + run.config.methods.count)
        let json = ReportRenderer.render(report, .json, config: run.config)
        #expect(json.contains("\"effectiveDensity\""))
    }

    /// A run with a code task is served with bubblewrap, or without it only when asked; the run
    /// records which (both, in order, after a resume that changed it) and the report says so. A run
    /// without code tasks records nothing.
    @Test func codeExecutionIsRecordedAndReported() throws {
        let run = try TestRun(config: TestRun.defaultConfig(examples: 4, shardSize: 4))
        var row = try #require(try run.store.run(run.runId))
        _ = try codeExecutionProvider(store: run.store, run: row, unsafe: false)
        #expect(try run.store.run(run.runId)?.codeExecution == nil)
        row.config.tasks = ["humaneval"]
        let isolated = try codeExecutionProvider(store: run.store, run: row, unsafe: false)
        #expect(isolated.sandbox.configuration.isolation == .bubblewrap)
        #expect(try run.store.run(run.runId)?.codeExecution == "bubblewrap")
        _ = try codeExecutionProvider(store: run.store, run: row, unsafe: false)
        #expect(try run.store.run(run.runId)?.codeExecution == "bubblewrap")
        let unsafe = try codeExecutionProvider(store: run.store, run: row, unsafe: true)
        #expect(unsafe.sandbox.configuration.isolation == PythonSandbox.Isolation.none)
        #expect(try run.store.run(run.runId)?.codeExecution == "bubblewrap, then none")
        let md = ReportRenderer.render(try Metrics.compute(store: run.store, runId: run.runId), .md, config: run.config)
        #expect(md.contains("**Generated code ran without isolation (--unsafe-code-execution): bubblewrap, then none.**"), "\(md)")
    }

    @Test func configHashIgnoresTimingKnobs() {
        var a = RunConfig(), b = RunConfig()
        b.leaseTtlMs = 1
        b.batchSize = 16
        b.prefixCache = false
        b.timingSample = 10
        #expect(a.configHash == b.configHash)
        a.runSeed = 99
        #expect(a.configHash != b.configHash)
        // Numerics change results: part of the hash.
        var c = RunConfig()
        c.numerics = "fast"
        #expect(c.configHash != RunConfig().configHash)
    }

    /// Runs written by earlier builds keep their hash: the method JSON is unchanged for the same methods.
    @Test func methodJSONOfEarlierBuildsReadsAndHashesTheSame() throws {
        let old = #"{"acceptance":"threshold","density":0.5,"kind":"sirius","name":"sirius/griffin@0.5","period":16,"sparsity":"griffin","threshold":0.1,"treeWidth":1}"#
        let m = try JSONDecoder().decode(MethodSpec.self, from: Data(old.utf8))
        #expect(m == RunConfig.defaultMethods[2])
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        // (JSONEncoder escapes the slash, as it did when the run was made.)
        let encoded = String(decoding: try enc.encode(m), as: UTF8.self)
        #expect(encoded == old.replacingOccurrences(of: "/", with: "\\/"), "\(encoded)")
        let sparse = #"{"density":0.5,"kind":"sparse","name":"griffin@0.5","sparsity":"griffin"}"#
        #expect(String(decoding: try enc.encode(RunConfig.defaultMethods[1]), as: UTF8.self) == sparse)
        #expect(String(decoding: try enc.encode(MethodSpec.full), as: UTF8.self) == #"{"kind":"full","name":"full"}"#)
    }

    @Test func runFileValidation() throws {
        var c = RunConfig()
        c.numerics = "fastest"
        #expect(throws: CoordinatorError.self) { try c.validate() }
        c = RunConfig()
        c.methods = [.full, .full]
        #expect(throws: CoordinatorError.self) { try c.validate() }
        c = RunConfig()
        c.methods = [MethodSpec(kind: .sirius, sparsity: .cats, catsMode: .threshold)]
        do { try c.validate(); Issue.record("threshold mode without calibration accepted") } catch {
            #expect("\(error)".contains("calibration"))
        }
        try RunConfig().validate()
    }
}
