import Foundation
import GRDB
import SiriusProtocol

/// A row of `examples`: one example of a run's task, with everything the engine needs of it as one
/// JSON document (`request_json`, an `ExampleInput`).
struct ExampleRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "examples"

    var runId: String
    var task: String
    var exampleId: String
    var ord: Int
    var reference: String
    var promptHash: String
    var requestJSON: String
    var exampleJSON: String?

    enum CodingKeys: String, CodingKey {
        case runId = "run_id", task, exampleId = "example_id", ord, reference, promptHash = "prompt_hash"
        case requestJSON = "request_json", exampleJSON = "example_json"
    }

    init(runId: String, task: String, ord: Int, example e: RunExample) throws {
        self.runId = runId
        self.task = task
        exampleId = e.id
        self.ord = ord
        reference = e.reference
        promptHash = StableHasher.hash(e.input.prompt).description
        requestJSON = String(decoding: try ExampleRecord.encoder.encode(e.input), as: UTF8.self)
        exampleJSON = e.exampleJSON
    }

    func input() throws -> ExampleInput {
        do { return try JSONDecoder().decode(ExampleInput.self, from: Data(requestJSON.utf8)) } catch {
            throw CoordinatorError("example \(task)/\(exampleId) of run \(runId): unreadable request_json (\(error)); the database was changed by hand or by a newer sirius-coord")
        }
    }

    private static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }()
}

/// A row of `results`: one stored outcome, its scoring and how it was decoded. Inserted by column
/// name (`insertIgnoringDuplicate`), never by position.
struct ResultRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "results"

    var runId: String
    var task: String
    var exampleId: String
    var method: String
    var leaseId: Int64
    var workerId: String
    var attempt: Int
    var engine: String
    var device: String
    var outputText: String
    var extractedAnswer: String?
    var correct: Bool?
    var stopReason: String
    var promptTokens: Int
    var genTokens: Int
    var periods: Int
    var advancedTokens: Int
    var rollbacks: Int
    var rolledBackTokens: Int
    var sparseSteps: Int
    var densePasses: Int
    var tokensVerified: Int
    var modelDensity: Double?
    var paramDensity: Double?
    var prefillS: Double
    var sparseS: Double
    var verifyS: Double
    var decodeS: Double
    var totalS: Double
    var numerics: String?
    var threads: Int?
    var batchSize: Int?
    var decodedAlone: Bool?
    var reusedPromptTokens: Int?
    var resultHash: String
    var committedAt: Int64

    enum CodingKeys: String, CodingKey, CaseIterable {
        case runId = "run_id", task, exampleId = "example_id", method, leaseId = "lease_id", workerId = "worker_id"
        case attempt, engine, device, outputText = "output_text", extractedAnswer = "extracted_answer", correct
        case stopReason = "stop_reason", promptTokens = "prompt_tokens", genTokens = "gen_tokens", periods
        case advancedTokens = "advanced_tokens", rollbacks, rolledBackTokens = "rolled_back_tokens"
        case sparseSteps = "sparse_steps", densePasses = "dense_passes", tokensVerified = "tokens_verified"
        case modelDensity = "model_density", paramDensity = "param_density", prefillS = "prefill_s"
        case sparseS = "sparse_s", verifyS = "verify_s", decodeS = "decode_s", totalS = "total_s", numerics, threads
        case batchSize = "batch_size", decodedAlone = "decoded_alone", reusedPromptTokens = "reused_prompt_tokens"
        case resultHash = "result_hash", committedAt = "committed_at"
    }

    init(runId: String, _ s: Store.Scored, committedAt: Int64) {
        let m = s.message, o = m.outcome, c = o.counters, x = o.execution
        self.runId = runId
        task = m.key.task; exampleId = m.key.exampleId; method = m.key.method
        leaseId = m.leaseId; workerId = s.workerId; attempt = m.attempt; engine = m.engine; device = m.device
        outputText = o.text; extractedAnswer = s.extracted; correct = s.correct; stopReason = o.stopReason
        promptTokens = o.promptTokens; genTokens = o.generatedTokens
        periods = c.periods; advancedTokens = c.advancedTokens; rollbacks = c.rollbacks; rolledBackTokens = c.rolledBackTokens
        sparseSteps = c.sparseSteps; densePasses = c.densePasses; tokensVerified = c.tokensVerified
        modelDensity = o.modelDensity; paramDensity = o.paramDensity
        prefillS = o.timings.prefillSeconds; sparseS = o.timings.sparseSeconds; verifyS = o.timings.verifySeconds
        decodeS = o.timings.decodeSeconds; totalS = o.timings.totalSeconds
        numerics = x?.numerics; threads = x?.threads; batchSize = x?.batchSize; decodedAlone = x?.decodedAlone
        reusedPromptTokens = x?.reusedPromptTokens
        resultHash = m.resultHash
        self.committedAt = committedAt
    }

    /// Every column, by name (the coordinator's hot path: faster than the Codable encoding, and
    /// `RecordTests` checks it writes exactly the columns of `CodingKeys`).
    func encode(to c: inout PersistenceContainer) throws {
        c["run_id"] = runId; c["task"] = task; c["example_id"] = exampleId; c["method"] = method
        c["lease_id"] = leaseId; c["worker_id"] = workerId; c["attempt"] = attempt; c["engine"] = engine; c["device"] = device
        c["output_text"] = outputText; c["extracted_answer"] = extractedAnswer; c["correct"] = correct
        c["stop_reason"] = stopReason; c["prompt_tokens"] = promptTokens; c["gen_tokens"] = genTokens
        c["periods"] = periods; c["advanced_tokens"] = advancedTokens; c["rollbacks"] = rollbacks
        c["rolled_back_tokens"] = rolledBackTokens; c["sparse_steps"] = sparseSteps; c["dense_passes"] = densePasses
        c["tokens_verified"] = tokensVerified; c["model_density"] = modelDensity; c["param_density"] = paramDensity
        c["prefill_s"] = prefillS; c["sparse_s"] = sparseS; c["verify_s"] = verifyS; c["decode_s"] = decodeS; c["total_s"] = totalS
        c["numerics"] = numerics; c["threads"] = threads; c["batch_size"] = batchSize; c["decoded_alone"] = decodedAlone
        c["reused_prompt_tokens"] = reusedPromptTokens; c["result_hash"] = resultHash; c["committed_at"] = committedAt
    }

    static let columns = CodingKeys.allCases.map(\.rawValue)
    private static let insertSQL = """
        INSERT INTO results (\(columns.joined(separator: ", "))) VALUES (\(Array(repeating: "?", count: columns.count).joined(separator: ", ")))
        ON CONFLICT DO NOTHING
        """

    /// `INSERT … ON CONFLICT DO NOTHING` by column name (one cached statement): true if the row is
    /// new. (GRDB's `insert(onConflict: .ignore)` is `INSERT OR IGNORE`, which would also hide NOT NULL
    /// and CHECK violations; only the primary-key conflict is expected here.)
    func insertIgnoringDuplicate(_ db: Database) throws -> Bool {
        let values = try databaseDictionary
        try db.cachedStatement(sql: Self.insertSQL).execute(arguments: StatementArguments(Self.columns.map { values[$0] ?? .null }))
        return db.changesCount == 1
    }
}
