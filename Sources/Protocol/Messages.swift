import Foundation

/// Wire names of the message types (§4.2). A name this build does not know is counted and dropped.
public enum MessageType: String, Codable, Sendable, CaseIterable {
    // worker → coordinator
    case hello = "HELLO", ready = "READY", heartbeat = "HEARTBEAT", result = "RESULT"
    case shardDone = "SHARD_DONE", fail = "FAIL", bye = "BYE"
    // coordinator → worker
    case welcome = "WELCOME", reject = "REJECT", assign = "ASSIGN", ack = "ACK", cancel = "CANCEL"
    case pause = "PAUSE", resume = "RESUME", shutdown = "SHUTDOWN"
}

/// Carried by every message for tracing: the run, the coordinator incarnation and a per-sender
/// monotonically increasing sequence number.
public struct Header: Codable, Sendable, Equatable {
    public var runId: String
    public var epoch: Int
    public var seq: UInt64
    public init(runId: String = "", epoch: Int = 0, seq: UInt64 = 0) {
        self.runId = runId; self.epoch = epoch; self.seq = seq
    }
}

public struct Hello: Codable, Sendable, Equatable {
    public var workerId: String
    public var hostname: String
    public var pid: Int32
    public var build: String
    public var engines: [String]
    public var device: String
    public var maxCredits: Int
    /// Join token, only ever sent over a CURVE-encrypted connection (§4.7).
    public var token: String?
    public var heldLeases: [Int64]
    public var spoolCount: Int
    /// `exact` or `fast` (nil: an engine without numerics, the fake one); a run refuses a worker whose
    /// numerics differ from the run's.
    public var numerics: String?
    /// Examples the worker decodes at once.
    public var batchSize: Int?
    /// Engine threads (2.1).
    public var threads: Int?
    /// Results the worker holds decoded but unacknowledged, of any run (2.1): the coordinator does not
    /// lease them again while it waits for the worker to re-send them.
    public var spooled: [SpooledResult]?
    public init(workerId: String, hostname: String, pid: Int32, build: String, engines: [String],
                device: String, maxCredits: Int, token: String?, heldLeases: [Int64], spoolCount: Int,
                numerics: String? = nil, batchSize: Int? = nil, threads: Int? = nil, spooled: [SpooledResult]? = nil) {
        self.workerId = workerId; self.hostname = hostname; self.pid = pid; self.build = build
        self.engines = engines; self.device = device; self.maxCredits = maxCredits; self.token = token
        self.heldLeases = heldLeases; self.spoolCount = spoolCount; self.numerics = numerics; self.batchSize = batchSize
        self.threads = threads; self.spooled = spooled
    }
}

/// A result in a worker's spool, named by its run (id and config hash: run ids are not unique
/// across databases) and key.
public struct SpooledResult: Codable, Sendable, Equatable, Hashable {
    public var runId: String
    public var configHash: String
    public var key: ResultKey
    public init(runId: String, configHash: String, key: ResultKey) { self.runId = runId; self.configHash = configHash; self.key = key }
}

public struct Ready: Codable, Sendable, Equatable {
    public var credits: Int
    public init(credits: Int) { self.credits = credits }
}

public enum WorkerState: String, Codable, Sendable {
    case loading, running, idle, draining
    /// Sent by the coordinator: a liveness beat to a known worker.
    case coordinator
    /// Sent by the coordinator to a peer it has no session for (after its restart, or after it
    /// dropped a silent worker): the worker must send HELLO again.
    case helloRequired = "hello_required"
}

public struct LeaseProgress: Codable, Sendable, Equatable {
    public var leaseId: Int64
    public var done: Int
    public init(leaseId: Int64, done: Int) { self.leaseId = leaseId; self.done = done }
}

public struct Heartbeat: Codable, Sendable, Equatable {
    public var state: WorkerState
    public var leases: [LeaseProgress]
    public init(state: WorkerState, leases: [LeaseProgress] = []) { self.state = state; self.leases = leases }
}

public struct ResultMessage: Codable, Sendable, Equatable {
    public var leaseId: Int64
    public var attempt: Int
    public var key: ResultKey
    public var engine: String
    public var device: String
    public var outcome: ExampleOutcome
    public var resultHash: String
    public init(leaseId: Int64, attempt: Int, key: ResultKey, engine: String, device: String,
                outcome: ExampleOutcome) {
        self.leaseId = leaseId; self.attempt = attempt; self.key = key; self.engine = engine
        self.device = device; self.outcome = outcome; self.resultHash = outcome.resultHash
    }
}

public struct ShardDone: Codable, Sendable, Equatable {
    public var leaseId: Int64
    public var nResults: Int
    public var digest: String
    public init(leaseId: Int64, nResults: Int, digest: String) {
        self.leaseId = leaseId; self.nResults = nResults; self.digest = digest
    }
}

