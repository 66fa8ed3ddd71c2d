import GRDB
import Testing
@testable import SiriusProtocol
@testable import sirius_coord

/// The scheduler by itself: no socket, no database, time passed in.
@Suite struct SchedulerTests {
    /// One task of `examples` examples, one method, shards of `shardSize`.
    func scheduler(examples: Int = 6, shardSize: Int = 3, committed: Set<ResultKey> = [], open: [Store.LeaseRow] = [],
                   maxAttempts: Int = 3) -> Scheduler {
        var rows: [Store.ShardRow] = []
        var first = 0, id = 0
        while first < examples {
            rows.append(Store.ShardRow(shardId: id, task: "t", method: "full", firstOrd: first, count: min(shardSize, examples - first),
                                       failures: 0, split: false, attempts: 0))
            first += shardSize; id += 1
        }
        return Scheduler(shards: rows, keysOf: { s in (s.firstOrd..<s.firstOrd + s.count).map(key) }, committed: committed,
                         failureCounts: [:], failed: [], openLeases: open, nextLeaseId: 10, maxAttempts: maxAttempts, graceUntil: 5_000)
    }

    /// The next grant, which must exist.
    func take(_ s: inout Scheduler, to w: String, now: Int64, ttlMs: Int) throws -> Scheduler.Grant {
        let g = s.grant(to: w, now: now, ttlMs: ttlMs)
        return try #require(g)
    }

    func key(_ i: Int) -> ResultKey { ResultKey(task: "t", exampleId: String(format: "%06d", i), method: "full") }

    @Test func grantsShardsInOrderSkippingWhatIsStored() throws {
        var s = scheduler(committed: [key(1)])
        let a = try take(&s, to: "w1", now: 0, ttlMs: 100)
        #expect(a.lease.id == 10 && a.lease.shardId == 0 && a.lease.attempt == 1)
        #expect(a.lease.items == [key(0), key(2)] && a.skip == [key(1)])
        #expect(a.lease.expiresAt == 100)
        let b = try take(&s, to: "w2", now: 0, ttlMs: 100)
        #expect(b.lease.id == 11 && b.lease.items == [key(3), key(4), key(5)])
        let none1 = s.grant(to: "w1", now: 0, ttlMs: 100); #expect(none1 == nil)
        #expect(s.leases(of: "w1") == [10])
    }

    @Test func aRevokedGrantIsAsIfNeverMade() throws {
        var s = scheduler()
        let g = try take(&s, to: "w1", now: 0, ttlMs: 100)
        s.revoke(g)
        let again = try take(&s, to: "w2", now: 0, ttlMs: 100)
        #expect(again.lease.id == g.lease.id && again.lease.attempt == 1 && again.lease.items == g.lease.items)
    }

    @Test func storingEveryItemFinishesTheLeaseAndTheShard() throws {
        var s = scheduler()
        let g = try take(&s, to: "w1", now: 0, ttlMs: 100)
        for k in g.lease.items.dropLast() { s.stored(k) }
        #expect(s.leasesFinished(by: [g.lease.id]).isEmpty)
        s.stored(g.lease.items.last!)
        #expect(s.leasesFinished(by: [g.lease.id]) == [g.lease.id])
        _ = s.takeEffects()
        s.close(g.lease.id, requeueRemaining: false)
        let closed = s.takeEffects()
        #expect(closed == [.leaseState(g.lease.id, .completed), .shardState(shardId: 0, .done, failures: 0, split: false)])
    }

    /// A lease that expires counts one failure per unfinished example and against its shard; the
    /// second failure splits the shard into single examples; the third attempt at an example
    /// declares it failed.
    @Test func faultsSplitShardsAndDeclareExamplesFailed() throws {
        var s = scheduler(examples: 3, shardSize: 3)
        let first = try take(&s, to: "w1", now: 0, ttlMs: 100)
        s.stored(key(0))
        #expect(s.expired(at: 50).isEmpty)
        #expect(s.expired(at: 101).map(\.id) == [first.lease.id])
        _ = s.takeEffects()
        s.fail(first.lease.id, reason: "lease_expired")
        let effects = s.takeEffects()
        #expect(effects.contains(.leaseState(first.lease.id, .expired)))
        #expect(effects.filter { if case .failure(_, _, _, _, _, false) = $0 { true } else { false } }.count == 2)
        #expect(s.shards[0]?.split == false)

        let second = try take(&s, to: "w2", now: 200, ttlMs: 100)
        #expect(second.lease.items == [key(1), key(2)] && second.lease.attempt == 2)
        s.fail(second.lease.id, reason: "worker_lost")
        #expect(s.shards[0]?.split == true)
        // Split: one example per lease from now on.
        let third = try take(&s, to: "w3", now: 300, ttlMs: 100)
        #expect(third.lease.items.count == 1)
        s.fail(third.lease.id, reason: "lease_expired")
        #expect(s.failed.contains(third.lease.items[0]))
        let last = s.takeEffects()
        #expect(last.contains { if case .failure(let k, _, _, _, _, true) = $0 { k == third.lease.items[0] } else { false } })
        #expect(!s.isComplete)
    }

