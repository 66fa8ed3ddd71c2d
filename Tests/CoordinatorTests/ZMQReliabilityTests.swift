import Foundation
import Testing
@testable import SiriusProtocol
@testable import sirius_coord

/// T9 over real ZeroMQ sockets on loopback: garbage that never speaks ZMTP, a peer sending malformed
/// frames, and a peer sending a message larger than the limit (libzmq drops that peer) — the
/// coordinator stays up, counts what it dropped, stores nothing of it, and real workers finish the
/// run with the baseline's results.
@Suite(.serialized, .timeLimit(.minutes(2))) struct ZMQReliabilityTests {
    /// Connects a plain TCP socket to `endpoint` (`tcp://127.0.0.1:PORT`), writes `bytes`, closes.
    private func rawTCP(_ endpoint: String, _ bytes: [UInt8]) throws {
        let port = try #require(UInt16(endpoint.split(separator: ":").last ?? ""))
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        try #require(rc == 0, "connect to \(endpoint): errno \(errno)")
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        usleep(50_000)
    }

    @Test func t9_garbageAndOversizedFramesOverZeroMQ() async throws {
        let config = TestRun.defaultConfig(examples: 12, shardSize: 4)
        let base = try await baseline(config)
        let run = try TestRun(config: config)
        let coordinator = try await ZMQCoordinator.start(run)
        let (endpoint, stats, outcome) = (coordinator.endpoint, coordinator.stats, coordinator.outcome)

        // 1. Bytes that are not ZMTP at all, twice (one connection each).
        try rawTCP(endpoint, Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        try rawTCP(endpoint, (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 131) })
        // 2. A ZeroMQ peer sending malformed messages, then one above the size limit.
        let sent: Bool = await onThread {
            guard let waker = try? PipeWaker(),
                  let bad = try? ZMQClient(connect: endpoint, identity: "garbage", serverKey: nil, waker: waker) else { return false }
            defer { Thread.sleep(forTimeInterval: 0.3); bad.close() }
            let good = Framing.encode(.ready(Ready(credits: 1)), header: Header())
            // ZMQ_IMMEDIATE: the first sends fail until the connection is up.
            let deadline = monotonicMs() + 5000
            var ok = false
            while !ok && monotonicMs() < deadline {
                ok = bad.send([Data("NOPE".utf8), good[1], good[2], good[3]])
                if !ok { Thread.sleep(forTimeInterval: 0.01) }
            }
            ok = ok && bad.send([good[0], good[1], Data("FROB".utf8), good[3]])
            ok = ok && bad.send([good[0], good[1], good[2], Data("{nope".utf8)])
            ok = ok && bad.send([Data()])
            ok = ok && bad.send([good[0], good[1], good[2], Data(count: SiriusProtocol.maxMessageBytes + 1)])
            return ok
        }
        #expect(sent)
        // 3. Real workers finish the run.
        let agents = (1...2).map { WorkerAgent(connector: ZMQConnector(endpoint: endpoint, serverKey: nil), engine: { FakeEngine() },
                                                options: workerOptions(id: "zmq\($0)")) }
        for a in agents { a.start() }
        let result: RunOutcome? = await onThread { outcome.pop(timeoutMs: 60_000) }
        for a in agents { a.kill(); _ = await onThread { a.waitForExit(timeoutMs: 5000) } }
        #expect(result == .completed)
        // The four malformed messages that reached the coordinator are counted; the oversized one and
        // the raw bytes never reach it (libzmq drops those peers).
        #expect(stats.malformed.total >= 4)
        #expect(try run.count("SELECT COUNT(*) FROM results WHERE run_id = ? AND worker_id = 'garbage'") == 0)
        #expect(try run.fingerprint() == base)
        try run.checkInvariants()
    }
}
