import Foundation
import SiriusProtocol

/// The workers the coordinator has a session with: who is behind which peer, what each offered in
/// HELLO and its credits (leases it asked for). The leases it holds are the scheduler's
/// (`Scheduler.leases(of:)`). No I/O.
struct WorkerRegistry {
    struct Session {
        var workerId: String
        var peer: Data
        var hello: Hello
        var credits = 0
        var lastSeen: Int64
    }

    private(set) var sessions: [String: Session] = [:]
    private var peerToWorker: [Data: String] = [:]

    var isEmpty: Bool { sessions.isEmpty }
    var count: Int { sessions.count }
    var all: [Session] { sessions.keys.sorted().map { sessions[$0]! } }

    func session(_ workerId: String) -> Session? { sessions[workerId] }

    /// The worker with a session behind `peer`, if any.
    func worker(at peer: Data) -> String? {
        guard let w = peerToWorker[peer], sessions[w] != nil else { return nil }
        return w
    }

    /// A worker (new, or the same id reconnecting from another peer) starts a session.
    mutating func admit(_ s: Session) {
        if let old = sessions[s.workerId] { peerToWorker[old.peer] = nil }
        sessions[s.workerId] = s
        peerToWorker[s.peer] = s.workerId
    }

    @discardableResult
    mutating func remove(_ workerId: String) -> Session? {
        guard let s = sessions.removeValue(forKey: workerId) else { return nil }
        peerToWorker[s.peer] = nil
        return s
    }

    mutating func heard(from workerId: String, now: Int64) { sessions[workerId]?.lastSeen = now }

    /// READY: the worker wants `n` more leases (never more than it offered in HELLO, at least one).
    mutating func addCredits(_ n: Int, to workerId: String) {
        guard var s = sessions[workerId] else { return }
        s.credits = min(max(0, s.credits + n), max(1, s.hello.maxCredits))
        sessions[workerId] = s
    }

    /// A lease was granted to the worker: one credit used.
    mutating func spendCredit(of workerId: String) { sessions[workerId]?.credits -= 1 }

    /// Examples a worker decodes at once (HELLO `batchSize`; 1 when it did not say).
    static func slots(_ s: Session) -> Int { max(1, s.hello.batchSize ?? 1) }

    /// Who gets the next lease among the workers with credits that `hasFreeSlot`: the most credits,
    /// then the fewest leases held (`leasesHeld`), then the smallest id.
    func nextForLease(hasFreeSlot: (Session) -> Bool, leasesHeld: (String) -> Int) -> String? {
        sessions.values.filter { $0.credits > 0 && hasFreeSlot($0) }
            .map { ($0.credits, -leasesHeld($0.workerId), $0.workerId) }
            .max(by: { ($0.0, $0.1, $1.2) < ($1.0, $1.1, $0.2) })?.2
    }

    /// Sessions not heard from for longer than `limitMs`.
    func silent(now: Int64, limitMs: Int) -> [Session] {
        sessions.values.filter { now - $0.lastSeen > Int64(limitMs) }.sorted { $0.workerId < $1.workerId }
    }
}
