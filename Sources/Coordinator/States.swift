/// The states the coordinator keeps, one enum per table column, shared by the scheduler and the
/// store (a test checks each against the `CHECK` list of its column). Raw values are what the
/// database holds.

/// `runs.status`: pending (created, never served) → running ⇄ paused (the store refused a write:
/// disk full or another error; retried) → completed | cancelled. `failed` is reserved for a run
/// that cannot go on (not used by this build).
enum RunStatus: String, CaseIterable, Sendable, Codable {
    case pending, running, paused, completed, failed, cancelled
}

/// `shards.state`: pending (some example still to lease) → leased (every open example is held by a
/// lease) → done (every example stored) | failed (every example stored or declared failed, at
/// least one failed). An expired lease puts its shard back to pending.
enum ShardState: String, CaseIterable, Sendable {
    case pending, leased, done, failed
}

/// `leases.state`: active → completed (all its examples stored or failed) | expired (TTL passed or
/// the worker was lost: its unfinished examples count a failure and go back to the queue) |
/// cancelled (handed back without fault: BYE, the worker could not run it, the run was cancelled or
/// abandoned). `orphaned` is reserved for leases of an earlier incarnation (this build re-adopts
/// them from `active` directly).
enum LeaseState: String, CaseIterable, Sendable {
    case active, orphaned, completed, expired, cancelled
}

/// `workers.state`: connected (HELLO accepted) → left (BYE) | lost (unreachable, or its
/// connection failed) | silent (no message for a lease TTL).
enum WorkerRecordState: String, CaseIterable, Sendable {
    case connected, left, lost, silent
}

/// `result_events.kind`: what happened to a result that was not the first for its example.
enum ResultEventKind: String, CaseIterable, Sendable {
    /// The same result again (a lost ACK, a re-sent spool).
    case duplicateSame = "duplicate_same"
    /// A different result for a stored example: non-determinism (first one kept).
    case duplicateConflict = "duplicate_conflict"
    /// A result from a lease that was no longer active, for an example still missing: stored.
    case lateAccepted = "late_accepted"
    /// A result from an expired lease for an example another lease already stored: ignored.
    case lateIgnored = "late_ignored"
}
