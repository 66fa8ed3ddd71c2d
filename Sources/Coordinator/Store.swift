import Foundation
import GRDB
import SiriusProtocol

/// The result store (§4.5): SQLite through GRDB, WAL, migrations. One row per
/// (run, task, example, method) in `results`, written before the worker is acknowledged; metrics
/// are always recomputed from rows (`Metrics`).
final class Store: Sendable {
    let pool: DatabasePool
    let path: String

    /// Opens (creating and migrating) the database at `path`. `durable` = `synchronous=FULL`
    /// (an ACK then survives power loss, not only a process crash).
    init(path: String, durable: Bool = false) throws {
        self.path = path
        var config = Configuration()
        config.busyMode = .timeout(5)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(durable ? "FULL" : "NORMAL")")
        }
        pool = try DatabasePool(path: path, configuration: config)
        try Store.migrator.migrate(pool)
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
            CREATE TABLE runs (
              run_id TEXT PRIMARY KEY, created_at INTEGER NOT NULL,
              status TEXT NOT NULL CHECK (status IN ('pending','running','paused','completed','failed','cancelled')),
              config_json TEXT NOT NULL, config_hash TEXT NOT NULL, run_seed INTEGER NOT NULL,
              proto_major INTEGER NOT NULL, code_version TEXT NOT NULL, epoch INTEGER NOT NULL DEFAULT 0,
              endpoint TEXT, status_note TEXT
            );
            CREATE TABLE tasks (
              run_id TEXT NOT NULL REFERENCES runs, task TEXT NOT NULL, dataset_rev TEXT NOT NULL,
              n_examples INTEGER NOT NULL, examples_digest TEXT NOT NULL, PRIMARY KEY (run_id, task)
            );
            CREATE TABLE examples (
              run_id TEXT NOT NULL, task TEXT NOT NULL, example_id TEXT NOT NULL, ord INTEGER NOT NULL,
              prompt TEXT NOT NULL, reference TEXT NOT NULL, stop_json TEXT NOT NULL, max_new_tokens INTEGER,
              prompt_hash TEXT NOT NULL, segments_json TEXT, add_bos INTEGER, chat INTEGER, max_total_tokens INTEGER,
              example_json TEXT,
              PRIMARY KEY (run_id, task, example_id), UNIQUE (run_id, task, ord),
              FOREIGN KEY (run_id, task) REFERENCES tasks
            );
            CREATE TABLE shards (
              run_id TEXT NOT NULL, shard_id INTEGER NOT NULL, task TEXT NOT NULL, method TEXT NOT NULL,
              first_ord INTEGER NOT NULL, count INTEGER NOT NULL,
              state TEXT NOT NULL CHECK (state IN ('pending','leased','done','failed')) DEFAULT 'pending',
              attempts INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0, split INTEGER NOT NULL DEFAULT 0,
              PRIMARY KEY (run_id, shard_id)
            );
            CREATE TABLE workers (
              worker_id TEXT PRIMARY KEY, hostname TEXT, pid INTEGER, build TEXT, engines TEXT, device TEXT,
              proto TEXT, first_seen INTEGER, last_seen INTEGER, state TEXT
            );
            CREATE TABLE leases (
              lease_id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, shard_id INTEGER NOT NULL, worker_id TEXT NOT NULL,
              attempt INTEGER NOT NULL, epoch INTEGER NOT NULL, granted_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
              n_items INTEGER NOT NULL, items_json TEXT NOT NULL,
              state TEXT NOT NULL CHECK (state IN ('active','orphaned','completed','expired','cancelled')),
              FOREIGN KEY (run_id, shard_id) REFERENCES shards
            );
            CREATE INDEX leases_active ON leases(state) WHERE state IN ('active','orphaned');
            CREATE TABLE results (
              run_id TEXT NOT NULL, task TEXT NOT NULL, example_id TEXT NOT NULL, method TEXT NOT NULL,
              lease_id INTEGER NOT NULL, worker_id TEXT NOT NULL, attempt INTEGER NOT NULL,
              engine TEXT NOT NULL, device TEXT NOT NULL,
              output_text TEXT NOT NULL, extracted_answer TEXT, correct INTEGER,
              stop_reason TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, gen_tokens INTEGER NOT NULL,
              periods INTEGER NOT NULL, advanced_tokens INTEGER NOT NULL, rollbacks INTEGER NOT NULL,
              rolled_back_tokens INTEGER NOT NULL, sparse_steps INTEGER NOT NULL, dense_passes INTEGER NOT NULL,
              tokens_verified INTEGER NOT NULL, model_density REAL, paper_density REAL,
              prefill_s REAL NOT NULL, sparse_s REAL NOT NULL, verify_s REAL NOT NULL, total_s REAL NOT NULL,
              result_hash TEXT NOT NULL, committed_at INTEGER NOT NULL,
              PRIMARY KEY (run_id, task, example_id, method),
              FOREIGN KEY (run_id, task, example_id) REFERENCES examples
            );
            CREATE TABLE result_events (
              id INTEGER PRIMARY KEY, run_id TEXT, task TEXT, example_id TEXT, method TEXT, lease_id INTEGER,
              worker_id TEXT, result_hash TEXT,
              kind TEXT CHECK (kind IN ('duplicate_same','duplicate_conflict','late_accepted','late_ignored')), at INTEGER
            );
            CREATE TABLE example_failures (
              id INTEGER PRIMARY KEY, run_id TEXT, task TEXT, example_id TEXT, method TEXT, attempt INTEGER,
              worker_id TEXT, error_class TEXT, message TEXT, final INTEGER NOT NULL DEFAULT 0, at INTEGER
            );
            CREATE TABLE run_metrics (
              run_id TEXT, task TEXT, method TEXT, metric TEXT, value REAL, n INTEGER,
              PRIMARY KEY (run_id, task, method, metric)
            );
            """)
        }
        // One vocabulary (param_density), and how each example was decoded: the worker's numerics,
        // threads and batch size, whether it shared passes (timings of examples decoded alone are
        // latency), prompt tokens reused from the prefix cache, dense decode seconds.
        m.registerMigration("v2") { db in
            try db.execute(sql: """
            ALTER TABLE results RENAME COLUMN paper_density TO param_density;
            ALTER TABLE results ADD COLUMN decode_s REAL NOT NULL DEFAULT 0;
            ALTER TABLE results ADD COLUMN numerics TEXT;
            ALTER TABLE results ADD COLUMN threads INTEGER;
            ALTER TABLE results ADD COLUMN batch_size INTEGER;
            ALTER TABLE results ADD COLUMN decoded_alone INTEGER;
            ALTER TABLE results ADD COLUMN reused_prompt_tokens INTEGER;
            ALTER TABLE workers ADD COLUMN numerics TEXT;
            ALTER TABLE workers ADD COLUMN batch_size INTEGER;
            """)
        }
        // How generated code was executed for scoring (bubblewrap, or none with --unsafe-code-execution).
        m.registerMigration("v3") { db in
            try db.execute(sql: "ALTER TABLE runs ADD COLUMN code_execution TEXT")
        }
        // Workers' states checked like the other tables' (the table is rebuilt: SQLite cannot add a
        // CHECK to a column), and their engine threads (HELLO 2.1).
        m.registerMigration("v4") { db in
            try db.execute(sql: """
            CREATE TABLE workers_v4 (
              worker_id TEXT PRIMARY KEY, hostname TEXT, pid INTEGER, build TEXT, engines TEXT, device TEXT,
              proto TEXT, first_seen INTEGER, last_seen INTEGER,
              state TEXT CHECK (state IN ('connected','left','lost','silent')),
              numerics TEXT, batch_size INTEGER, threads INTEGER
            );
            INSERT INTO workers_v4 (worker_id, hostname, pid, build, engines, device, proto, first_seen, last_seen, state, numerics, batch_size)
              SELECT worker_id, hostname, pid, build, engines, device, proto, first_seen, last_seen, state, numerics, batch_size FROM workers;
            DROP TABLE workers;
            ALTER TABLE workers_v4 RENAME TO workers;
            """)
        }
        // One stored request per example: the engine's part of it as one JSON document
        // (`ExampleInput`) instead of a column per field, so a new request field needs no migration.
        m.registerMigration("v5") { db in
            try db.execute(sql: """
            ALTER TABLE examples ADD COLUMN request_json TEXT;
            UPDATE examples SET request_json = json_object(
              'prompt', prompt, 'stop', json(stop_json), 'maxNewTokens', max_new_tokens,
              'promptSegments', CASE WHEN segments_json IS NULL THEN NULL ELSE json(segments_json) END,
              'addBOS', CASE WHEN add_bos IS NULL THEN NULL WHEN add_bos THEN json('true') ELSE json('false') END,
              'chat', CASE WHEN chat IS NULL THEN NULL WHEN chat THEN json('true') ELSE json('false') END,
              'maxTotalTokens', max_total_tokens);
            ALTER TABLE examples DROP COLUMN prompt;
            ALTER TABLE examples DROP COLUMN stop_json;
            ALTER TABLE examples DROP COLUMN max_new_tokens;
            ALTER TABLE examples DROP COLUMN segments_json;
            ALTER TABLE examples DROP COLUMN add_bos;
            ALTER TABLE examples DROP COLUMN chat;
            ALTER TABLE examples DROP COLUMN max_total_tokens;
            """)
        }
        return m
    }

    /// Wall-clock milliseconds, for the record only (`granted_at`, `committed_at`, …): leases, retries
    /// and heartbeats run on the monotonic clock, so a wall-clock jump changes nothing but these
    /// columns. `wallClockOffsetMs` shifts it (tests: T25).
    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) + wallClockOffsetMs.current }
    static let wallClockOffsetMs = Locked<Int64>(0)

    // MARK: runs

    struct RunRow: Sendable {
        var runId: String
        var status: RunStatus
        var config: RunConfig
        var configHash: String
        var epoch: Int
        var createdAt: Int64
        var endpoint: String?
        var note: String?
        /// How generated code was isolated when it was scored (nil: the run executes no code).
        var codeExecution: String? = nil
    }

    /// Creates a run: tasks, examples in canonical order, and the shard layout, which depends
    /// only on the config (never on the worker count).
    func createRun(id: String, config: RunConfig, tasks: [LoadedTask]) throws {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO runs (run_id, created_at, status, config_json, config_hash, run_seed, proto_major, code_version, epoch)
                VALUES (?, ?, '\(RunStatus.pending.rawValue)', ?, ?, ?, ?, ?, 0)
                """, arguments: [id, Store.now(), config.json, config.configHash, Int64(bitPattern: config.runSeed),
                                 Int(SiriusProtocol.version.major), "sirius-coord dev"])
            var shardId = 0
            for task in tasks {
                var digest = StableHasher()
                for e in task.examples { digest.combine(e.id); digest.combine(e.prompt); digest.combine(e.reference) }
                try db.execute(sql: "INSERT INTO tasks VALUES (?, ?, ?, ?, ?)",
                               arguments: [id, task.name, task.datasetRev, task.examples.count, digest.hex])
                for (ord, e) in task.examples.enumerated() {
                    try ExampleRecord(runId: id, task: task.name, ord: ord, example: e).insert(db)
                }
                var first = 0
                while first < task.examples.count {
                    let count = min(config.shardSize, task.examples.count - first)
                    for m in config.methods {
                        try db.execute(sql: "INSERT INTO shards (run_id, shard_id, task, method, first_ord, count) VALUES (?, ?, ?, ?, ?, ?)",
                                       arguments: [id, shardId, task.name, m.name, first, count])
                        shardId += 1
                    }
                    first += count
                }
            }
        }
    }

    func run(_ id: String) throws -> RunRow? {
        try pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM runs WHERE run_id = ?", arguments: [id]) else { return nil }
            let json: String = row["config_json"]
            let config = try JSONDecoder().decode(RunConfig.self, from: Data(json.utf8))
            let status: String = row["status"]
            guard let runStatus = RunStatus(rawValue: status) else {
                throw CoordinatorError("run \(id) in \(path) has status '\(status)', which this build does not know (a newer sirius-coord wrote it?)")
            }
            return RunRow(runId: row["run_id"], status: runStatus, config: config, configHash: row["config_hash"],
                          epoch: row["epoch"], createdAt: row["created_at"], endpoint: row["endpoint"], note: row["status_note"],
                          codeExecution: row["code_execution"])
        }
    }

    func latestRunId() throws -> String? {
        try pool.read { try String.fetchOne($0, sql: "SELECT run_id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1") }
    }

    func runIds() throws -> [String] {
        try pool.read { try String.fetchAll($0, sql: "SELECT run_id FROM runs ORDER BY created_at, rowid") }
    }

    func setStatus(_ id: String, _ status: RunStatus, note: String? = nil) throws {
        try pool.write { try $0.execute(sql: "UPDATE runs SET status = ?, status_note = ? WHERE run_id = ?", arguments: [status.rawValue, note, id]) }
    }

    /// Records how generated code is isolated in this serve; a resume that isolates differently
    /// leaves both in the record ("bubblewrap, then none").
    func recordCodeExecution(_ id: String, _ isolation: String) throws {
        try pool.write { db in
            let old = try String.fetchOne(db, sql: "SELECT code_execution FROM runs WHERE run_id = ?", arguments: [id])
            guard old.map({ !$0.hasSuffix(isolation) }) ?? true else { return }
            let value = old.map { "\($0), then \(isolation)" } ?? isolation
            try db.execute(sql: "UPDATE runs SET code_execution = ? WHERE run_id = ?", arguments: [value, id])
        }
    }

    func setEndpoint(_ id: String, _ endpoint: String) throws {
        try pool.write { try $0.execute(sql: "UPDATE runs SET endpoint = ? WHERE run_id = ?", arguments: [endpoint, id]) }
    }

    /// A new coordinator incarnation: epoch+1, and every active lease becomes orphaned (§4.3).
    func beginEpoch(_ id: String) throws -> Int {
        try pool.write { db in
            try db.execute(sql: "UPDATE runs SET epoch = epoch + 1, status = 'running', status_note = NULL WHERE run_id = ?", arguments: [id])
            try db.execute(sql: "UPDATE leases SET state = 'orphaned' WHERE run_id = ? AND state = 'active'", arguments: [id])
            return try Int.fetchOne(db, sql: "SELECT epoch FROM runs WHERE run_id = ?", arguments: [id]) ?? 0
        }
    }

    // MARK: loading state for the scheduler

    struct ExampleRow: Sendable {
        var task: String
        var id: String
        var ord: Int
        var reference: String
        var input: ExampleInput
        var exampleJSON: String?
    }

    struct ShardRow: Sendable {
        var shardId: Int
        var task: String
        var method: String
        var firstOrd: Int
        var count: Int
        var failures: Int
        var split: Bool
        var attempts: Int
    }

    struct LeaseRow: Sendable {
        var leaseId: Int64
        var shardId: Int
        var workerId: String
        var attempt: Int
        var items: [ResultKey]
    }

    func examples(_ id: String) throws -> [ExampleRow] {
        try pool.read { db in
            try ExampleRecord.filter(Column("run_id") == id).order(Column("task"), Column("ord")).fetchAll(db).map { r in
                ExampleRow(task: r.task, id: r.exampleId, ord: r.ord, reference: r.reference, input: try r.input(), exampleJSON: r.exampleJSON)
            }
        }
    }

    func shards(_ id: String) throws -> [ShardRow] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM shards WHERE run_id = ? ORDER BY shard_id", arguments: [id]).map { r in
                ShardRow(shardId: r["shard_id"], task: r["task"], method: r["method"], firstOrd: r["first_ord"],
                         count: r["count"], failures: r["failures"], split: r["split"] != 0, attempts: r["attempts"])
            }
        }
    }

    func committedKeys(_ id: String) throws -> Set<ResultKey> {
        try pool.read { db in
            Set(try Row.fetchAll(db, sql: "SELECT task, example_id, method FROM results WHERE run_id = ?", arguments: [id]).map {
                ResultKey(task: $0[0], exampleId: $0[1], method: $0[2])
            })
        }
    }

    /// Failure attempts per example (non-final rows) and the examples declared failed.
    func failureState(_ id: String) throws -> (counts: [ResultKey: Int], failed: Set<ResultKey>) {
        try pool.read { db in
            var counts: [ResultKey: Int] = [:]
            var failed: Set<ResultKey> = []
            for r in try Row.fetchAll(db, sql: "SELECT task, example_id, method, final FROM example_failures WHERE run_id = ?", arguments: [id]) {
                let k = ResultKey(task: r[0], exampleId: r[1], method: r[2])
                if (r[3] as Int) != 0 { failed.insert(k) } else { counts[k, default: 0] += 1 }
            }
            return (counts, failed.subtracting(try committedKeysIn(db, id)))
        }
    }

    private func committedKeysIn(_ db: Database, _ id: String) throws -> Set<ResultKey> {
        Set(try Row.fetchAll(db, sql: "SELECT task, example_id, method FROM results WHERE run_id = ?", arguments: [id]).map {
            ResultKey(task: $0[0], exampleId: $0[1], method: $0[2])
        })
    }

    func openLeases(_ id: String) throws -> [LeaseRow] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM leases WHERE run_id = ? AND state IN ('active','orphaned')", arguments: [id]).map { r in
                let items: String = r["items_json"]
                return LeaseRow(leaseId: r["lease_id"], shardId: r["shard_id"], workerId: r["worker_id"], attempt: r["attempt"],
                                items: (try? JSONDecoder().decode([ResultKey].self, from: Data(items.utf8))) ?? [])
            }
        }
    }

    func maxLeaseId() throws -> Int64 {
        try pool.read { try Int64.fetchOne($0, sql: "SELECT MAX(lease_id) FROM leases") ?? 0 }
    }

    // MARK: writes from the scheduler

    func grantLease(runId: String, leaseId: Int64, shardId: Int, workerId: String, attempt: Int, epoch: Int,
                    expiresAt: Int64, items: [ResultKey]) throws {
        let json = String(decoding: try JSONEncoder().encode(items), as: UTF8.self)
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO leases (lease_id, run_id, shard_id, worker_id, attempt, epoch, granted_at, expires_at, n_items, items_json, state)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '\(LeaseState.active.rawValue)')
                """, arguments: [leaseId, runId, shardId, workerId, attempt, epoch, Store.now(), expiresAt, items.count, json])
            try db.execute(sql: "UPDATE shards SET state = '\(ShardState.leased.rawValue)', attempts = attempts + 1 WHERE run_id = ? AND shard_id = ?",
                           arguments: [runId, shardId])
        }
    }

    func setLeaseState(_ leaseId: Int64, _ state: LeaseState) throws {
        try pool.write { try $0.execute(sql: "UPDATE leases SET state = ? WHERE lease_id = ?", arguments: [state.rawValue, leaseId]) }
    }

    func setShard(runId: String, shardId: Int, state: ShardState, failures: Int, split: Bool) throws {
        try pool.write {
            try $0.execute(sql: "UPDATE shards SET state = ?, failures = ?, split = ? WHERE run_id = ? AND shard_id = ?",
                           arguments: [state.rawValue, failures, split ? 1 : 0, runId, shardId])
        }
    }

    func recordFailure(runId: String, key: ResultKey, attempt: Int, workerId: String, errorClass: String,
                       message: String, final: Bool) throws {
        try pool.write {
            try $0.execute(sql: """
                INSERT INTO example_failures (run_id, task, example_id, method, attempt, worker_id, error_class, message, final, at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [runId, key.task, key.exampleId, key.method, attempt, workerId, errorClass, message, final ? 1 : 0, Store.now()])
        }
    }

    func upsertWorker(_ h: Hello, proto: ProtocolVersion, state: WorkerRecordState) throws {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO workers (worker_id, hostname, pid, build, engines, device, proto, first_seen, last_seen, state, numerics, batch_size, threads)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(worker_id) DO UPDATE SET last_seen = excluded.last_seen, state = excluded.state, pid = excluded.pid,
                  hostname = excluded.hostname, build = excluded.build, engines = excluded.engines, proto = excluded.proto,
                  device = excluded.device, numerics = excluded.numerics, batch_size = excluded.batch_size, threads = excluded.threads
                """, arguments: [h.workerId, h.hostname, Int(h.pid), h.build, h.engines.joined(separator: ","), h.device,
                                 proto.description, Store.now(), Store.now(), state.rawValue, h.numerics, h.batchSize, h.threads])
        }
    }

    func setWorkerState(_ workerId: String, _ state: WorkerRecordState) throws {
        try pool.write { try $0.execute(sql: "UPDATE workers SET state = ?, last_seen = ? WHERE worker_id = ?",
                                        arguments: [state.rawValue, Store.now(), workerId]) }
    }

    enum CommitOutcome: Sendable, Equatable { case inserted, duplicateSame, duplicateConflict }

    struct Scored: Sendable {
        var message: ResultMessage
        var workerId: String
        var extracted: String?
        var correct: Bool?
        /// The lease was no longer active (expired/cancelled): recorded as `late_accepted` if new.
        var late: Bool
    }

    /// Idempotent recording (§4.4): `INSERT … ON CONFLICT DO NOTHING`; an existing row is compared
    /// by `result_hash` and the duplicate recorded in `result_events`. One transaction per batch;
    /// the caller ACKs only after this returns.
    func commit(runId: String, _ batch: [Scored]) throws -> [CommitOutcome] {
        try pool.write { db in
            var out: [CommitOutcome] = []
            out.reserveCapacity(batch.count)
            let now = Store.now()
            for s in batch {
                let m = s.message, k = m.key
                let inserted = try ResultRecord(runId: runId, s, committedAt: now).insertIgnoringDuplicate(db)
                if inserted {
                    out.append(.inserted)
                    if s.late { try event(db, runId, s, .lateAccepted, now) }
                } else {
                    let existing = try Row.fetchOne(db, sql: """
                        SELECT result_hash, lease_id FROM results WHERE run_id = ? AND task = ? AND example_id = ? AND method = ?
                        """, arguments: [runId, k.task, k.exampleId, k.method])
                    let same = (existing?["result_hash"] as String?) == m.resultHash
                    let otherLease = (existing?["lease_id"] as Int64?) != m.leaseId
                    out.append(same ? .duplicateSame : .duplicateConflict)
                    // A re-send of the stored result is a duplicate; a copy from a lease that expired and
                    // was decoded again elsewhere is late and ignored; a different result is
                    // non-determinism, whatever its lease.
                    try event(db, runId, s, !same ? .duplicateConflict : s.late && otherLease ? .lateIgnored : .duplicateSame, now)
                }
            }
            return out
        }
    }

    private func event(_ db: Database, _ runId: String, _ s: Scored, _ kind: ResultEventKind, _ now: Int64) throws {
        try db.execute(sql: """
            INSERT INTO result_events (run_id, task, example_id, method, lease_id, worker_id, result_hash, kind, at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [runId, s.message.key.task, s.message.key.exampleId, s.message.key.method, s.message.leaseId,
                             s.workerId, s.message.resultHash, kind.rawValue, now])
    }

    func saveMetrics(runId: String, _ rows: [(task: String, method: String, metric: String, value: Double, n: Int)]) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM run_metrics WHERE run_id = ?", arguments: [runId])
            for r in rows {
                try db.execute(sql: "INSERT INTO run_metrics VALUES (?, ?, ?, ?, ?, ?)",
                               arguments: [runId, r.task, r.method, r.metric, r.value, r.n])
            }
        }
    }
}

extension DatabaseError {
    /// SQLITE_FULL: disk (or `max_page_count`) full (T14).
    var isDiskFull: Bool { resultCode == .SQLITE_FULL }
}
