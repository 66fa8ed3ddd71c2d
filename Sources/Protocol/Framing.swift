import Foundation

/// Why an inbound message was dropped. Each case is counted (`FrameStats`) and logged by the
/// receiver; none of them stops the receiver.
public enum FrameError: Error, Sendable, Equatable, CustomStringConvertible {
    case wrongFrameCount(Int)
    case badMagic
    case badVersionFrame
    /// A peer speaking a major this build does not accept; the receiver answers `REJECT version`.
    case incompatibleVersion(ProtocolVersion)
    case unknownType(String)
    case badPayload(type: String, detail: String)
    case oversized(Int)

    public var description: String {
        switch self {
        case .wrongFrameCount(let n): "wrong frame count \(n) (expected 4)"
        case .badMagic: "bad magic (expected \(SiriusProtocol.magic))"
        case .badVersionFrame: "bad version frame (expected 4 bytes)"
        case .incompatibleVersion(let v):
            "protocol \(v) not accepted; this build accepts \(SiriusProtocol.acceptedDescription)"
        case .unknownType(let t): "unknown message type \(t.debugDescription)"
        case .badPayload(let t, let d): "malformed \(t) payload: \(d)"
        case .oversized(let n): "message of \(n) bytes exceeds \(SiriusProtocol.maxMessageBytes)"
        }
    }
}

/// Wire format (§4.1): frames `"SIRIUS" | u16 major, u16 minor (big endian) | type | JSON payload`.
/// The JSON payload is `{"header": Header, "body": <type's payload>}`; unknown fields are ignored.
public enum Framing {
    private struct Payload<Body: Codable>: Codable {
        var header: Header
        var body: Body
    }

    private struct HeaderOnly: Decodable { var header: Header }

    public static func encode(_ env: Envelope) -> [Data] {
        let version = Data([UInt8(env.version.major >> 8), UInt8(env.version.major & 0xff),
                            UInt8(env.version.minor >> 8), UInt8(env.version.minor & 0xff)])
        return [Data(SiriusProtocol.magic.utf8), version, Data(env.message.type.rawValue.utf8),
                payload(env.header, env.message)]
    }

    public static func encode(_ message: Message, header: Header) -> [Data] {
        encode(Envelope(header: header, message: message))
    }

    private static func payload(_ h: Header, _ m: Message) -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        func e<T: Codable>(_ b: T) -> Data {
            // Encoding our own Codable value types cannot fail (no non-finite doubles are produced).
            (try? enc.encode(Payload(header: h, body: b))) ?? Data("{}".utf8)
        }
        switch m {
        case .hello(let b): return e(b)
        case .ready(let b): return e(b)
        case .heartbeat(let b): return e(b)
        case .result(let b): return e(b)
        case .shardDone(let b): return e(b)
        case .fail(let b): return e(b)
        case .bye(let b): return e(b)
        case .welcome(let b): return e(b)
        case .reject(let b): return e(b)
        case .assign(let b): return e(b)
        case .ack(let b): return e(b)
        case .cancel(let b): return e(b)
        case .pause(let b), .resume(let b), .shutdown(let b): return e(b)
        }
    }

    /// Reads the version frame only, so an incompatible peer can be answered without parsing more.
    public static func peekVersion(_ frames: [Data]) -> ProtocolVersion? {
        guard frames.count == 4, frames[1].count == 4 else { return nil }
        let b = [UInt8](frames[1])
        return ProtocolVersion(major: UInt16(b[0]) << 8 | UInt16(b[1]), minor: UInt16(b[2]) << 8 | UInt16(b[3]))
    }

    public static func decode(_ frames: [Data]) throws(FrameError) -> Envelope {
        let size = frames.reduce(0) { $0 + $1.count }
        guard size <= SiriusProtocol.maxMessageBytes else { throw .oversized(size) }
        guard frames.count == 4 else { throw .wrongFrameCount(frames.count) }
        guard frames[0] == Data(SiriusProtocol.magic.utf8) else { throw .badMagic }
        guard let version = peekVersion(frames) else { throw .badVersionFrame }
        guard SiriusProtocol.acceptedMajors.contains(version.major) else { throw .incompatibleVersion(version) }
        guard let typeName = String(data: frames[2], encoding: .utf8) else { throw .unknownType("<binary>") }
        guard let type = MessageType(rawValue: typeName) else { throw .unknownType(typeName) }
        let data = frames[3]
        let dec = JSONDecoder()
        func d<T: Codable>(_: T.Type) throws(FrameError) -> (Header, T) {
            do {
                let p = try dec.decode(Payload<T>.self, from: data)
                return (p.header, p.body)
            } catch {
                throw .badPayload(type: typeName, detail: String(describing: error).prefix(200).description)
            }
        }
        let header: Header
        let message: Message
        switch type {
        case .hello: let (h, b) = try d(Hello.self); header = h; message = .hello(b)
        case .ready: let (h, b) = try d(Ready.self); header = h; message = .ready(b)
        case .heartbeat: let (h, b) = try d(Heartbeat.self); header = h; message = .heartbeat(b)
        case .result: let (h, b) = try d(ResultMessage.self); header = h; message = .result(b)
        case .shardDone: let (h, b) = try d(ShardDone.self); header = h; message = .shardDone(b)
        case .fail: let (h, b) = try d(Fail.self); header = h; message = .fail(b)
        case .bye: let (h, b) = try d(Bye.self); header = h; message = .bye(b)
        case .welcome: let (h, b) = try d(Welcome.self); header = h; message = .welcome(b)
        case .reject: let (h, b) = try d(Reject.self); header = h; message = .reject(b)
        case .assign: let (h, b) = try d(Assign.self); header = h; message = .assign(b)
        case .ack: let (h, b) = try d(Ack.self); header = h; message = .ack(b)
        case .cancel: let (h, b) = try d(Cancel.self); header = h; message = .cancel(b)
        case .pause: let (h, b) = try d(Notice.self); header = h; message = .pause(b)
        case .resume: let (h, b) = try d(Notice.self); header = h; message = .resume(b)
        case .shutdown: let (h, b) = try d(Notice.self); header = h; message = .shutdown(b)
        }
        return Envelope(version: version, header: header, message: message)
    }
}

/// Counts of dropped inbound messages, by reason. Shared by a receiver and whoever reports on it.
public final class FrameStats: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [String: Int] = [:]

    public init() {}

    public func record(_ error: FrameError) {
        let key: String = switch error {
        case .wrongFrameCount: "wrong_frame_count"
        case .badMagic: "bad_magic"
        case .badVersionFrame: "bad_version_frame"
        case .incompatibleVersion: "incompatible_version"
        case .unknownType: "unknown_type"
        case .badPayload: "bad_payload"
        case .oversized: "oversized"
        }
        record(key)
    }

    public func record(_ key: String) {
        lock.lock(); counts[key, default: 0] += 1; lock.unlock()
    }

    public var snapshot: [String: Int] { lock.lock(); defer { lock.unlock() }; return counts }
    public var total: Int { snapshot.values.reduce(0, +) }
}