public struct Fail: Codable, Sendable, Equatable {
    public var leaseId: Int64
    public var key: ResultKey?
    public var errorClass: FailureClass
    public var message: String
    public init(leaseId: Int64, key: ResultKey?, errorClass: FailureClass, message: String) {
        self.leaseId = leaseId; self.key = key; self.errorClass = errorClass; self.message = message
    }
}

public struct Bye: Codable, Sendable, Equatable {
    public var reason: String
    public init(reason: String) { self.reason = reason }
}

public struct Welcome: Codable, Sendable, Equatable {
    public var sessionId: String
    public var epoch: Int
    public var minor: UInt16
    public var heartbeatMs: Int
    public var leaseTtlMs: Int
    public var loadTtlMs: Int
    public var maxResultBytes: Int
    /// Examples per shard (a lease holds at most this many): a batched worker asks for enough leases
    /// to keep its batch full.
    public var shardSize: Int?
    /// The run's config hash (2.1): which spooled results of a worker belong to this run.
    public var configHash: String?
    public init(sessionId: String, epoch: Int, minor: UInt16, heartbeatMs: Int, leaseTtlMs: Int,
                loadTtlMs: Int, maxResultBytes: Int, shardSize: Int? = nil, configHash: String? = nil) {
        self.sessionId = sessionId; self.epoch = epoch; self.minor = minor; self.heartbeatMs = heartbeatMs
        self.leaseTtlMs = leaseTtlMs; self.loadTtlMs = loadTtlMs; self.maxResultBytes = maxResultBytes
        self.shardSize = shardSize; self.configHash = configHash
    }
}

public enum RejectReason: String, Codable, Sendable {
    case version, auth, engineUnsupported = "engine_unsupported", runMismatch = "run_mismatch"
    case numericsMismatch = "numerics_mismatch"
    case duplicateWorkerId = "duplicate_worker_id"
}

public struct Reject: Codable, Sendable, Equatable {
    public var reason: RejectReason
    /// Accepted protocol versions, e.g. "1.x".
    public var supported: String
    public var hint: String
    public init(reason: RejectReason, supported: String, hint: String) {
        self.reason = reason; self.supported = supported; self.hint = hint
    }
}

public struct Assign: Codable, Sendable, Equatable {
    public var leaseId: Int64
    public var shardId: Int
    public var attempt: Int
    public var expiresInMs: Int
    public var engine: String
    public var model: String
    public var configHash: String
    public var runSeed: UInt64
    /// Examples still to decode, in canonical order (committed ones are already left out).
    public var items: [ExampleRequest]
    /// Examples of the shard already committed (informational; never decoded again).
    public var skip: [ResultKey]
    public init(leaseId: Int64, shardId: Int, attempt: Int, expiresInMs: Int, engine: String,
                model: String, configHash: String, runSeed: UInt64, items: [ExampleRequest],
                skip: [ResultKey]) {
        self.leaseId = leaseId; self.shardId = shardId; self.attempt = attempt
        self.expiresInMs = expiresInMs; self.engine = engine; self.model = model
        self.configHash = configHash; self.runSeed = runSeed; self.items = items; self.skip = skip
    }
}

public struct Ack: Codable, Sendable, Equatable {
    public var keys: [ResultKey]
    public init(keys: [ResultKey]) { self.keys = keys }
}

public struct Cancel: Codable, Sendable, Equatable {
    public var leaseId: Int64
    public var reason: String
    public init(leaseId: Int64, reason: String) { self.leaseId = leaseId; self.reason = reason }
}

public struct Notice: Codable, Sendable, Equatable {
    public var reason: String
    public init(reason: String) { self.reason = reason }
}

/// A decoded protocol message.
public enum Message: Sendable, Equatable {
    case hello(Hello), ready(Ready), heartbeat(Heartbeat), result(ResultMessage)
    case shardDone(ShardDone), fail(Fail), bye(Bye)
    case welcome(Welcome), reject(Reject), assign(Assign), ack(Ack), cancel(Cancel)
    case pause(Notice), resume(Notice), shutdown(Notice)

    public var type: MessageType {
        switch self {
        case .hello: .hello
        case .ready: .ready
        case .heartbeat: .heartbeat
        case .result: .result
        case .shardDone: .shardDone
        case .fail: .fail
        case .bye: .bye
        case .welcome: .welcome
        case .reject: .reject
        case .assign: .assign
        case .ack: .ack
        case .cancel: .cancel
        case .pause: .pause
        case .resume: .resume
        case .shutdown: .shutdown
        }
    }
}

/// A message with its header, as it travels.
public struct Envelope: Sendable, Equatable {
    public var version: ProtocolVersion
    public var header: Header
    public var message: Message
    public init(version: ProtocolVersion = SiriusProtocol.version, header: Header, message: Message) {
        self.version = version; self.header = header; self.message = message
    }
}
