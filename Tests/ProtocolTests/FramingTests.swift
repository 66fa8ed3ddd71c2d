import Foundation
import Testing
@testable import SiriusProtocol

@Suite struct FramingTests {
    let header = Header(runId: "r1", epoch: 3, seq: 7)

    func sampleResult() -> ResultMessage {
        let outcome = ExampleOutcome(text: "The answer is 4.", promptTokens: 10, generatedTokens: 5, stopReason: "eos",
                                     counters: DecodeCounters(periods: 1, advancedTokens: 15))
        return ResultMessage(leaseId: 9, attempt: 1, key: ResultKey(task: "t", exampleId: "e1", method: "full"),
                             engine: "fake", device: "cpu", outcome: outcome)
    }

    @Test func roundTripsEveryMessageType() throws {
        let req = ExampleRequest(task: "t", exampleId: "e1", prompt: "p", stop: ["\n\n"], maxNewTokens: 8,
                                 method: .full, seed: 42)
        let messages: [Message] = [
            .hello(Hello(workerId: "w", hostname: "h", pid: 1, build: "b", engines: ["fake"], device: "cpu",
                         maxCredits: 1, token: nil, heldLeases: [1, 2], spoolCount: 0)),
            .ready(Ready(credits: 2)),
            .heartbeat(Heartbeat(state: .running, leases: [LeaseProgress(leaseId: 1, done: 3)])),
            .result(sampleResult()),
            .shardDone(ShardDone(leaseId: 1, nResults: 3, digest: "abc")),
            .fail(Fail(leaseId: 1, key: req.key, errorClass: .oom, message: "x")),
            .bye(Bye(reason: "drain")),
            .welcome(Welcome(sessionId: "s", epoch: 3, minor: 0, heartbeatMs: 100, leaseTtlMs: 500, loadTtlMs: 1000,
                             maxResultBytes: 1 << 20)),
            .reject(Reject(reason: .version, supported: "1.x", hint: "upgrade")),
            .assign(Assign(leaseId: 5, shardId: 2, attempt: 1, expiresInMs: 500, engine: "fake", model: "m",
                           configHash: "h", runSeed: 1, items: [req], skip: [])),
            .ack(Ack(keys: [req.key])),
            .cancel(Cancel(leaseId: 5, reason: "expired_reassigned")),
            .pause(Notice(reason: "disk full")), .resume(Notice(reason: "")), .shutdown(Notice(reason: "done")),
        ]
        #expect(Set(messages.map(\.type)) == Set(MessageType.allCases))
        for m in messages {
            let env = try Framing.decode(Framing.encode(m, header: header))
            #expect(env.message == m)
            #expect(env.header == header)
            #expect(env.version == SiriusProtocol.version)
        }
    }

    @Test func resultHashIgnoresTimings() {
        var a = sampleResult().outcome
        var b = a
        b.timings.totalSeconds = 99
        #expect(a.resultHash == b.resultHash)
        a.text += "!"
        #expect(a.resultHash != b.resultHash)
    }

    /// T9 (unit level): every kind of malformed input is classified, none crashes the decoder.
    @Test func malformedMessagesAreClassified() {
        let good = Framing.encode(.ready(Ready(credits: 1)), header: header)
        func err(_ frames: [Data]) -> FrameError? {
            do { _ = try Framing.decode(frames); return nil } catch { return error }
        }
        #expect(err([]) == .wrongFrameCount(0))
        #expect(err(Array(good.prefix(3))) == .wrongFrameCount(3))
        #expect(err([Data("NOPE".utf8)] + good.dropFirst()) == .badMagic)
        #expect(err([good[0], Data([1]), good[2], good[3]]) == .badVersionFrame)
        #expect(err([good[0], good[1], Data("FROB".utf8), good[3]]) == .unknownType("FROB"))
        if case .badPayload = err([good[0], good[1], good[2], Data("{not json".utf8)]) {} else { Issue.record("bad json") }
        let wrongType = Data(#"{"header":{"runId":"r","epoch":0,"seq":1},"body":{"credits":"many"}}"#.utf8)
        if case .badPayload = err([good[0], good[1], good[2], wrongType]) {} else { Issue.record("wrong field type") }
        let huge = Data(count: SiriusProtocol.maxMessageBytes + 1)
        if case .oversized = err([good[0], good[1], good[2], huge]) {} else { Issue.record("oversized") }
        #expect(err([Data(), Data(), Data(), Data()]) == .badMagic)
    }

    /// T10 (unit level): an older major is refused naming the accepted range; a newer minor with
    /// an extra field is accepted.
    @Test func olderMajorIsRefusedNewerMinorAccepted() throws {
        var env = Envelope(header: header, message: .ready(Ready(credits: 1)))
        for old in [ProtocolVersion(major: 0, minor: 9), ProtocolVersion(major: 1, minor: 0)] {
            env.version = old
            do {
                _ = try Framing.decode(Framing.encode(env))
                Issue.record("old major \(old) accepted")
            } catch {
                #expect(error == .incompatibleVersion(old))
                #expect(error.description.contains("accepts 2.x"))
            }
        }
        var frames = Framing.encode(.ready(Ready(credits: 2)), header: header)
        frames[1] = Data([0, 2, 0, 7])
        frames[3] = Data(#"{"header":{"runId":"r","epoch":0,"seq":1},"body":{"credits":2,"futureField":[1,2]}}"#.utf8)
        let decoded = try Framing.decode(frames)
        #expect(decoded.message == .ready(Ready(credits: 2)))
        #expect(decoded.version == ProtocolVersion(major: 2, minor: 7))
    }

    @Test func seedsArePureFunctions() {
        #expect(exampleSeed(runSeed: 1, task: "a", exampleId: "1") == exampleSeed(runSeed: 1, task: "a", exampleId: "1"))
        #expect(exampleSeed(runSeed: 1, task: "a", exampleId: "1") != exampleSeed(runSeed: 2, task: "a", exampleId: "1"))
        #expect(StableHasher.hash("ab", "c") != StableHasher.hash("a", "bc"))
    }

    @Test func loopbackEndpoints() {
        #expect(isLoopbackEndpoint("tcp://127.0.0.1:5555"))
        #expect(isLoopbackEndpoint("tcp://[::1]:5555"))
        #expect(isLoopbackEndpoint("ipc:///tmp/x.sock"))
        #expect(!isLoopbackEndpoint("tcp://0.0.0.0:5555"))
        #expect(!isLoopbackEndpoint("tcp://10.1.2.3:5555"))
        #expect(!isLoopbackEndpoint("tcp://*:5555"))
    }
}
