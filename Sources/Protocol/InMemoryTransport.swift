import Foundation

/// An in-process stand-in for the ZeroMQ ROUTER/DEALER pair, for tests: same semantics where they
/// matter (routing ids, handover on reconnect, `unreachable` for departed peers, messages to a
/// dead coordinator are lost), no sockets and no threads of its own.
public final class InMemoryNetwork: @unchecked Sendable {
    private let lock = NSLock()
    private var servers: [String: InMemoryServer] = [:]

    public init() {}

    /// Binds a coordinator at `name`, replacing (and closing) a previous one: a coordinator restart.
    public func bind(_ name: String = "inmem://coordinator") -> InMemoryServer {
        let s = InMemoryServer(name: name)
        lock.lock(); let old = servers[name]; servers[name] = s; lock.unlock()
        old?.close()
        return s
    }

    func server(_ name: String) -> InMemoryServer? {
        lock.lock(); defer { lock.unlock() }
        return servers[name]
    }

    public func connector(_ name: String = "inmem://coordinator") -> InMemoryConnector {
        InMemoryConnector(network: self, name: name)
    }
}

public final class InMemoryServer: ServerTransport, @unchecked Sendable {
    public let endpoint: String
    let inbox = BlockingQueue<Inbound>()
    private let peers = Locked<[Data: BlockingQueue<[Data]>]>([:])
    private let closed = Locked(false)

    init(name: String) { endpoint = name }

    public func receive(timeoutMs: Int) -> Inbound? { inbox.pop(timeoutMs: timeoutMs) }

    public func send(to peer: Data, _ frames: [Data]) -> SendStatus {
        if closed.current { return .failed(-1) }
        guard let q = peers.withLock({ $0[peer] }) else { return .unreachable }
        q.push(frames)
        return .sent
    }

    public func close() {
        closed.withLock { $0 = true }
        peers.withLock { $0.removeAll() }
    }

    var isClosed: Bool { closed.current }

    /// Called on every client send, like a DEALER's (re)connection registering its routing id;
    /// a newer connection with the same id takes over (ROUTER_HANDOVER).
    func attach(_ id: Data, _ q: BlockingQueue<[Data]>) {
        peers.withLock { if $0[id] !== q { $0[id] = q } }
    }

    func detach(_ id: Data, _ q: BlockingQueue<[Data]>) {
        peers.withLock { if $0[id] === q { $0[id] = nil } }
    }
}

public struct InMemoryConnector: ClientConnector {
    let network: InMemoryNetwork
    let name: String

    public func makeWaker() throws -> any Waker { InMemoryWaker() }

    public func connect(identity: String, waker: any Waker) throws -> any ClientTransport {
        let c = InMemoryClient(network: network, name: name, identity: Data(identity.utf8))
        (waker as? InMemoryWaker)?.target.withLock { $0 = c.inbox }
        return c
    }
}

public final class InMemoryWaker: Waker {
    let target = Locked<BlockingQueue<[Data]>?>(nil)
    public func wake() { target.current?.wake() }
}

public final class InMemoryClient: ClientTransport {
    let network: InMemoryNetwork
    let name: String
    let identity: Data
    let inbox = BlockingQueue<[Data]>()
    private var closed = false

    init(network: InMemoryNetwork, name: String, identity: Data) {
        self.network = network; self.name = name; self.identity = identity
    }

    public func send(_ frames: [Data]) -> Bool {
        guard !closed, let s = network.server(name), !s.isClosed else { return false }
        s.attach(identity, inbox)
        s.inbox.push(Inbound(peer: identity, frames: frames))
        return true
    }

    public func receive(timeoutMs: Int) -> [Data]? { inbox.pop(timeoutMs: timeoutMs) }

    public func close() {
        closed = true
        network.server(name)?.detach(identity, inbox)
    }
}
