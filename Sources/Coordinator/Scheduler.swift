import SiriusProtocol

/// What is left to do, what is leased to whom, and what happens when a lease ends: the coordinator's
/// scheduling state (§4.3) with no socket, no database and no clock of its own, so that it can be
/// tested by itself. Time comes in as monotonic milliseconds; every change the store must record
/// comes out as an `Effect`, which the caller drains (`takeEffects`) and writes.
///
/// Rules: examples are leased in shards (a fixed split of a task × method, decided at run creation);
/// a lease names the shard's examples neither stored, failed, held by another lease nor awaited from
/// a worker's spool. A lease that ends by a fault (expiry, lost worker) counts a failure against
/// each unfinished example and against its shard; a shard that failed twice is split into single
/// examples; an example that failed `maxAttempts` times is declared failed. A worker is given the other
/// methods' shards of the examples it got last before new examples (its prefix cache holds their prompts). A lease handed back
/// without fault (BYE, cancel) requeues its examples and counts nothing.
struct Scheduler {
    struct Shard {
        /// Its examples, in canonical order.
        var keys: [ResultKey]
        var failures: Int
        var split: Bool
        var attempts: Int
    }

    /// A unit of pending work: a whole shard, or one example of a split shard.
    enum Unit: Equatable {
        case shard(Int), single(Int, ResultKey)

        var shardId: Int {
            switch self { case .shard(let id), .single(let id, _): id }
        }
    }

    struct Lease: Equatable {
        var id: Int64
        var shardId: Int
        var workerId: String
        var items: [ResultKey]
        var attempt: Int
        var expiresAt: Int64
    }

    /// A lease granted by `grant`: what the worker is told.
    struct Grant: Equatable {
        var lease: Lease
        /// The shard's examples already stored (informational for the worker).
        var skip: [ResultKey]
        fileprivate var unit: Unit
    }

    /// A change the store must record.
    enum Effect: Equatable {
        case leaseState(Int64, LeaseState)
        case shardState(shardId: Int, ShardState, failures: Int, split: Bool)
        case failure(ResultKey, attempt: Int, workerId: String, errorClass: String, message: String, final: Bool)
        case log(String)
    }

    let maxAttempts: Int
    private(set) var shards: [Int: Shard] = [:]
    private(set) var pending: [Unit] = []
    private(set) var leases: [Int64: Lease] = [:]
    private(set) var committed: Set<ResultKey> = []
    private(set) var failed: Set<ResultKey> = []
    private(set) var failureCounts: [ResultKey: Int] = [:]
    /// Results a worker announced from its spool, with the time by which they must arrive.
    private(set) var awaitingSpool: [ResultKey: Int64] = [:]
    private(set) var shardOf: [ResultKey: Int] = [:]
    /// Shards of the same examples (the methods of one example range) share a group.
    private var groupOf: [Int: Int] = [:]
    /// The group of each worker's latest lease.
    private var lastGroup: [String: Int] = [:]
    private(set) var totalKeys = 0
    private(set) var keysPerTask: [String: Int] = [:]
    private(set) var nextLeaseId: Int64
    private var effects: [Effect] = []

    /// The state of a run as the store holds it. `openLeases` (of an earlier incarnation) get
    /// `graceUntil` to be re-adopted by their workers before they expire.
    init(shards rows: [Store.ShardRow], keysOf: (Store.ShardRow) -> [ResultKey], committed: Set<ResultKey>,
         failureCounts: [ResultKey: Int], failed: Set<ResultKey>, openLeases: [Store.LeaseRow], nextLeaseId: Int64,
         maxAttempts: Int, graceUntil: Int64) {
        self.maxAttempts = maxAttempts
        self.committed = committed
        self.failureCounts = failureCounts
        self.failed = failed
        self.nextLeaseId = nextLeaseId
        var groups: [[String]: Int] = [:]
        for s in rows {
            let keys = keysOf(s)
            shards[s.shardId] = Shard(keys: keys, failures: s.failures, split: s.split, attempts: s.attempts)
            let examples = [s.task] + keys.map(\.exampleId)
            if groups[examples] == nil { groups[examples] = groups.count }
            groupOf[s.shardId] = groups[examples]!
            for k in keys { shardOf[k] = s.shardId }
            totalKeys += keys.count
            keysPerTask[s.task, default: 0] += keys.count
        }
        var leased: Set<ResultKey> = []
        for l in openLeases {
            leases[l.leaseId] = Lease(id: l.leaseId, shardId: l.shardId, workerId: l.workerId, items: l.items,
                                      attempt: l.attempt, expiresAt: graceUntil)
            leased.formUnion(l.items)
        }
        for id in shards.keys.sorted() {
            let s = shards[id]!
            let open = s.keys.filter { !isSettled($0) && !leased.contains($0) }
            if open.isEmpty { continue }
            if s.split { pending += open.map { .single(id, $0) } } else { pending.append(.shard(id)) }
        }
    }

