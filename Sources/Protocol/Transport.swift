import Foundation

/// Result of a send on the coordinator side. ZeroMQ's ROUTER is run with `ROUTER_MANDATORY`, so an
/// unknown or departed peer is reported instead of silently dropped (§3b).
public enum SendStatus: Sendable, Equatable {
    case sent
    case unreachable
    case wouldBlock
    case failed(Int32)
}

/// One inbound message on the coordinator side: the peer's routing id and the protocol frames.
public struct Inbound: Sendable {
    public var peer: Data
    public var frames: [Data]
    public init(peer: Data, frames: [Data]) { self.peer = peer; self.frames = frames }
}

/// The coordinator's bound socket. Not `Sendable`: created, used and closed by one thread.
public protocol ServerTransport: AnyObject {
    /// The address workers connect to (for TCP: the resolved port).
    var endpoint: String { get }
    /// Waits up to `timeoutMs` for one message.
    func receive(timeoutMs: Int) -> Inbound?
    func send(to peer: Data, _ frames: [Data]) -> SendStatus
    func close()
}

/// A worker's connection. Not `Sendable`: created, used and closed by the worker's I/O thread.
public protocol ClientTransport: AnyObject {
    /// Queues a message for the coordinator; false if the transport refused it (dropped).
    @discardableResult func send(_ frames: [Data]) -> Bool
    /// Waits up to `timeoutMs` for a message; returns nil on timeout or when woken.
    func receive(timeoutMs: Int) -> [Data]?
    func close()
    /// Closes after giving the messages already queued (a final BYE or FAIL) up to `ms` to leave,
    /// so that a process exiting right after still delivers them.
    func close(flushingWithinMs ms: Int)
}

extension ClientTransport {
    public func close(flushingWithinMs ms: Int) { close() }
}

/// Wakes a worker's I/O thread out of `receive` from another thread (the engine thread).
public protocol Waker: AnyObject, Sendable {
    func wake()
}

/// Makes worker connections. A reconnect makes a fresh transport with the same identity.
public protocol ClientConnector: Sendable {
    func makeWaker() throws -> any Waker
    func connect(identity: String, waker: any Waker) throws -> any ClientTransport
}

/// A value behind a lock.
public final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    public init(_ value: Value) { self.value = value }
    @discardableResult
    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock(); defer { lock.unlock() }
        return try body(&value)
    }
    public var current: Value { withLock { $0 } }
}

/// A FIFO queue a thread can block on, with a wake-up that makes a waiting `pop` return nil.
public final class BlockingQueue<Element: Sendable>: @unchecked Sendable {
    private let cond = NSCondition()
    private var items: [Element] = []
    private var head = 0
    private var woken = false

    public init() {}

    public func push(_ e: Element) {
        cond.lock(); items.append(e); cond.signal(); cond.unlock()
    }

    public func wake() {
        cond.lock(); woken = true; cond.broadcast(); cond.unlock()
    }

    public var count: Int { cond.lock(); defer { cond.unlock() }; return items.count - head }

    /// Waits up to `timeoutMs` (negative: forever) for an element; nil on timeout or wake-up.
    public func pop(timeoutMs: Int) -> Element? {
        cond.lock(); defer { cond.unlock() }
        let deadline = Date(timeIntervalSinceNow: Double(max(timeoutMs, 0)) / 1000)
        while head == items.count {
            if woken { woken = false; return nil }
            if timeoutMs < 0 { cond.wait() } else if !cond.wait(until: deadline) { break }
        }
        woken = false
        return takeLocked()
    }

    public func popNow() -> Element? {
        cond.lock(); defer { cond.unlock() }
        return takeLocked()
    }

    public func drain() -> [Element] {
        cond.lock(); defer { cond.unlock() }
        let out = Array(items[head...])
        items.removeAll(); head = 0
        return out
    }

    private func takeLocked() -> Element? {
        guard head < items.count else { return nil }
        let e = items[head]
        head += 1
        if head > 1024, head * 2 > items.count { items.removeFirst(head); head = 0 }
        return e
    }
}

/// Milliseconds on a monotonic clock (never the wall clock: T25).
public func monotonicMs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

/// Microseconds on a monotonic clock.
public func monotonicUs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
}
