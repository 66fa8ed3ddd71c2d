import Foundation
import GRDB
import SiriusProtocol

/// Whether the store takes writes. A run commits results only while `ok`; `paused` keeps the results
/// in the workers' spools (no ACK) and retries with back-off; `failed` is an error retrying cannot
/// fix (a corrupt, read-only or vanished database): the run stops and says so.
enum StoreHealth: Equatable, CustomStringConvertible {
    case ok
    case paused(StorePause)
    case failed(String)

    var description: String {
        switch self {
        case .ok: "ok"
        case .paused(let p): "paused: \(p)"
        case .failed(let m): "failed: \(m)"
        }
    }

    /// How an error of the store changes its health.
    static func after(_ error: any Error, path: String) -> StoreHealth {
        if let db = error as? DatabaseError {
            switch db.resultCode {
            case .SQLITE_FULL: return .paused(.diskFull(path: path))
            case .SQLITE_CORRUPT, .SQLITE_NOTADB:
                return .failed("\(path) is corrupt (\(db.message ?? "\(db.resultCode)")); restore it from a copy, or start the run again in a new --db")
            case .SQLITE_READONLY:
                return .failed("\(path) is read-only (\(db.message ?? "\(db.resultCode)")); make it and its directory writable, then `sirius-coord resume`")
            default: break
            }
        }
        return .paused(.error("\(error)"))
    }
}

enum StorePause: Equatable, CustomStringConvertible {
    case diskFull(path: String)
    case error(String)

    var description: String {
        switch self {
        case .diskFull(let path): "disk full at \(path)"
        case .error(let m): "store error: \(m)"
        }
    }
}

/// Results received and not yet committed, and the store's health with its retry clock. The
/// coordinator commits the batch in one transaction and only then ACKs (§4.4).
struct ResultSink {
    struct Received {
        var peer: Data
        var workerId: String
        var message: ResultMessage
        var receivedUs: Int64
    }

    private(set) var batch: [Received] = []
    private(set) var health: StoreHealth = .ok
    private var retryAtMs: Int64 = 0
    private var backoffMs: Int64 = 100

    var isEmpty: Bool { batch.isEmpty }
    var canCommit: Bool { health == .ok }

    mutating func receive(_ r: Received) { batch.append(r) }

    /// Drops what must never be stored (results for unknown examples).
    mutating func keep(where include: (Received) -> Bool) { batch.removeAll { !include($0) } }

    mutating func clear() { batch.removeAll(keepingCapacity: true) }

    /// A commit failed. Returns the health before it (so the caller announces a pause once).
    @discardableResult
    mutating func commitFailed(_ error: any Error, path: String, now: Int64) -> StoreHealth {
        let before = health
        let next = StoreHealth.after(error, path: path)
        if case .failed = next { health = next; return before }
        if before == .ok { backoffMs = 100 }
        health = next
        retryAtMs = now + backoffMs
        backoffMs = min(backoffMs * 2, 5000)
        return before
    }

    /// Paused and its retry time has come: the caller tries to commit again (`health` stays paused
    /// until `recovered`).
    func shouldRetry(now: Int64) -> Bool {
        if case .paused = health { return now >= retryAtMs }
        return false
    }

    mutating func recovered() { health = .ok }
}