    var isComplete: Bool { committed.count + failed.count >= totalKeys }
    var hasPendingWork: Bool { !pending.isEmpty }

    /// Stored or declared failed: nothing more to do for it.
    func isSettled(_ k: ResultKey) -> Bool { committed.contains(k) || failed.contains(k) }

    mutating func takeEffects() -> [Effect] {
        defer { effects.removeAll(keepingCapacity: true) }
        return effects
    }

    // MARK: granting

    /// The next lease for `workerId`, or nil when nothing is pending. Units with nothing left to
    /// lease (stored, failed, held or awaited meanwhile) are dropped on the way.
    mutating func grant(to workerId: String, now: Int64, ttlMs: Int) -> Grant? {
        while let next = nextUnit(for: workerId) {
            let unit = pending.remove(at: next)
            let shardId: Int
            let items: [ResultKey]
            switch unit {
            case .shard(let id):
                shardId = id
                let busy = Set(leases.values.filter { $0.shardId == id }.flatMap(\.items))
                items = shards[id]!.keys.filter { !isSettled($0) && !busy.contains($0) && awaitingSpool[$0] == nil }
            case .single(let id, let k):
                shardId = id
                items = isSettled(k) || awaitingSpool[k] != nil ? [] : [k]
            }
            if items.isEmpty { continue }
            shards[shardId]!.attempts += 1
            let lease = Lease(id: nextLeaseId, shardId: shardId, workerId: workerId, items: items,
                              attempt: shards[shardId]!.attempts, expiresAt: now + Int64(ttlMs))
            nextLeaseId += 1
            leases[lease.id] = lease
            lastGroup[workerId] = groupOf[shardId]
            return Grant(lease: lease, skip: shards[shardId]!.keys.filter { committed.contains($0) }, unit: unit)
        }
        return nil
    }

    /// Where in `pending` the next lease for `workerId` comes from: the first unit of the examples it was
    /// given last (another method on the same prompts, which its prefix cache holds), else the first whose
    /// examples no other worker holds, else the first.
    private func nextUnit(for workerId: String) -> Int? {
        guard !pending.isEmpty else { return nil }
        if let g = lastGroup[workerId], let i = pending.firstIndex(where: { groupOf[$0.shardId] == g }) { return i }
        let elsewhere = Set(leases.values.lazy.filter { $0.workerId != workerId }.compactMap { self.groupOf[$0.shardId] })
        return pending.firstIndex { !elsewhere.contains(groupOf[$0.shardId] ?? -1) } ?? 0
    }

    /// Takes back a grant the store could not record: as if it had never been made.
    mutating func revoke(_ g: Grant) {
        leases[g.lease.id] = nil
        shards[g.lease.shardId]?.attempts -= 1
        nextLeaseId = min(nextLeaseId, g.lease.id)
        pending.insert(g.unit, at: 0)
    }

    // MARK: leases

    /// Keeps the leases alive until `now + ttlMs` (the worker was heard from).
    mutating func extend(_ ids: some Sequence<Int64>, now: Int64, ttlMs: Int) {
        for id in ids { leases[id]?.expiresAt = now + Int64(ttlMs) }
    }

    /// A reconnecting worker says it still holds lease `id`: true if it is its lease (now active again).
    mutating func readopt(_ id: Int64, by workerId: String, now: Int64, ttlMs: Int) -> Bool {
        guard var l = leases[id], l.workerId == workerId else { return false }
        l.expiresAt = now + Int64(ttlMs)
        leases[id] = l
        effects.append(.leaseState(id, .active))
        return true
    }

    func leases(of workerId: String) -> [Int64] { leases.values.filter { $0.workerId == workerId }.map(\.id).sorted() }

    /// Examples leased to `workerId` and neither stored nor failed yet: the slots it has filled.
    func unfinished(of workerId: String) -> Int {
        leases.values.reduce(0) { n, l in l.workerId == workerId ? n + l.items.filter { !isSettled($0) }.count : n }
    }

    func lease(_ id: Int64) -> Lease? { leases[id] }

