/// GPT-2's reversible byte ↔ unicode mapping (`bytes_to_unicode`): printable Latin-1 bytes map to
/// themselves, the other 68 bytes to U+0100... in byte order.
enum ByteLevel {
    /// byte → unicode scalar value
    static let byteToScalar: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var extra: UInt32 = 0
        for b in 0..<256 {
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
                table[b] = UInt32(b)
            } else {
                table[b] = 256 + extra
                extra += 1
            }
        }
        return table
    }()

    /// unicode scalar value (< 0x144) → byte, or -1
    static let scalarToByte: [Int16] = {
        var t = [Int16](repeating: -1, count: 0x144)
        for (b, s) in byteToScalar.enumerated() { t[Int(s)] = Int16(b) }
        return t
    }()

    /// UTF-8 of the mapped character of each byte.
    static let byteToUTF8: [[UInt8]] = byteToScalar.map { Array(String(Character(Unicode.Scalar($0)!)).utf8) }

    /// Maps a token's text back to raw bytes; nil if some character is not in the mapping (HF then keeps
    /// the token's own UTF-8, e.g. for added tokens).
    static func decode(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.count)
        var i = text.startIndex
        while i < text.endIndex {
            let b0 = text[i]
            var v: UInt32
            if b0 < 0x80 { v = UInt32(b0); i += 1 }
            else if b0 & 0xE0 == 0xC0, i + 1 < text.endIndex { v = UInt32(b0 & 0x1F) << 6 | UInt32(text[i + 1] & 0x3F); i += 2 }
            else { return nil }
            guard v < 0x144, scalarToByte[Int(v)] >= 0 else { return nil }
            out.append(UInt8(scalarToByte[Int(v)]))
        }
        return out
    }
}

/// Finds added/special tokens in raw text: leftmost match, longest at that position (as HF's added
/// vocabulary does with its Aho-Corasick LeftmostLongest matcher).
struct SpecialMatcher: Sendable {
    struct Entry: Sendable {
        var bytes: [UInt8]
        var id: Int32
        /// Matched only when the caller enables special parsing (control tokens); user-defined / non-special
        /// added tokens are always matched.
        var needsParseSpecial: Bool
        var lstrip: Bool
        var rstrip: Bool
    }
    let entries: [Entry]
    /// Entry indices by first byte, longest first.
    private let byFirst: [[Int]]

    var isEmpty: Bool { entries.isEmpty }

    init(_ entries: [Entry]) {
        let e = entries.filter { !$0.bytes.isEmpty }
        self.entries = e
        var by = [[Int]](repeating: [], count: 256)
        for (i, x) in e.enumerated() { by[Int(x.bytes[0])].append(i) }
        for b in 0..<256 { by[b].sort { e[$0].bytes.count > e[$1].bytes.count } }
        byFirst = by
    }

    enum Segment { case text(Int, Int), token(Int32) }

    /// Splits `bytes` into text ranges and special token ids.
    func split(_ bytes: UnsafeBufferPointer<UInt8>, parseSpecial: Bool) -> [Segment] {
        var out: [Segment] = []
        var textStart = 0
        var i = 0
        let n = bytes.count
        var pendingRStrip = false
        while i < n {
            var matched: Entry? = nil
            for idx in byFirst[Int(bytes[i])] {
                let e = entries[idx]
                if e.needsParseSpecial && !parseSpecial { continue }
                if e.bytes.count <= n - i && memcmpEqual(bytes.baseAddress! + i, e.bytes, e.bytes.count) {
                    matched = e; break
                }
            }
            guard let m = matched else { i += 1; continue }
            var textEnd = i
            var ts = textStart
            if pendingRStrip { ts = skipSpaces(bytes, ts, textEnd) }
            if m.lstrip { while textEnd > ts && isASCIIOrUnicodeSpaceBefore(bytes, textEnd) { textEnd = previousScalarStart(bytes, textEnd) } }
            if textEnd > ts { out.append(.text(ts, textEnd)) }
            out.append(.token(m.id))
            i += m.bytes.count
            textStart = i
            pendingRStrip = m.rstrip
        }
        var ts = textStart
        if pendingRStrip { ts = skipSpaces(bytes, ts, n) }
        if n > ts { out.append(.text(ts, n)) }
        return out
    }
}

private func scalarAt(_ b: UnsafeBufferPointer<UInt8>, _ i: Int) -> (UInt32, Int) {
    let t = ScalarText(UnsafeBufferPointer(rebasing: b[i..<min(b.count, i + 4)]))
    return (t.values[0], t.byteOffsets[1])
}

private func skipSpaces(_ b: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) -> Int {
    var i = from
    while i < to {
        let (v, len) = scalarAt(b, i)
        guard let s = Unicode.Scalar(v), s.properties.isWhitespace else { break }
        i += len
    }
    return i
}

private func previousScalarStart(_ b: UnsafeBufferPointer<UInt8>, _ end: Int) -> Int {
    var i = end - 1
    while i > 0 && b[i] & 0xC0 == 0x80 { i -= 1 }
    return i
}

private func isASCIIOrUnicodeSpaceBefore(_ b: UnsafeBufferPointer<UInt8>, _ end: Int) -> Bool {
    let s = previousScalarStart(b, end)
    let (v, _) = scalarAt(b, s)
    return Unicode.Scalar(v)?.properties.isWhitespace ?? false
}
