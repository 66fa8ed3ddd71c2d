/// Token text (UTF-8 bytes) → id, as an open-addressing hash table over one flat byte buffer.
///
/// Keys are compared byte for byte. (Swift `String` keys would compare by canonical equivalence and merge
/// vocab entries such as "é" and "e\u{301}", which are different tokens.)
struct TokenTable: Sendable {
    /// All token texts, concatenated; token `i` is `bytes[offsets[i] ..< offsets[i + 1]]`.
    let bytes: [UInt8]
    let offsets: [Int32]
    private let slots: [Int32]
    private let mask: Int

    var count: Int { offsets.count - 1 }

    init(tokens: [String]) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(tokens.count * 8)
        var offsets: [Int32] = [0]
        offsets.reserveCapacity(tokens.count + 1)
        for t in tokens {
            bytes.append(contentsOf: t.utf8)
            offsets.append(Int32(bytes.count))
        }
        self.init(bytes: bytes, offsets: offsets)
    }

    init(bytes: [UInt8], offsets: [Int32]) {
        self.bytes = bytes
        self.offsets = offsets
        let n = offsets.count - 1
        var cap = 16
        while cap < n * 2 { cap <<= 1 }
        mask = cap - 1
        var slots = [Int32](repeating: -1, count: cap)
        bytes.withUnsafeBufferPointer { all in
            for id in 0..<n {
                let s = Int(offsets[id]), e = Int(offsets[id + 1])
                let key = UnsafeBufferPointer(rebasing: all[s..<e])
                var h = Int(truncatingIfNeeded: TokenTable.hash(key)) & (cap - 1)
                while true {
                    let cur = slots[h]
                    if cur < 0 { slots[h] = Int32(id); break }
                    let cs = Int(offsets[Int(cur)]), ce = Int(offsets[Int(cur) + 1])
                    // Duplicate text: the first id keeps it.
                    if ce - cs == e - s && memcmpEqual(all.baseAddress! + cs, key.baseAddress, e - s) { break }
                    h = (h + 1) & (cap - 1)
                }
            }
        }
        self.slots = slots
    }

    @inline(__always)
    static func hash(_ p: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in p { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h ^ (h >> 29)
    }

    func lookup(_ key: UnsafeBufferPointer<UInt8>) -> Int32? {
        bytes.withUnsafeBufferPointer { all in
            var h = Int(truncatingIfNeeded: TokenTable.hash(key)) & mask
            while true {
                let cur = slots[h]
                if cur < 0 { return nil }
                let cs = Int(offsets[Int(cur)]), ce = Int(offsets[Int(cur) + 1])
                if ce - cs == key.count && memcmpEqual(all.baseAddress.map { $0 + cs }, key.baseAddress, key.count) {
                    return cur
                }
                h = (h + 1) & mask
            }
        }
    }

    func lookup(_ key: [UInt8]) -> Int32? { key.withUnsafeBufferPointer { lookup($0) } }
    func lookup(_ key: String) -> Int32? {
        var k = key
        return k.withUTF8 { lookup($0) }
    }

    func textBytes(_ id: Int) -> ArraySlice<UInt8> { bytes[Int(offsets[id])..<Int(offsets[id + 1])] }
    func text(_ id: Int) -> String { String(decoding: textBytes(id), as: UTF8.self) }
}

@inline(__always)
func memcmpEqual(_ a: UnsafePointer<UInt8>?, _ b: UnsafePointer<UInt8>?, _ n: Int) -> Bool {
    if n == 0 { return true }
    guard let a, let b else { return false }
    var i = 0
    while i < n {
        if a[i] != b[i] { return false }
        i += 1
    }
    return true
}
