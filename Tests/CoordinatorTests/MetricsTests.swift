import Foundation
import Testing
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
        #expect(md.contains("| Sparse method | Full | Sparse | Density | Sirius | AAL | Eff. density |"))
        let csv = ReportRenderer.render(report, .csv, config: run.config)
        #expect(csv.split(separator: "\n").count == 1 + run.config.methods.count)
        let json = ReportRenderer.render(report, .json, config: run.config)
        #expect(json.contains("\"effectiveDensity\""))
    }

    @Test func methodSyntax() throws {
        let m = try RunConfig.parseMethod("sirius/cats@0.6", period: 16, threshold: 0.1, treeWidth: 1, acceptance: "threshold")
        #expect(m.kind == .sirius && m.sparsity == "cats" && m.density == 0.6 && m.period == 16)
        #expect(throws: CoordinatorError.self) { try RunConfig.parseMethod("griffin@2", period: 16, threshold: 0.1, treeWidth: 1, acceptance: "x") }
    }

    @Test func configHashIgnoresTimingKnobs() {
        var a = RunConfig(), b = RunConfig()
        b.leaseTtlMs = 1
        #expect(a.configHash == b.configHash)
        a.runSeed = 99
        #expect(a.configHash != b.configHash)
    }
}
