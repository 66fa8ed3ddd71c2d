import Foundation
import Testing
@testable import SiriusProtocol

/// Runs `body` on a dedicated thread (sockets are never used from the cooperative pool) and
/// waits for it, bounded.
func onThread<T: Sendable>(timeoutMs: Int = 20_000, _ body: @escaping @Sendable () throws -> T) throws -> T {
    let box = BlockingQueue<Result<T, any Error>>()
    let t = Thread { box.push(Result { try body() }) }
    t.start()
    guard let r = box.pop(timeoutMs: timeoutMs) else { throw TestTimeout() }
    return try r.get()
}

struct TestTimeout: Error {}

@Suite struct TransportTests {
    @Test func inMemoryRoutesAndReportsDepartedPeers() throws {
        let net = InMemoryNetwork()
        let server = net.bind()
        let conn = net.connector()
        let waker = try conn.makeWaker()
        let client = try conn.connect(identity: "w1", waker: waker)
        #expect(client.send([Data("hi".utf8)]))
        let inbound = try #require(server.receive(timeoutMs: 1000))
        #expect(inbound.peer == Data("w1".utf8))
        #expect(server.send(to: inbound.peer, [Data("back".utf8)]) == .sent)
        #expect(client.receive(timeoutMs: 1000) == [Data("back".utf8)])
        waker.wake()
        #expect(client.receive(timeoutMs: 5000) == nil)
        client.close()
        #expect(server.send(to: inbound.peer, [Data("x".utf8)]) == .unreachable)
        // Coordinator restart: the old server is closed, the client reaches the new one.
        let client2 = try conn.connect(identity: "w1", waker: waker)
        let server2 = net.bind()
        #expect(client2.send([Data("again".utf8)]))
        #expect(server2.receive(timeoutMs: 1000)?.frames == [Data("again".utf8)])
    }

    @Test func zeroMQLoopbackRoundTrip() throws {
        try onThread {
            let server = try ZMQServer(bind: "tcp://127.0.0.1:*")
            #expect(server.endpoint.hasPrefix("tcp://127.0.0.1:"))
            let waker = try PipeWaker()
            let client = try ZMQClient(connect: server.endpoint, identity: "w-zmq", serverKey: nil, waker: waker)
            defer { client.close(); server.close() }
            let msg = Framing.encode(.ready(Ready(credits: 1)), header: Header())
            var inbound: Inbound?
            for _ in 0..<100 where inbound == nil {
                _ = client.send(msg)
                inbound = server.receive(timeoutMs: 100)
            }
            let got = try #require(inbound)
            #expect(got.peer == Data("w-zmq".utf8))
            #expect(try Framing.decode(got.frames).message == .ready(Ready(credits: 1)))
            #expect(server.send(to: got.peer, msg) == .sent)
            var back: [Data]?
            for _ in 0..<100 where back == nil { back = client.receive(timeoutMs: 100) }
            #expect(back == msg)
            #expect(server.send(to: Data("nobody".utf8), msg) == .unreachable)
        }
    }

    /// T11 (transport level): a client pinning the wrong server key never gets a message through.
    @Test func curveWithPinnedKeyWorksAndWrongKeyGetsNothing() throws {
        try #require(ZMQContext.hasCurve, "libzmq lacks CURVE support (Debian's libzmq3-dev has it); remote mode depends on it")
        try onThread {
            let keys = try CurveKeyPair.generate()
            let server = try ZMQServer(bind: "tcp://127.0.0.1:*", options: ZMQServerOptions(curveSecretKey: keys.secretKey))
            defer { server.close() }
            let good = try ZMQClient(connect: server.endpoint, identity: "good", serverKey: keys.publicKey, waker: nil)
            let bad = try ZMQClient(connect: server.endpoint, identity: "bad", serverKey: try CurveKeyPair.generate().publicKey, waker: nil)
            defer { good.close(); bad.close() }
            let msg = Framing.encode(.ready(Ready(credits: 1)), header: Header())
            var peers: Set<Data> = []
            for _ in 0..<50 {
                _ = good.send(msg)
                _ = bad.send(msg)
                if let i = server.receive(timeoutMs: 100) { peers.insert(i.peer) }
                if peers.contains(Data("good".utf8)) { break }
            }
            #expect(peers.contains(Data("good".utf8)))
            #expect(!peers.contains(Data("bad".utf8)))
        }
    }

    @Test func fakeEngineIsDeterministic() throws {
        let e = FakeEngine()
        let sirius = MethodSpec(name: "griffin-0.5+sirius", kind: .sirius, sparsity: .griffin, density: 0.5, period: 16)
        for method in [MethodSpec.full, sirius] {
            let r = ExampleRequest(task: "t", exampleId: "7", prompt: "What?", stop: [], maxNewTokens: 256,
                                   method: method, seed: 3)
            let a = try e.run(r), b = try e.run(r)
            #expect(a.resultHash == b.resultHash)
            if method.kind == .sirius {
                #expect(a.counters.densePasses > 0)
                #expect(a.counters.advancedTokens <= a.generatedTokens)
            }
        }
    }
}
