import Foundation
import SiriusProtocol

/// Remote-worker security (§4.7 phase 1): a persisted CURVE server key pair and a random join
/// token, both mode 0600 under `--key-dir` (default `~/.sirius`).
struct CoordinatorSecrets {
    var keys: CurveKeyPair
    var token: String
    var keyPath: String
    var tokenPath: String

    static func loadOrCreate(keyDir: String) throws -> CoordinatorSecrets {
        let fm = FileManager.default
        try fm.createDirectory(atPath: keyDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let keyPath = (keyDir as NSString).appendingPathComponent("coord.key")
        let tokenPath = (keyDir as NSString).appendingPathComponent("join.token")
        let keys: CurveKeyPair
        if let data = fm.contents(atPath: keyPath) {
            keys = try JSONDecoder().decode(CurveKeyPair.self, from: data)
        } else {
            keys = try CurveKeyPair.generate()
            try write(JSONEncoder().encode(keys), to: keyPath)
        }
        let token: String
        if let data = fm.contents(atPath: tokenPath), let t = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !t.isEmpty {
            token = t
        } else {
            var bytes = [UInt8](repeating: 0, count: 32)   // 256-bit token
            var rng = SystemRandomNumberGenerator()
            for i in bytes.indices { bytes[i] = rng.next() }
            token = bytes.map { String(format: "%02x", $0) }.joined()
            try write(Data((token + "\n").utf8), to: tokenPath)
        }
        return CoordinatorSecrets(keys: keys, token: token, keyPath: keyPath, tokenPath: tokenPath)
    }

    private static func write(_ data: Data, to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw CoordinatorError("cannot write \(path)")
        }
    }
}
