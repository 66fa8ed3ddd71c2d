import CZMQ
import Foundation

/// An error from libzmq, with the call that failed.
public struct ZMQError: Error, CustomStringConvertible, Sendable {
    public var call: String
    public var errno: Int32
    public init(_ call: String, errno: Int32 = zmq_errno()) { self.call = call; self.errno = errno }
    public var description: String { "\(call): \(String(cString: zmq_strerror(errno))) (errno \(errno))" }
}

/// The process-wide libzmq context. libzmq contexts are thread-safe; sockets are not.
public final class ZMQContext: @unchecked Sendable {
    public let raw: UnsafeMutableRawPointer
    public static let shared = ZMQContext()
    private init() { raw = zmq_ctx_new()! }

    public static var hasCurve: Bool { zmq_has("curve") != 0 }
    public static var libraryVersion: String {
        var a: Int32 = 0, b: Int32 = 0, c: Int32 = 0
        zmq_version(&a, &b, &c)
        return "\(a).\(b).\(c)"
    }
}

/// A CURVE key pair as 40-character Z85 text (§3).
public struct CurveKeyPair: Sendable, Codable, Equatable {
    public var publicKey: String
    public var secretKey: String

    public static func generate() throws -> CurveKeyPair {
        var pub = [CChar](repeating: 0, count: 41)
        var sec = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&pub, &sec) == 0 else { throw ZMQError("zmq_curve_keypair") }
        return CurveKeyPair(publicKey: cText(pub), secretKey: cText(sec))
    }
}

