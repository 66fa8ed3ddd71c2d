import Foundation

/// A gzip (RFC 1952) reader with its own DEFLATE (RFC 1951) decoder, so that the library needs
/// nothing but Foundation (which has no gzip on Linux). Small and unhurried: data files only.
public enum Gzip {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case notGzip, unsupportedMethod, truncated, invalid(String), checksumMismatch, lengthMismatch
        public var description: String {
            switch self {
            case .notGzip: return "not a gzip stream (bad magic bytes)"
            case .unsupportedMethod: return "unsupported compression method"
            case .truncated: return "truncated stream"
            case .invalid(let why): return "invalid deflate data: \(why)"
            case .checksumMismatch: return "CRC-32 mismatch"
            case .lengthMismatch: return "length mismatch"
            }
        }
    }

    /// Decompresses every member of a gzip file.
    public static func decompress(_ data: Data) throws -> Data {
        let bytes = [UInt8](data)
        var output: [UInt8] = []
        var offset = 0
        repeat {
            offset = try member(bytes, at: offset, into: &output)
            while offset < bytes.count && bytes[offset] == 0 { offset += 1 } // trailing padding
        } while offset < bytes.count
        return Data(output)
    }

    private static func member(_ b: [UInt8], at start: Int, into output: inout [UInt8]) throws -> Int {
        guard b.count >= start + 18 else { throw Failure.truncated }
        guard b[start] == 0x1f, b[start + 1] == 0x8b else { throw Failure.notGzip }
        guard b[start + 2] == 8 else { throw Failure.unsupportedMethod }
        let flags = b[start + 3]
        var p = start + 10
        if flags & 0x04 != 0 { // FEXTRA
            guard p + 2 <= b.count else { throw Failure.truncated }
            p += 2 + Int(b[p]) | Int(b[p + 1]) << 8
        }
        for flag: UInt8 in [0x08, 0x10] where flags & flag != 0 { // FNAME, FCOMMENT: zero-terminated
            while p < b.count && b[p] != 0 { p += 1 }
            p += 1
        }
        if flags & 0x02 != 0 { p += 2 } // FHCRC
        guard p <= b.count else { throw Failure.truncated }
        let first = output.count
        var inflater = Inflater(input: b, position: p)
        try inflater.run(into: &output)
        var q = inflater.bytePosition
        guard q + 8 <= b.count else { throw Failure.truncated }
        let crc = UInt32(b[q]) | UInt32(b[q + 1]) << 8 | UInt32(b[q + 2]) << 16 | UInt32(b[q + 3]) << 24
        q += 4
        let size = UInt32(b[q]) | UInt32(b[q + 1]) << 8 | UInt32(b[q + 2]) << 16 | UInt32(b[q + 3]) << 24
        q += 4
        guard CRC32.checksum(output[first...]) == crc else { throw Failure.checksumMismatch }
        guard UInt32(truncatingIfNeeded: output.count - first) == size else { throw Failure.lengthMismatch }
        return q
    }
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320).
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xedb8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var c: UInt32 = 0xffff_ffff
        for byte in bytes { c = table[Int((c ^ UInt32(byte)) & 0xff)] ^ (c >> 8) }
        return c ^ 0xffff_ffff
    }
}

/// A canonical Huffman code: symbol counts per length and the symbols sorted by code.
private struct Huffman {
    var counts = [Int](repeating: 0, count: 16)
    var symbols: [Int]

    init(lengths: [Int]) throws {
        symbols = [Int](repeating: 0, count: lengths.count)
        for l in lengths { counts[l] += 1 }
        counts[0] = 0
        var left = 1
        for len in 1..<16 { // over-subscribed codes are invalid; incomplete ones are allowed
            left <<= 1
            left -= counts[len]
            if left < 0 { throw Gzip.Failure.invalid("over-subscribed code") }
        }
        var offsets = [Int](repeating: 0, count: 16)
        for len in 1..<15 { offsets[len + 1] = offsets[len] + counts[len] }
        for (symbol, l) in lengths.enumerated() where l != 0 {
            symbols[offsets[l]] = symbol
            offsets[l] += 1
        }
    }
}

private struct Inflater {
    let input: [UInt8]
    var position: Int
    var bitBuffer = 0
    var bitCount = 0

    init(input: [UInt8], position: Int) {
        self.input = input
        self.position = position
    }

    /// The byte after the last one consumed (the deflate stream ends on a byte boundary).
    var bytePosition: Int { position }

