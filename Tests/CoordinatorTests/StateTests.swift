import Foundation
import GRDB
import SiriusProtocol
import Testing
@testable import sirius_coord

/// The coordinator's state enums are the database's `CHECK` lists: a state added on one side only
/// fails here, not in a run.
@Suite struct StateTests {
    /// The values of `CHECK (column IN ('a','b',…))` in the schema SQLite holds for `table`.
    private func checkList(_ db: Database, table: String, column: String) throws -> Set<String> {
        let sql = try #require(try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", arguments: [table]))
        let pattern = try NSRegularExpression(pattern: "CHECK \\(\(column) IN \\(([^)]*)\\)\\)")
        let match = try #require(pattern.firstMatch(in: sql, range: NSRange(sql.startIndex..., in: sql)), "no CHECK on \(table).\(column) in: \(sql)")
        let list = String(sql[Range(match.range(at: 1), in: sql)!])
        return Set(list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "'")) })
    }

    @Test func enumsEqualTheSchemasCheckLists() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sirius-states-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try Store(path: dir.appendingPathComponent("runs.sqlite").path)
        let lists = try store.pool.read { db in
            try [("runs", "status"), ("shards", "state"), ("leases", "state"), ("workers", "state"), ("result_events", "kind")]
                .map { try checkList(db, table: $0.0, column: $0.1) }
        }
        #expect(lists[0] == Set(RunStatus.allCases.map(\.rawValue)))
        #expect(lists[1] == Set(ShardState.allCases.map(\.rawValue)))
        #expect(lists[2] == Set(LeaseState.allCases.map(\.rawValue)))
        #expect(lists[3] == Set(WorkerRecordState.allCases.map(\.rawValue)))
        #expect(lists[4] == Set(ResultEventKind.allCases.map(\.rawValue)))
    }

    /// v4 rebuilds `workers` with a CHECK and a `threads` column; rows of a v3 database survive, and
    /// a state outside the list is refused.
    @Test func workersMigrationKeepsRowsAndChecksStates() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sirius-states-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("old.sqlite").path
        let queue = try DatabaseQueue(path: path)
        try Store.migrator.migrate(queue, upTo: "v3")
        try queue.write { db in
            try db.execute(sql: """
                INSERT INTO workers (worker_id, hostname, pid, build, engines, device, proto, first_seen, last_seen, state, numerics, batch_size)
                VALUES ('old', 'host', 7, 'dev', 'sirius', 'cpu', '2.0', 1, 2, 'left', 'exact', 8)
                """)
        }
        try queue.close()
        let store = try Store(path: path)
        let row = try #require(try store.pool.read { try Row.fetchOne($0, sql: "SELECT * FROM workers WHERE worker_id = 'old'") })
        #expect(row["state"] as String? == "left")
        #expect(row["batch_size"] as Int? == 8)
        #expect((row["threads"] as Int?) == nil)
        #expect(throws: DatabaseError.self) {
            try store.pool.write { try $0.execute(sql: "UPDATE workers SET state = 'sleeping' WHERE worker_id = 'old'") }
        }
    }
}

/// v5 turns an example's request columns into one JSON document; rows of a v4 database come through
/// with every field, and what createRun stores now reads back as it was given.
@Suite struct ExampleRecordTests {
    @Test func v4ExamplesMigrateIntoRequestJSON() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sirius-records-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("old.sqlite").path
        let queue = try DatabaseQueue(path: path)
        try Store.migrator.migrate(queue, upTo: "v4")
        try queue.write { db in
            try db.execute(sql: """
                INSERT INTO runs (run_id, created_at, status, config_json, config_hash, run_seed, proto_major, code_version, epoch)
                VALUES ('r', 0, 'pending', '{}', 'h', 0, 2, 'dev', 0);
                INSERT INTO tasks VALUES ('r', 't', 'rev', 2, 'd');
                INSERT INTO examples VALUES ('r', 't', 'a', 0, 'Q: "x"?\nA:', 'ref', '["\\n\\n","Q:"]', 64, 'ph', '["Q: \\"x\\"?","\\nA:"]', 1, 0, 512, '{"id":"a"}');
                INSERT INTO examples VALUES ('r', 't', 'b', 1, 'plain', 'ref2', '[]', NULL, 'ph2', NULL, NULL, NULL, NULL, NULL);
                """)
        }
        try queue.close()
        let rows = try Store(path: path).examples("r")
        #expect(rows.map(\.id) == ["a", "b"])
        #expect(rows[0].input == ExampleInput(prompt: "Q: \"x\"?\nA:", stop: ["\n\n", "Q:"], maxNewTokens: 64,
                                              promptSegments: ["Q: \"x\"?", "\nA:"], addBOS: true, chat: false, maxTotalTokens: 512))
        #expect(rows[0].reference == "ref" && rows[0].exampleJSON == "{\"id\":\"a\"}")
        #expect(rows[1].input == ExampleInput(prompt: "plain", stop: []))
    }

    @Test func createdExamplesReadBackAsGiven() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sirius-records-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try Store(path: dir.appendingPathComponent("runs.sqlite").path)
        let input = ExampleInput(prompt: "P", stop: ["\n"], maxNewTokens: 9, promptSegments: ["P"], addBOS: true, chat: nil, maxTotalTokens: 99)
        var config = RunConfig()
        config.tasks = ["t"]
        try store.createRun(id: "r", config: config, tasks: [LoadedTask(name: "t", datasetRev: "v", examples: [
            RunExample(id: "e1", input: input, reference: "R", exampleJSON: "{}")])])
        let rows = try store.examples("r")
        #expect(rows.count == 1 && rows[0].input == input && rows[0].reference == "R" && rows[0].ord == 0)
    }
}

@Suite struct ResultRecordTests {
    /// The hand-written encoding writes exactly the record's columns, and they are the table's.
    @Test func encodesEveryColumnOfTheTable() throws {
        let outcome = ExampleOutcome(text: "t", promptTokens: 1, generatedTokens: 2, stopReason: "eos")
        let msg = ResultMessage(leaseId: 1, attempt: 1, key: ResultKey(task: "t", exampleId: "e", method: "full"), engine: "fake",
                                device: "cpu", outcome: outcome)
        let r = ResultRecord(runId: "r", Store.Scored(message: msg, workerId: "w", extracted: nil, correct: true, late: false), committedAt: 5)
        #expect(Set(try r.databaseDictionary.keys) == Set(ResultRecord.columns))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sirius-records-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try Store(path: dir.appendingPathComponent("runs.sqlite").path)
        let tableColumns = try store.pool.read { try $0.columns(in: "results").map(\.name) }
        #expect(Set(tableColumns) == Set(ResultRecord.columns))
    }
}