    /// Ends a lease. `requeueRemaining`: its examples neither stored nor failed go back to pending.
    /// A lease whose examples are all settled is `completed` whatever `state` says.
    mutating func close(_ id: Int64, requeueRemaining: Bool, state: LeaseState = .completed) {
        guard let l = leases.removeValue(forKey: id) else { return }
        let remaining = l.items.filter { !isSettled($0) }
        effects.append(.leaseState(id, remaining.isEmpty ? .completed : state))
        if requeueRemaining && !remaining.isEmpty { requeue(l.shardId, remaining) }
        if remaining.isEmpty, let s = shards[l.shardId], s.keys.allSatisfy(isSettled) {
            effects.append(.shardState(shardId: l.shardId, s.keys.allSatisfy { committed.contains($0) } ? .done : .failed,
                                       failures: s.failures, split: s.split))
        }
    }

    /// A lease that ended by a fault (`lease_expired`, `worker_lost`): a failure for its shard and for
    /// each unfinished example, then closed as expired and requeued. Returns the lease.
    @discardableResult
    mutating func fail(_ id: Int64, reason: String) -> Lease? {
        guard let l = leases[id] else { return nil }
        if var s = shards[l.shardId] {
            s.failures += 1
            if s.failures >= 2 { s.split = true }
            shards[l.shardId] = s
        }
        for k in l.items where !isSettled(k) {
            countFailure(k, attempt: l.attempt, workerId: l.workerId, errorClass: reason, message: "lease \(id) \(reason)")
        }
        close(id, requeueRemaining: true, state: .expired)
        return l
    }

    /// Leases whose time is up at `now`.
    func expired(at now: Int64) -> [Lease] { leases.values.filter { $0.expiresAt < now }.sorted { $0.id < $1.id } }

    /// Every lease ended without fault (the run was cancelled or nobody is left to work).
    mutating func releaseAll(state: LeaseState) {
        for id in leases.keys.sorted() { close(id, requeueRemaining: true, state: state) }
    }

    private mutating func requeue(_ shardId: Int, _ keys: [ResultKey]) {
        guard let s = shards[shardId] else { return }
        if s.split {
            pending.insert(contentsOf: keys.map { .single(shardId, $0) }, at: 0)
        } else {
            pending.insert(.shard(shardId), at: 0)
        }
        effects.append(.shardState(shardId: shardId, .pending, failures: s.failures, split: s.split))
    }

    // MARK: examples

    /// A result was stored.
    mutating func stored(_ k: ResultKey) {
        committed.insert(k)
        failed.remove(k)
        awaitingSpool[k] = nil
    }

    /// Those of `leaseIds` whose examples are now all settled.
    func leasesFinished(by leaseIds: some Sequence<Int64>) -> [Int64] {
        Set(leaseIds).filter { id in leases[id].map { $0.items.allSatisfy(isSettled) } ?? false }.sorted()
    }

    /// One failed attempt at `k`; the `maxAttempts`-th declares it failed.
    mutating func countFailure(_ k: ResultKey, attempt: Int, workerId: String, errorClass: String, message: String) {
        guard !isSettled(k) else { return }
        failureCounts[k, default: 0] += 1
        effects.append(.failure(k, attempt: attempt, workerId: workerId, errorClass: errorClass, message: message, final: false))
        if failureCounts[k]! >= maxAttempts {
            failed.insert(k)
            effects.append(.log("example \(k) failed \(failureCounts[k]!) times: declared failed (\(message))"))
            effects.append(.failure(k, attempt: attempt, workerId: workerId, errorClass: errorClass,
                                    message: "declared failed after \(failureCounts[k]!) attempts: \(message)", final: true))
        }
    }

    // MARK: spools

    /// A reconnecting worker holds these results decoded: do not lease them before `until`.
    mutating func awaitSpooled(_ keys: [ResultKey], until: Int64) {
        for k in keys where shardOf[k] != nil && !isSettled(k) { awaitingSpool[k] = until }
    }

    /// Awaited results that did not arrive by `now` go back to the queue.
    mutating func releaseAwaited(now: Int64) {
        guard !awaitingSpool.isEmpty else { return }
        for (k, deadline) in awaitingSpool.sorted(by: { $0.key.description < $1.key.description }) where deadline < now {
            awaitingSpool[k] = nil
            if !isSettled(k), let shard = shardOf[k] {
                effects.append(.log("result \(k) announced by a worker's spool did not arrive; leasing it again"))
                requeue(shard, [k])
            }
        }
    }

    /// Per task: stored, failed and total examples.
    func progress() -> [(task: String, done: Int, failed: Int, total: Int)] {
        var done: [String: Int] = [:], bad: [String: Int] = [:]
        for k in committed { done[k.task, default: 0] += 1 }
        for k in failed { bad[k.task, default: 0] += 1 }
        return keysPerTask.keys.sorted().map { ($0, done[$0] ?? 0, bad[$0] ?? 0, keysPerTask[$0]!) }
    }
}