/// Text of a NUL-terminated C buffer.
func cText(_ buf: [CChar]) -> String {
    String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// True if `endpoint` can only be reached from this host (tcp on 127.0.0.0/8 or ::1, ipc, inproc).
public func isLoopbackEndpoint(_ endpoint: String) -> Bool {
    if endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") || endpoint.hasPrefix("inmem://") { return true }
    guard endpoint.hasPrefix("tcp://") else { return false }
    let rest = endpoint.dropFirst("tcp://".count)
    let host: Substring
    if rest.hasPrefix("[") { host = rest.dropFirst().prefix { $0 != "]" } } else { host = rest.prefix { $0 != ":" } }
    return host.hasPrefix("127.") || host == "::1" || host == "localhost"
}

/// Socket options shared by both ends.
enum ZMQSocket {
    static func setInt(_ s: UnsafeMutableRawPointer, _ opt: Int32, _ v: Int32) throws {
        var v = v
        guard zmq_setsockopt(s, opt, &v, MemoryLayout<Int32>.size) == 0 else { throw ZMQError("zmq_setsockopt(\(opt))") }
    }
    static func setInt64(_ s: UnsafeMutableRawPointer, _ opt: Int32, _ v: Int64) throws {
        var v = v
        guard zmq_setsockopt(s, opt, &v, MemoryLayout<Int64>.size) == 0 else { throw ZMQError("zmq_setsockopt(\(opt))") }
    }
    static func setString(_ s: UnsafeMutableRawPointer, _ opt: Int32, _ v: String) throws {
        let bytes = Array(v.utf8)
        guard bytes.withUnsafeBytes({ zmq_setsockopt(s, opt, $0.baseAddress, $0.count) }) == 0 else {
            throw ZMQError("zmq_setsockopt(\(opt))")
        }
    }

    /// Receives the remaining frames of one multipart message (non-blocking; call after POLLIN).
    static func receiveMultipart(_ s: UnsafeMutableRawPointer) -> [Data]? {
        var frames: [Data] = []
        while true {
            var msg = zmq_msg_t()
            zmq_msg_init(&msg)
            defer { zmq_msg_close(&msg) }
            let n = zmq_msg_recv(&msg, s, ZMQ_DONTWAIT)
            if n < 0 { return frames.isEmpty ? nil : frames }
            frames.append(Data(bytes: zmq_msg_data(&msg), count: Int(zmq_msg_size(&msg))))
            if zmq_msg_more(&msg) == 0 { return frames }
        }
    }

    /// Sends frames as one multipart message without blocking.
    static func sendMultipart(_ s: UnsafeMutableRawPointer, _ frames: [Data]) -> Int32 {
        for (i, f) in frames.enumerated() {
            let flags = ZMQ_DONTWAIT | (i + 1 < frames.count ? ZMQ_SNDMORE : 0)
            let rc = f.withUnsafeBytes { zmq_send(s, $0.baseAddress, $0.count, flags) }
            if rc < 0 { return zmq_errno() }
        }
        return 0
    }
}

/// Settings for the coordinator's ROUTER.
public struct ZMQServerOptions: Sendable {
    /// CURVE server secret key (Z85); nil = NULL mechanism (loopback only, or `--insecure`).
    public var curveSecretKey: String?
    public var heartbeatMs: Int32 = 1000
    public var heartbeatTimeoutMs: Int32 = 5000
    public init(curveSecretKey: String? = nil) { self.curveSecretKey = curveSecretKey }
}

/// The coordinator's ROUTER socket (§4.1). Owned by the coordinator's loop thread.
public final class ZMQServer: ServerTransport {
    private let socket: UnsafeMutableRawPointer
    public let endpoint: String
    private var closed = false

    public init(bind address: String, options: ZMQServerOptions = ZMQServerOptions()) throws {
        guard let s = zmq_socket(ZMQContext.shared.raw, ZMQ_ROUTER) else { throw ZMQError("zmq_socket") }
        socket = s
        do {
            try ZMQSocket.setInt(s, ZMQ_LINGER, 0)
            try ZMQSocket.setInt(s, ZMQ_ROUTER_MANDATORY, 1)
            try ZMQSocket.setInt(s, ZMQ_ROUTER_HANDOVER, 1)
            try ZMQSocket.setInt64(s, ZMQ_MAXMSGSIZE, Int64(SiriusProtocol.maxMessageBytes))
            try ZMQSocket.setInt(s, ZMQ_HEARTBEAT_IVL, options.heartbeatMs)
            try ZMQSocket.setInt(s, ZMQ_HEARTBEAT_TIMEOUT, options.heartbeatTimeoutMs)
            try ZMQSocket.setInt(s, ZMQ_SNDHWM, 100_000)
            try ZMQSocket.setInt(s, ZMQ_RCVHWM, 100_000)
            if let key = options.curveSecretKey {
                guard ZMQContext.hasCurve else { throw ZMQError("CURVE unavailable (libzmq built without libsodium)", errno: ENOTSUP) }
                try ZMQSocket.setInt(s, ZMQ_CURVE_SERVER, 1)
                try ZMQSocket.setString(s, ZMQ_CURVE_SECRETKEY, key)
            }
            guard zmq_bind(s, address) == 0 else { throw ZMQError("zmq_bind(\(address))") }
            var buf = [CChar](repeating: 0, count: 512)
            var len = buf.count
            zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, &buf, &len)
            endpoint = cText(buf)
        } catch {
            zmq_close(s)
            throw error
        }
    }

    public func receive(timeoutMs: Int) -> Inbound? {
        var item = zmq_pollitem_t(socket: socket, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
        if zmq_poll(&item, 1, timeoutMs) <= 0 { return nil }
        guard var frames = ZMQSocket.receiveMultipart(socket), !frames.isEmpty else { return nil }
        let peer = frames.removeFirst()
        return Inbound(peer: peer, frames: frames)
    }

    public func send(to peer: Data, _ frames: [Data]) -> SendStatus {
        let rc = ZMQSocket.sendMultipart(socket, [peer] + frames)
        switch rc {
        case 0: return .sent
        case EHOSTUNREACH: return .unreachable
        case EAGAIN: return .wouldBlock
        default: return .failed(rc)
        }
    }

    public func close() {
        guard !closed else { return }
        closed = true
        zmq_close(socket)
    }

    deinit { close() }
}

/// Wakes a poll from another thread through a non-blocking pipe, which `zmq_poll` can watch.
public final class PipeWaker: Waker, @unchecked Sendable {
    let readFD: Int32
    let writeFD: Int32

    public init() throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw ZMQError("pipe", errno: errno) }
        readFD = fds[0]; writeFD = fds[1]
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
    }

    public func wake() {
        var b: UInt8 = 1
        _ = write(writeFD, &b, 1)
    }

    func drain() {
        var buf = [UInt8](repeating: 0, count: 64)
        while read(readFD, &buf, buf.count) > 0 {}
    }

    deinit { Foundation.close(readFD); Foundation.close(writeFD) }
}