    /// Shards of the same examples under other methods go to the worker that has those prompts cached;
    /// a worker starting on new examples takes ones no other worker holds.
    @Test func aWorkerKeepsItsExamplesAcrossMethods() throws {
        var rows: [Store.ShardRow] = []
        for (id, (first, method)) in [(0, "full"), (0, "griffin"), (0, "sirius"), (3, "full"), (3, "griffin"), (3, "sirius")].enumerated() {
            rows.append(Store.ShardRow(shardId: id, task: "t", method: method, firstOrd: first, count: 3, failures: 0, split: false, attempts: 0))
        }
        var s = Scheduler(shards: rows, keysOf: { r in (r.firstOrd..<r.firstOrd + 3).map { ResultKey(task: "t", exampleId: String($0), method: r.method) } },
                          committed: [], failureCounts: [:], failed: [], openLeases: [], nextLeaseId: 1, maxAttempts: 3, graceUntil: 0)
        var order: [String] = []
        for w in ["w1", "w2", "w1", "w2", "w1", "w2"] {
            let g = try take(&s, to: w, now: 0, ttlMs: 100)
            order.append("\(w):\(g.lease.shardId)")
        }
        #expect(order == ["w1:0", "w2:3", "w1:1", "w2:4", "w1:2", "w2:5"])
        let none = s.grant(to: "w1", now: 0, ttlMs: 100); #expect(none == nil)
    }

    /// BYE or a cancel hands the examples back without counting anything against them.
    @Test func aLeaseHandedBackCountsNoFailure() throws {
        var s = scheduler()
        let g = try take(&s, to: "w1", now: 0, ttlMs: 100)
        s.close(g.lease.id, requeueRemaining: true, state: .cancelled)
        #expect(s.failureCounts.isEmpty)
        let handedBack = s.takeEffects()
        #expect(handedBack.first == .leaseState(g.lease.id, .cancelled))
        let again = try take(&s, to: "w2", now: 0, ttlMs: 100)
        #expect(again.lease.items == g.lease.items && again.lease.attempt == 2)
    }

    /// Results a restarted worker announces from its spool are not leased until they arrive or the
    /// wait ends.
    @Test func spooledResultsAreAwaitedThenReleased() throws {
        var s = scheduler(examples: 3, shardSize: 3)
        s.awaitSpooled([key(0), key(1)], until: 1_000)
        let g = try take(&s, to: "w1", now: 0, ttlMs: 100)
        #expect(g.lease.items == [key(2)])
        s.stored(key(0))
        s.releaseAwaited(now: 500)
        let none2 = s.grant(to: "w2", now: 500, ttlMs: 100); #expect(none2 == nil)
        s.releaseAwaited(now: 1_001)   // key(1) never came
        let late = try take(&s, to: "w2", now: 1_001, ttlMs: 100)
        #expect(late.lease.items == [key(1)])
    }

    /// Leases of an earlier incarnation: not pending, re-adoptable by their worker until the grace
    /// period ends, then expired like any other.
    @Test func orphanedLeasesAreReadoptedOrExpire() throws {
        let open = [Store.LeaseRow(leaseId: 3, shardId: 0, workerId: "old", attempt: 1, items: [key(0), key(1), key(2)])]
        var s = scheduler(open: open)
        let g = try take(&s, to: "w1", now: 0, ttlMs: 100)
        #expect(g.lease.shardId == 1)
        let none3 = s.grant(to: "w1", now: 0, ttlMs: 100); #expect(none3 == nil)
        let stranger = s.readopt(3, by: "someone-else", now: 0, ttlMs: 100)
        #expect(!stranger)
        #expect(s.expired(at: 5_001).map(\.id) == [3, g.lease.id].sorted())
        let owner = s.readopt(3, by: "old", now: 5_001, ttlMs: 100)
        #expect(owner)
        #expect(s.expired(at: 5_050).map(\.id) == [g.lease.id])
    }
}

/// The store's health: which errors pause the run (and retry with back-off) and which fail it.
@Suite struct StoreHealthTests {
    @Test func errorsMapToPauseOrFailure() {
        #expect(StoreHealth.after(DatabaseError(resultCode: .SQLITE_FULL), path: "/x.sqlite") == .paused(.diskFull(path: "/x.sqlite")))
        #expect(StoreHealth.after(DatabaseError(resultCode: .SQLITE_BUSY), path: "/x.sqlite") != .ok)
        if case .paused(.error) = StoreHealth.after(DatabaseError(resultCode: .SQLITE_IOERR), path: "/x.sqlite") {} else { Issue.record("I/O error should pause") }
        for code in [ResultCode.SQLITE_CORRUPT, .SQLITE_NOTADB, .SQLITE_READONLY] {
            if case .failed(let m) = StoreHealth.after(DatabaseError(resultCode: code), path: "/x.sqlite") {
                #expect(m.contains("/x.sqlite"))
            } else { Issue.record("\(code) should fail the run") }
        }
    }

    @Test func pausedRetriesWithGrowingBackoff() {
        var sink = ResultSink()
        let full = DatabaseError(resultCode: .SQLITE_FULL)
        #expect(sink.commitFailed(full, path: "p", now: 0) == .ok)
        #expect(!sink.canCommit && !sink.shouldRetry(now: 99) && sink.shouldRetry(now: 100))
        #expect(sink.commitFailed(full, path: "p", now: 100) == .paused(.diskFull(path: "p")))
        #expect(!sink.shouldRetry(now: 299) && sink.shouldRetry(now: 300))
        sink.recovered()
        #expect(sink.canCommit && sink.health == .ok)
    }
}