    mutating func bits(_ n: Int) throws -> Int {
        var value = bitBuffer
        while bitCount < n {
            guard position < input.count else { throw Gzip.Failure.truncated }
            value |= Int(input[position]) << bitCount
            position += 1
            bitCount += 8
        }
        bitBuffer = value >> n
        bitCount -= n
        return value & ((1 << n) - 1)
    }

    mutating func decode(_ h: Huffman) throws -> Int {
        var code = 0, first = 0, index = 0
        for len in 1..<16 {
            code |= try bits(1)
            let count = h.counts[len]
            if code - count < first { return h.symbols[index + (code - first)] }
            index += count
            first += count
            first <<= 1
            code <<= 1
        }
        throw Gzip.Failure.invalid("ran out of codes")
    }

    static let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    static let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let distanceBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    static let distanceExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]

    mutating func run(into out: inout [UInt8]) throws {
        var last = false
        let start = out.count
        while !last {
            last = try bits(1) == 1
            switch try bits(2) {
            case 0: try stored(into: &out)
            case 1:
                var lengths = [Int](repeating: 8, count: 288)
                for i in 144..<256 { lengths[i] = 9 }
                for i in 256..<280 { lengths[i] = 7 }
                let literal = try Huffman(lengths: lengths)
                let distance = try Huffman(lengths: [Int](repeating: 5, count: 30))
                try codes(literal, distance, into: &out, start: start)
            case 2:
                let (literal, distance) = try dynamicTables()
                try codes(literal, distance, into: &out, start: start)
            default: throw Gzip.Failure.invalid("reserved block type")
            }
        }
        bitBuffer = 0
        bitCount = 0 // drop the rest of the last byte
    }

    mutating func stored(into out: inout [UInt8]) throws {
        bitBuffer = 0
        bitCount = 0
        guard position + 4 <= input.count else { throw Gzip.Failure.truncated }
        let len = Int(input[position]) | Int(input[position + 1]) << 8
        let nlen = Int(input[position + 2]) | Int(input[position + 3]) << 8
        guard len == (~nlen & 0xffff) else { throw Gzip.Failure.invalid("stored length check") }
        position += 4
        guard position + len <= input.count else { throw Gzip.Failure.truncated }
        out.append(contentsOf: input[position..<position + len])
        position += len
    }

    mutating func dynamicTables() throws -> (Huffman, Huffman) {
        let nlen = try bits(5) + 257
        let ndist = try bits(5) + 1
        let ncode = try bits(4) + 4
        guard nlen <= 286, ndist <= 30 else { throw Gzip.Failure.invalid("bad table counts") }
        let order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
        var codeLengths = [Int](repeating: 0, count: 19)
        for i in 0..<ncode { codeLengths[order[i]] = try bits(3) }
        let lengthCode = try Huffman(lengths: codeLengths)
        var lengths: [Int] = []
        while lengths.count < nlen + ndist {
            let symbol = try decode(lengthCode)
            switch symbol {
            case 0..<16: lengths.append(symbol)
            case 16:
                guard let previous = lengths.last else { throw Gzip.Failure.invalid("repeat with no length") }
                lengths += [Int](repeating: previous, count: 3 + (try bits(2)))
            case 17: lengths += [Int](repeating: 0, count: 3 + (try bits(3)))
            default: lengths += [Int](repeating: 0, count: 11 + (try bits(7)))
            }
        }
        guard lengths.count == nlen + ndist else { throw Gzip.Failure.invalid("too many lengths") }
        guard lengths[256] != 0 else { throw Gzip.Failure.invalid("no end-of-block code") }
        return (try Huffman(lengths: Array(lengths[0..<nlen])), try Huffman(lengths: Array(lengths[nlen...])))
    }

    mutating func codes(_ literal: Huffman, _ distance: Huffman, into out: inout [UInt8], start: Int) throws {
        while true {
            var symbol = try decode(literal)
            if symbol < 256 {
                out.append(UInt8(symbol))
            } else if symbol == 256 {
                return
            } else {
                symbol -= 257
                guard symbol < 29 else { throw Gzip.Failure.invalid("bad length symbol") }
                let length = Self.lengthBase[symbol] + (try bits(Self.lengthExtra[symbol]))
                let d = try decode(distance)
                guard d < 30 else { throw Gzip.Failure.invalid("bad distance symbol") }
                let dist = Self.distanceBase[d] + (try bits(Self.distanceExtra[d]))
                guard dist <= out.count - start else { throw Gzip.Failure.invalid("distance too far back") }
                var from = out.count - dist
                for _ in 0..<length {
                    out.append(out[from])
                    from += 1
                }
            }
        }
    }
}