/// A worker's DEALER socket. Owned by the worker's I/O thread. It has a context of its own, so that
/// `close(flushingWithinMs:)` can wait for its last messages (zmq_ctx_term) without touching other sockets.
public final class ZMQClient: ClientTransport {
    private let context: UnsafeMutableRawPointer
    private let socket: UnsafeMutableRawPointer
    private let waker: PipeWaker?
    private var closed = false

    public init(connect endpoint: String, identity: String, serverKey: String?, waker: PipeWaker?) throws {
        guard let ctx = zmq_ctx_new() else { throw ZMQError("zmq_ctx_new") }
        guard let s = zmq_socket(ctx, ZMQ_DEALER) else { zmq_ctx_term(ctx); throw ZMQError("zmq_socket") }
        context = ctx
        socket = s
        self.waker = waker
        do {
            try ZMQSocket.setInt(s, ZMQ_LINGER, 0)
            try ZMQSocket.setString(s, ZMQ_ROUTING_ID, identity)
            try ZMQSocket.setInt(s, ZMQ_IMMEDIATE, 1)
            try ZMQSocket.setInt64(s, ZMQ_MAXMSGSIZE, Int64(SiriusProtocol.maxMessageBytes))
            try ZMQSocket.setInt(s, ZMQ_HEARTBEAT_IVL, 1000)
            try ZMQSocket.setInt(s, ZMQ_HEARTBEAT_TIMEOUT, 5000)
            try ZMQSocket.setInt(s, ZMQ_HEARTBEAT_TTL, 10000)
            try ZMQSocket.setInt(s, ZMQ_RECONNECT_IVL, 100)
            try ZMQSocket.setInt(s, ZMQ_RECONNECT_IVL_MAX, 5000)
            try ZMQSocket.setInt(s, ZMQ_SNDHWM, 100_000)
            if let serverKey {
                guard ZMQContext.hasCurve else { throw ZMQError("CURVE unavailable (libzmq built without libsodium)", errno: ENOTSUP) }
                let mine = try CurveKeyPair.generate()   // ephemeral client key (§4.7 phase 1)
                try ZMQSocket.setString(s, ZMQ_CURVE_SERVERKEY, serverKey)
                try ZMQSocket.setString(s, ZMQ_CURVE_PUBLICKEY, mine.publicKey)
                try ZMQSocket.setString(s, ZMQ_CURVE_SECRETKEY, mine.secretKey)
            }
            guard zmq_connect(s, endpoint) == 0 else { throw ZMQError("zmq_connect(\(endpoint))") }
        } catch {
            zmq_close(s)
            zmq_ctx_term(ctx)
            throw error
        }
    }

    public func send(_ frames: [Data]) -> Bool { ZMQSocket.sendMultipart(socket, frames) == 0 }

    public func receive(timeoutMs: Int) -> [Data]? {
        // Frames already queued are returned without polling.
        var items = [zmq_pollitem_t(socket: socket, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)]
        if let w = waker { items.append(zmq_pollitem_t(socket: nil, fd: w.readFD, events: Int16(ZMQ_POLLIN), revents: 0)) }
        if zmq_poll(&items, Int32(items.count), timeoutMs) <= 0 { return nil }
        if items.count > 1, items[1].revents != 0 { waker?.drain() }
        if items[0].revents != 0 { return ZMQSocket.receiveMultipart(socket) }
        return nil
    }

    public func close() { close(flushingWithinMs: 0) }

    /// Queued messages get up to `ms` to reach the coordinator (linger), then are dropped.
    public func close(flushingWithinMs ms: Int) {
        guard !closed else { return }
        closed = true
        try? ZMQSocket.setInt(socket, ZMQ_LINGER, Int32(max(0, ms)))
        zmq_close(socket)
        zmq_ctx_term(context)
    }

    deinit { close() }
}

/// Connects workers over ZeroMQ; `serverKey` pins the coordinator's CURVE key.
public struct ZMQConnector: ClientConnector {
    public var endpoint: String
    public var serverKey: String?
    public init(endpoint: String, serverKey: String?) { self.endpoint = endpoint; self.serverKey = serverKey }
    public func makeWaker() throws -> any Waker { try PipeWaker() }
    public func connect(identity: String, waker: any Waker) throws -> any ClientTransport {
        try ZMQClient(connect: endpoint, identity: identity, serverKey: serverKey, waker: waker as? PipeWaker)
    }
}
