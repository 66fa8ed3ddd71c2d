import Foundation
import GRDB
import Testing
import SiriusMethod
@testable import SiriusProtocol
@testable import sirius_coord

/// The report's computations on hand-made rows, sweeps, and the HTML page with its figures.
@Suite struct ReportTests {
    /// Writes one result row with the given answer, correctness and text.
    static func insert(_ run: TestRun, example: String, method: String, answer: String?, correct: Bool, text: String) throws {
        try run.store.pool.write { db in
            try db.execute(sql: """
                INSERT INTO results (run_id, task, example_id, method, lease_id, worker_id, attempt, engine, device, output_text,
                  extracted_answer, correct, stop_reason, prompt_tokens, gen_tokens, periods, advanced_tokens, rollbacks,
                  rolled_back_tokens, sparse_steps, dense_passes, tokens_verified, prefill_s, sparse_s, verify_s, total_s,
                  result_hash, committed_at)
                VALUES (?, ?, ?, ?, 1, 'w', 1, 'fake', 'cpu', ?, ?, ?, 'eos', 10, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.1, 'h', 0)
                """, arguments: [run.runId, run.config.tasks[0], example, method, text, answer, correct])
        }
    }

    /// Answered counts extracted answers; agreement with full counts only examples where both answered
    /// (two unanswered examples do not agree); identical compares output texts; the intervals are
    /// Wilson's over n.
    @Test func answeredAgreementAndIdentityOnHandMadeRows() throws {
        var config = TestRun.defaultConfig(examples: 4, shardSize: 4)
        config.methods = [.full, try MethodSpec.parse("griffin@0.5")]
        let run = try TestRun(config: config)
        let ids = try run.store.pool.read { try String.fetchAll($0, sql: "SELECT example_id FROM examples ORDER BY example_id") }
        #expect(ids.count == 4)
        let full: [(String?, Bool)] = [("A", true), ("B", false), (nil, false), ("C", true)]
        let sparse: [(String?, Bool)] = [("A", true), (nil, false), (nil, false), ("D", false)]
        for (i, id) in ids.enumerated() {
            try Self.insert(run, example: id, method: "full", answer: full[i].0, correct: full[i].1, text: "full \(i)")
            try Self.insert(run, example: id, method: "griffin@0.5", answer: sparse[i].0, correct: sparse[i].1, text: i == 0 ? "full 0" : "sparse \(i)")
        }
        let report = try Metrics.compute(store: run.store, runId: run.runId)
        let f = try #require(report.tasks[0].methods.first { $0.method == "full" })
        let g = try #require(report.tasks[0].methods.first { $0.method == "griffin@0.5" })
        #expect(f.answered == 3 && g.answered == 2)
        let ci = wilsonInterval(2, 4)
        #expect(g.answeredLow == ci.low && g.answeredHigh == ci.high)
        #expect(g.agreementN == 2, "examples 0 and 3: both answered; 1 and 2 are left out")
        #expect(g.agreementWithFull == 0.5)
        #expect(g.identicalN == 4 && g.identicalToFull == 0.25)
        #expect(f.agreementWithFull == nil && f.identicalToFull == nil)
        #expect(g.accuracy == 0.25 && f.accuracy == 0.5)
        let md = ReportRenderer.render(report, .md, config: run.config)
        #expect(md.contains("| griffin@0.5 | 25.0% [4.6%, 69.9%] | 2/4 [15.0%, 85.0%] | 50.0% (n = 2) | 25.0% |"), "\(md)")
        #expect(md.contains(ReportRenderer.agreementRule))
        let csv = ReportRenderer.render(report, .csv, config: run.config)
        #expect(csv.contains(",2,0.1500,0.8500,"))
        let rows = report.deterministicRows.filter { $0.method == "griffin@0.5" }
        #expect(rows.contains { $0.metric == "answered" && $0.value == 2 && $0.n == 4 })
        #expect(rows.contains { $0.metric == "identical_to_full" && $0.value == 0.25 && $0.n == 4 })
    }

    @Test func methodSyntaxTakesSiriusOptions() throws {
        let m = try MethodSpec.parse("sirius/griffin@0.4,period=8,threshold=0.05,width=2")
        #expect(m.kind == .sirius && m.density == 0.4 && m.period == 8 && m.threshold == 0.05 && m.treeWidth == 2)
        #expect(m.name == "sirius/griffin@0.4,period=8,threshold=0.05,width=2")
        #expect(throws: MethodError.self) { try MethodSpec.parse("griffin@0.5,period=8") }
        #expect(throws: MethodError.self) { try MethodSpec.parse("sirius/griffin@0.5,period=7.5") }
        #expect(throws: MethodError.self) { try MethodSpec.parse("sirius/griffin@0.5,speed=2") }
        #expect(throws: MethodError.self) { try MethodSpec.parse("full,period=8") }
    }

