import CLibCrypto

/// SHA-256 as lowercase hex, from OpenSSL's libcrypto (Debian libssl-dev): the hashes that
/// lm-evaluation-harness writes into its samples and results files.
enum SHA256 {
    static func hex(_ text: String) -> String { hex(Array(text.utf8)) }

    static func hex(_ bytes: [UInt8]) -> String {
        var out = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        bytes.withUnsafeBufferPointer { b in out.withUnsafeMutableBufferPointer { o in _ = CLibCrypto.SHA256(b.baseAddress, b.count, o.baseAddress) } }
        return out.map { String(format: "%02x", $0) }.joined()
    }
}
