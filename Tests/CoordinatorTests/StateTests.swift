import Foundation
import GRDB
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