    /// The adaptive period is an option a name never hides: written in the syntax, set by a flag (the
    /// base), or swept; a method without it encodes as before (stored specs and result hashes unchanged).
    @Test func adaptivePeriodIsNamedAndOptional() throws {
        let m = try MethodSpec.parse("sirius/griffin@0.5,adaptive=0.6")
        #expect(m.adaptivePeriod == 0.6 && m.name == "sirius/griffin@0.5,adaptive=0.6")
        let byFlag = try MethodSpec.parse("sirius/cats@0.5", base: MethodSpec(kind: .sirius, adaptivePeriod: 0.3))
        #expect(byFlag.adaptivePeriod == 0.3 && byFlag.name == "sirius/cats@0.5,adaptive=0.3")
        #expect(try MethodSpec.parse("cats@0.5", base: MethodSpec(kind: .sirius, adaptivePeriod: 0.3)).name == "cats@0.5")
        let json = { (s: MethodSpec) in String(decoding: try JSONEncoder().encode(s), as: UTF8.self) }
        #expect(try !json(try MethodSpec.parse("sirius/griffin@0.5")).contains("adaptive"))
        #expect(try JSONDecoder().decode(MethodSpec.self, from: Data(try json(m).utf8)) == m)
        let swept = try MethodSweep.parse("adaptive=0.2,0.6").expand([.full, try MethodSpec.parse("sirius/griffin@0.5")])
        #expect(swept.map(\.name) == ["full", "sirius/griffin@0.5,adaptive=0.2", "sirius/griffin@0.5,adaptive=0.6"])
        for s in swept { #expect(try MethodSpec.parse(s.name, base: s) == s) }
        #expect(throws: MethodError.self) { try MethodSpec.parse("sirius/griffin@0.5,adaptive=1.5") }
        #expect(throws: MethodError.self) { try MethodSpec.parse("sirius/griffin@0.5,width=2,adaptive=0.5") }
        #expect(throws: MethodError.self) { try MethodSpec.parse("griffin@0.5,adaptive=0.5") }
    }

    @Test func sweepsExpandTheMethodsTheyApplyTo() throws {
        let methods = [MethodSpec.full, try MethodSpec.parse("griffin@0.5"), try MethodSpec.parse("sirius/griffin@0.5")]
        let d = try MethodSweep.parse("density=0.3, 0.5,0.7")
        #expect(try d.expand(methods).map(\.name) == ["full", "griffin@0.3", "griffin@0.5", "griffin@0.7",
                                                      "sirius/griffin@0.3", "sirius/griffin@0.5", "sirius/griffin@0.7"])
        // Expanding again changes nothing (a stored run's methods are already expanded).
        #expect(try d.expand(try d.expand(methods)).map(\.name) == (try d.expand(methods)).map(\.name))
        let t = try MethodSweep.parse("threshold=0.05,0.1")
        let tx = try t.expand(methods)
        #expect(tx.map(\.name) == ["full", "griffin@0.5", "sirius/griffin@0.5,threshold=0.05", "sirius/griffin@0.5,threshold=0.1"])
        #expect(tx[2].threshold == 0.05)
        // Every expanded name parses back to the same method.
        for m in try d.expand(methods) + tx + (try MethodSweep.parse("period=4,8").expand(methods)) {
            #expect(try MethodSpec.parse(m.name, base: m) == m)
        }
        #expect(throws: MethodError.self) { try MethodSweep.parse("density") }
        #expect(throws: MethodError.self) { try MethodSweep.parse("speed=1,2") }
        #expect(throws: MethodError.self) { try MethodSweep.parse("density=0.3,x") }
        #expect(throws: MethodError.self) { try MethodSweep.parse("density=0.3,0.3") }
        #expect(throws: MethodError.self) { try MethodSweep.parse("density=0.3,1.5").expand(methods) }
    }

    /// A run file can hold a sweep; CATS threshold-mode methods get the calibration of their density,
    /// and a density without one is refused with the command that makes it.
    @Test func runFileSweepAndCalibrationsPerDensity() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sweep-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("run.json")
        try Data(#"{"tasks": ["synthetic:8"], "methods": [{"name": "full", "kind": "full"}, {"name": "griffin@0.5", "kind": "sparse", "sparsity": "griffin", "density": 0.5}], "sweep": {"parameter": "density", "values": [0.4, 0.6]}}"#.utf8).write(to: file)
        let c = try RunConfig.load(path: file.path)
        #expect(c.methods.map(\.name) == ["full", "griffin@0.4", "griffin@0.6"])
        #expect(c.sweep?.values == [0.4, 0.6])

        var cats = RunConfig()
        var spec = try MethodSpec.parse("cats@0.5")
        spec.catsMode = .threshold
        spec.calibration = CATSCalibration(density: 0, thresholds: [], model: "", samples: 0)
        cats.methods = [.full, spec]
        cats.sweep = try MethodSweep.parse("density=0.4,0.6")
        let c4 = CATSCalibration(density: 0.4, thresholds: [0.1, 0.2], model: "m", samples: 10)
        var missing = cats
        #expect(throws: CoordinatorError.self) { try missing.applySweep(calibrations: [c4]) }
        let c6 = CATSCalibration(density: 0.6, thresholds: [0.05, 0.1], model: "m", samples: 10)
        try cats.applySweep(calibrations: [c6, c4])
        #expect(cats.methods.map(\.name) == ["full", "cats@0.4", "cats@0.6"])
        #expect(cats.methods[1].calibration == c4 && cats.methods[2].calibration == c6)
        try cats.validate()
    }

    /// A swept run's HTML page: the figures as inline SVG (accuracy, answered, AAL, effective density
    /// against density; the τ trade-off when τ is swept; speed), the tables, and nothing fetched from
    /// elsewhere.
    @Test func htmlReportOfASweptRunHasTheFiguresAndNoExternalReferences() async throws {
        for sweep in ["density=0.3,0.5,0.7", "threshold=0.05,0.1,0.3"] {
            var config = TestRun.defaultConfig(examples: 12, shardSize: 4)
            config.sweep = try MethodSweep.parse(sweep)
            config.methods = [.full, try MethodSpec.parse("griffin@0.5"), try MethodSpec.parse("sirius/griffin@0.5")]
            try config.applySweep()
            let run = try TestRun(config: config)
            let out = await runCluster(run, ClusterPlan(workers: 2))
            #expect(out.outcome == .completed)
            let html = ReportRenderer.render(try Metrics.compute(store: run.store, runId: run.runId), .html, config: run.config)
            #expect(html.hasPrefix("<!DOCTYPE html>"))
            for id in ["accuracy", "answered", "aal", "effective-density", "speed"] {
                #expect(html.contains("<figure id=\"synthetic-12-\(id)\">"), "\(sweep): figure \(id)")
            }
            #expect(html.contains("<figure id=\"synthetic-12-threshold\">") == sweep.hasPrefix("threshold"))
            #expect(html.components(separatedBy: "<svg ").count - 1 >= 5)
            #expect(html.contains("<polyline"), "the swept points are joined")
            #expect(html.contains("Swept: \(sweep.split(separator: "=")[0])"))
            for external in ["http://", "https://", "src=", "<script", "@import", "url("] {
                #expect(!html.contains(external), "\(sweep): \(external)")
            }
            for m in config.methods { #expect(html.contains("<td>\(SVGChart.escape(m.name))</td>")) }
        }
    }

    /// `report --format svg --out DIR`: one standalone SVG file per figure, and `html --out FILE`.
    @Test func figuresAndPageAreWrittenToFiles() async throws {
        var config = TestRun.defaultConfig(examples: 8, shardSize: 4)
        config.methods = [.full, try MethodSpec.parse("griffin@0.5"), try MethodSpec.parse("sirius/griffin@0.5")]
        let run = try TestRun(config: config)
        #expect(await runCluster(run, ClusterPlan(workers: 1)).outcome == .completed)
        let dir = run.dir.appendingPathComponent("figures")
        let files = try ReportOutput.writeDirectory(.svg, store: run.store, runId: run.runId, directory: dir.path)
        #expect(Set(files.map(\.lastPathComponent)) == Set(["accuracy", "answered", "aal", "effective-density", "speed"].map { "synthetic-8-\($0).svg" }))
        for f in files {
            let text = try String(contentsOf: f, encoding: .utf8)
            #expect(text.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\" "), "\(f.lastPathComponent)")
            #expect(text.hasSuffix("</svg>\n"))
        }
        let page = run.dir.appendingPathComponent("out/report.html").path
        try ReportOutput.write(ReportRenderer.render(try Metrics.compute(store: run.store, runId: run.runId), .html, config: run.config), to: page)
        #expect(try String(contentsOfFile: page, encoding: .utf8).contains("<figure id=\"synthetic-8-accuracy\">"))
    }

    @Test func chartTicksAreRoundAndCoverTheRange() {
        #expect(SVGChart.ticks(0...1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0])
        #expect(SVGChart.ticks(0.26...0.74).first == 0.3)
        #expect(SVGChart.ticks(0...16) == [0, 5, 10, 15])
        let svg = SVGChart(title: "a < b", xLabel: "x", yLabel: "y", series: [.init(name: "s", points: [.init(x: 0.5, y: 0.5, low: 0.4, high: 0.6)])]).svg(standalone: true)
        #expect(svg.contains("a &lt; b") && svg.contains("xmlns=\"http://www.w3.org/2000/svg\""))
    }
}
