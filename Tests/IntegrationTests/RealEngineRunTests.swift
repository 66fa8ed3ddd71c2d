import Foundation
import GRDB
import SiriusEngine
import Testing
import TestSupport

/// `sirius-coord start --engine sirius` end to end with real processes: two `sirius-worker join`
/// processes run the real engine on a tiny random Llama GGUF that carries its own byte-level
/// tokenizer, on the synthetic task (rendered without any dataset). Loopback only; every process is
/// bounded in time and killed by the test that started it.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct RealEngineRunTests {
    static let methods = ["full", "sirius/griffin@0.5", "sirius/cats@0.5"]
    static let examples = 6
    static let period = 4

    /// A temporary directory with the tiny model (Q8_0 matrices: rows of 64 and 128 are whole blocks).
    final class Scratch: @unchecked Sendable {
        let dir: URL
        var spawned: [Spawned] = []
        private var logs = 0
        init() throws {
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("sirius-real-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        }
        var db: String { dir.appendingPathComponent("runs.sqlite").path }
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

        func writeModel(to path: String) throws {
            let tok = TinyByteTokenizer()
            try TinyLlama.withTokenizer(tok).writeGGUF(to: path, TinyWeightTypes(.q8_0), tokenizer: tok)
        }

        /// Runs `sirius-coord args` to completion (killed after `seconds`); returns status and output.
        func coord(_ args: [String], seconds: Double) async throws -> (status: Int32?, output: String) {
            logs += 1
            let p = try Spawned(try RealEngineRunTests.coordBinary(), args, log: dir.appendingPathComponent("\(logs)-coord.log"))
            spawned.append(p)
            let status = await p.wait(seconds: seconds)
            return (status, p.output)
        }

        func cleanup() {
            for p in spawned { p.stop() }
            try? FileManager.default.removeItem(at: dir)
        }
    }

    static func coordBinary() throws -> URL {
        guard Binaries.available else {
            throw ClusterError("sirius-coord and sirius-worker are not built next to the tests (\(Binaries.dir.path)); run `swift build --build-tests` first")
        }
        return Binaries.coord
    }

    static func startArgs(db: String, runId: String, model: String, methods: [String] = methods,
                          extra: [String] = []) -> [String] {
        ["start", "--db", db, "--run-id", runId, "--workers", "2", "--engine", "sirius", "--model", model,
         "--task", "synthetic:\(examples)", "--limit", "\(examples)", "--max-new-tokens", "24", "--shard-size", "2",
         "--period", "\(period)", "--threads", "1", "--heartbeat-ms", "200", "--quiet", "--format", "csv"]
            + methods.flatMap { ["--method", $0] } + extra
    }

    struct Row {
        var exampleId: String
        var method: String
        var text: String
        var genTokens: Int
        var counters: [Int]
        var engine: String
    }

    static func rows(_ db: String) throws -> [Row] {
        try DatabaseQueue(path: db).read { d in
            try GRDB.Row.fetchAll(d, sql: """
                SELECT example_id, method, output_text, gen_tokens, engine, periods, advanced_tokens, rollbacks,
                       rolled_back_tokens, sparse_steps, dense_passes, tokens_verified, prompt_tokens
                FROM results ORDER BY example_id, method
                """).map { r in
                Row(exampleId: r[0], method: r[1], text: r[2], genTokens: r[3],
                    counters: (5...12).map { r[$0] as Int }, engine: r[4])
            }
        }
    }

    static func prompts(_ db: String) throws -> [(id: String, prompt: String)] {
        try DatabaseQueue(path: db).read { d in
            try GRDB.Row.fetchAll(d, sql: "SELECT example_id, json_extract(request_json, '$.prompt') FROM examples ORDER BY ord").map { ($0[0], $0[1]) }
        }
    }

    /// JSON numbers as JSONSerialization returns them (NSNumber), whatever their spelling.
    static func text(_ db: String, _ sql: String) throws -> String {
        try DatabaseQueue(path: db).read { try String.fetchOne($0, sql: sql) } ?? ""
    }

    static func int(_ v: Any?) -> Int? { (v as? NSNumber)?.intValue }
    static func double(_ v: Any?) -> Double? { (v as? NSNumber)?.doubleValue }

    static func count(_ db: String, _ sql: String) throws -> Int {
        try DatabaseQueue(path: db).read { try Int.fetchOne($0, sql: sql) ?? -1 }
    }

    /// Two real workers, the real engine, full and both Sirius variants with argmax acceptance: every
    /// example has one result per method, Sirius reproduces full's text exactly (agreement 100 %), and
    /// the JSON report carries AAL, effective density and sane counters for the Sirius methods.
    @Test func twoWorkersRealEngineSiriusArgmaxEndToEnd() async throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let model = s.path("tiny-q8_0.gguf")
        try s.writeModel(to: model)

        // Leasing starts once both workers have joined, one lease at a time each (9 shards): neither
        // can take the whole run.
        let run = try await s.coord(Self.startArgs(db: s.db, runId: "real", model: model,
                                                   extra: ["--acceptance", "argmax", "--credits", "1", "--wait-for-workers", "2"]),
                                    seconds: 180)
        try #require(run.status == 0, "sirius-coord start exited \(String(describing: run.status)):\n\(run.output)")

        // Exactly one stored result per (example, method), all from the real engine, none failed.
        let rows = try Self.rows(s.db)
        #expect(rows.count == Self.examples * Self.methods.count)
        let keys = Set(rows.map { "\($0.exampleId)/\($0.method)" })
        #expect(keys.count == rows.count)
        for i in 0..<Self.examples {
            for m in Self.methods {
                #expect(keys.contains(String(format: "%06d", i) + "/" + m), "missing \(i) \(m)")
            }
        }
        #expect(rows.allSatisfy { $0.engine == "sirius" })
        #expect(try Self.count(s.db, "SELECT COUNT(DISTINCT worker_id) FROM results") == 2, "both workers produced results")
        #expect(try Self.count(s.db, "SELECT COUNT(*) FROM example_failures") == 0)
        #expect(try Self.count(s.db, "SELECT COUNT(*) FROM runs WHERE status = 'completed'") == 1)

        // Counters are non-negative; the Sirius rows counted periods and advanced whole tokens.
        for r in rows {
            #expect(r.counters.allSatisfy { $0 >= 0 }, "\(r.exampleId) \(r.method): \(r.counters)")
            #expect(r.genTokens > 0, "\(r.exampleId) \(r.method) generated nothing")
        }
        // The timing sample (the first 3 examples of each method, the default) was decoded alone, in
        // batches that paused for it.
        #expect(try Self.count(s.db, """
            SELECT COUNT(*) FROM results r JOIN examples e USING (run_id, task, example_id) WHERE e.ord < 3 AND r.decoded_alone = 1
            """) == 3 * Self.methods.count)
        let sirius = rows.filter { $0.method.hasPrefix("sirius/") }
        #expect(sirius.reduce(0) { $0 + $1.counters[0] } > 0, "no Sirius period was counted")
        for r in sirius {
            // periods and advances exclude the final period (§5.1); rollbacks and dense passes count it.
            let (periods, advanced, rollbacks, dense) = (r.counters[0], r.counters[1], r.counters[2], r.counters[5])
            #expect(advanced <= r.genTokens && advanced <= periods * Self.period && rollbacks <= periods + 1 && dense >= periods,
                    "\(r.exampleId) \(r.method): \(r.counters) for \(r.genTokens) tokens")
        }

        // argmax acceptance: each Sirius text is exactly full's.
        let full = Dictionary(uniqueKeysWithValues: rows.filter { $0.method == "full" }.map { ($0.exampleId, $0) })
        for r in sirius {
            #expect(r.text == full[r.exampleId]?.text, "\(r.exampleId) \(r.method): \(r.text.debugDescription) ≠ full's")
            #expect(r.genTokens == full[r.exampleId]?.genTokens)
        }

        // What the workers stored is what the engine library computes in this process: the prompt
        // encoded with the model's own tokenizer (BOS included), full greedy decoding with the task's stop.
        let gguf = try GGUFFile(path: model)
        let tokenizer = try Tokenizer(gguf: gguf)
        let llama = try ModelLoader.load(gguf: gguf)
        let prompts = try Self.prompts(s.db)
        #expect(prompts.count == Self.examples)
        for (id, prompt) in prompts {
            let ids = tokenizer.encode(prompt)
            #expect(ids.first == Int32(TinyByteTokenizer().bosID))
            let committed = CommittedText(tokenizer: tokenizer, maxNewTokens: 24, stopStrings: ["\n\n"], eosIDs: tokenizer.eosIDs)
            let g = try PlainDecoder.generate(Transformer(model: llama, capacity: min(llama.config.contextLength, 4096)),
                                              promptIDs: ids, committed: committed, sampling: SamplingParams())
            #expect(full[id]?.text == g.text, "\(id): worker \(String(describing: full[id]?.text.debugDescription)), here \(g.text.debugDescription)")
            #expect(full[id]?.genTokens == g.outputIDs.count)
            #expect(full[id]?.counters[7] == ids.count, "\(id): prompt tokens")
        }

        // The report, as `sirius-coord report --format json` prints it.
        let rep = try await s.coord(["report", "real", "--db", s.db, "--format", "json"], seconds: 60)
        try #require(rep.status == 0, "\(rep.output)")
        let json = try #require(rep.output.firstIndex(of: "{").map { String(rep.output[$0...]) })
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(report["engine"] as? String == "sirius")
        #expect(report["status"] as? String == "completed")
        let tasks = try #require(report["tasks"] as? [[String: Any]])
        try #require(tasks.count == 1)
        let methods = try #require(tasks[0]["methods"] as? [[String: Any]])
        #expect(methods.map { $0["method"] as? String } == Self.methods)
        for m in methods {
            let name = m["method"] as? String ?? "?"
            #expect(Self.int(m["results"]) == Self.examples, "\(name)")
            #expect(Self.int(m["failed"]) == 0, "\(name)")
            for k in ["generatedTokens", "rollbacks", "correct"] {
                #expect(Self.int(m[k]).map { $0 >= 0 } == true, "\(name) \(k) = \(String(describing: m[k]))")
            }
            #expect(Self.double(m["timedSeconds"]).map { $0 >= 0 } == true, "\(name)")
            if name == "full" {
                #expect(m["aal"] == nil && m["effectiveDensity"] == nil, "full has no AAL: \(m)")
                continue
            }
            let aal = try #require(Self.double(m["aal"]), "\(name): no AAL in \(m)")
            #expect(aal >= 1 && aal <= Double(Self.period), "\(name) AAL \(aal)")
            let eff = try #require(Self.double(m["effectiveDensity"]), "\(name): no effective density in \(m)")
            #expect(Self.double(m["density"]) == 0.5, "\(name): the method's density (kept fraction) in \(m)")
            let d = try #require(Self.double(m["paramDensity"]), "\(name): no param density in \(m)")
            #expect(d > 0 && d <= 1, "\(name) param density \(d)")
            #expect(abs(eff - (Double(Self.period - 1) * d + 1) / aal) < 1e-9, "\(name) effective density \(eff)")
            let md = try #require(Self.double(m["modelDensity"]), "\(name): no model density")
            #expect(md > 0 && md <= 1, "\(name) model density \(md)")
            #expect(Self.double(m["agreementWithFull"]) == 1.0, "\(name) agreement \(String(describing: m["agreementWithFull"]))")
            // Agreement counts the examples where both answered: with identical texts, those full answered.
            let fullAnswered = Self.int(methods.first { $0["method"] as? String == "full" }?["answered"])
            #expect(Self.int(m["agreementN"]) == fullAnswered && Self.int(m["answered"]) == fullAnswered)
            #expect(Self.double(m["identicalToFull"]) == 1.0 && Self.int(m["identicalN"]) == Self.examples)
        }
    }

    /// CATS in threshold mode through a run: the calibration file given to `start` travels inside the
    /// run (the workers have no file of their own), the stored method carries it, and with argmax
    /// acceptance Sirius still reproduces full's text; a density without a calibration is refused.
    @Test func catsThresholdModeRunsWithItsCalibration() async throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let model = s.path("tiny-q8_0.gguf")
        try s.writeModel(to: model)
        let llama = try ModelLoader.load(path: model)
        let tokenizer = try Tokenizer(gguf: try GGUFFile(path: model))
        let calibration = try CATSCalibrator.calibrate(transformer: Transformer(model: llama, capacity: 256),
                                                       prompts: ["The quick brown fox", "jumps over the lazy dog"].map { tokenizer.encode($0) },
                                                       density: 0.5, decodeTokens: 16, refinements: 1, model: "tiny")
        let file = s.path("cats-0.5.json")
        try calibration.save(path: file)
        let args = ["--acceptance", "argmax", "--cats-mode", "threshold"]

        let refused = try await s.coord(Self.startArgs(db: s.db, runId: "nocal", model: model, methods: ["full", "sirius/cats@0.4"],
                                                       extra: args + ["--calibration", file]), seconds: 60)
        #expect(refused.status != 0 && refused.output.contains("no calibration for that density"), "\(refused.output)")

        let run = try await s.coord(Self.startArgs(db: s.db, runId: "cats", model: model, methods: ["full", "cats@0.5", "sirius/cats@0.5"],
                                                   extra: args + ["--calibration", file]), seconds: 180)
        try #require(run.status == 0, "\(run.output)")
        let config = try Self.text(s.db, "SELECT config_json FROM runs WHERE run_id = 'cats'")
        #expect(config.contains("\"catsMode\" : \"threshold\"") && config.contains("\"thresholds\""), "\(config)")
        let rows = try Self.rows(s.db).filter { ["full", "sirius/cats@0.5", "cats@0.5"].contains($0.method) }
        #expect(rows.count == Self.examples * 3)
        let full = Dictionary(uniqueKeysWithValues: rows.filter { $0.method == "full" }.map { ($0.exampleId, $0.text) })
        for r in rows where r.method == "sirius/cats@0.5" { #expect(r.text == full[r.exampleId], "\(r.exampleId)") }
    }

    /// Every local worker exits with a fatal configuration error (the model file does not exist):
    /// `start` stops on its own with a non-zero status and a message naming the worker's error and
    /// what to do; nothing is counted as failed, and once the model is where the run says, `resume`
    /// finishes the same run.
    @Test func missingModelStopsStartPromptlyAndStaysResumable() async throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let model = s.path("not-yet/tiny.gguf")

        let run = try await s.coord(Self.startArgs(db: s.db, runId: "nomodel", model: model, methods: ["full", "sirius/griffin@0.5"]),
                                    seconds: 60)
        let status = try #require(run.status, "sirius-coord start kept serving with no worker left:\n\(run.output)")
        #expect(status != 0)
        #expect(run.output.contains("cannot load model"), "\(run.output)")
        #expect(run.output.contains("every local worker has exited"), "\(run.output)")
        #expect(run.output.contains("status 4"), "\(run.output)")
        #expect(run.output.contains("--model"), "\(run.output)")
        #expect(run.output.contains("sirius-coord resume nomodel"), "\(run.output)")
        #expect(try Self.count(s.db, "SELECT COUNT(*) FROM results") == 0)
        #expect(try Self.count(s.db, "SELECT COUNT(*) FROM example_failures") == 0)
        #expect(try Self.count(s.db, "SELECT COUNT(*) FROM runs WHERE status = 'running'") == 1)
        #expect(try Self.count(s.db, "SELECT COUNT(*) FROM leases WHERE state IN ('active', 'orphaned')") == 0)

        // Put the model where the run expects it and continue the same run.
        try FileManager.default.createDirectory(atPath: s.path("not-yet"), withIntermediateDirectories: true)
        try s.writeModel(to: model)
        let resumed = try await s.coord(["resume", "nomodel", "--db", s.db, "--workers", "1", "--threads", "1",
                                         "--heartbeat-ms", "200", "--quiet", "--format", "csv"], seconds: 120)
        #expect(resumed.status == 0, "\(resumed.output)")
        #expect(try Self.count(s.db, "SELECT COUNT(*) FROM results") == Self.examples * 2)
        #expect(try Self.count(s.db, "SELECT COUNT(*) FROM runs WHERE status = 'completed'") == 1)
    }
}
