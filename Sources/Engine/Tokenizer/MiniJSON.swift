/// A small JSON reader for tokenizer.json / tokenizer_config.json. Objects keep their keys in file order
/// as plain pairs: vocab keys must not go through a Swift `Dictionary<String, _>`, which would merge
/// canonically equivalent keys ("é" vs "e\u{301}") that are distinct tokens.
indirect enum JSON: Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    subscript(key: String) -> JSON? {
        if case .object(let pairs) = self {
            for (k, v) in pairs where k.utf8.elementsEqual(key.utf8) { return v }
        }
        return nil
    }
    var string: String? { if case .string(let s) = self { s } else { nil } }
    var int: Int? { if case .number(let d) = self, d == d.rounded(), abs(d) < 1e15 { Int(d) } else { nil } }
    var bool: Bool? { if case .bool(let b) = self { b } else { nil } }
    var array: [JSON]? { if case .array(let a) = self { a } else { nil } }
    var pairs: [(String, JSON)]? { if case .object(let p) = self { p } else { nil } }
    var isNull: Bool { if case .null = self { true } else { false } }

    struct ParseError: Error, CustomStringConvertible {
        var offset: Int
        var message: String
        var description: String { "invalid JSON at byte \(offset): \(message)" }
    }

    static func parse(_ bytes: [UInt8]) throws -> JSON {
        try bytes.withUnsafeBufferPointer { b in
            var p = Parser(b: b)
            p.skipWS()
            let v = try p.value(depth: 0)
            p.skipWS()
            if p.i != b.count { throw ParseError(offset: p.i, message: "trailing characters") }
            return v
        }
    }

    private struct Parser {
        let b: UnsafeBufferPointer<UInt8>
        var i = 0

        mutating func skipWS() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        }
        func fail(_ m: String) -> ParseError { ParseError(offset: i, message: m) }

        mutating func expect(_ lit: String) throws {
            for c in lit.utf8 {
                guard i < b.count, b[i] == c else { throw fail("expected \(lit)") }
                i += 1
            }
        }

        mutating func value(depth: Int) throws -> JSON {
            guard depth < 64 else { throw fail("nesting too deep") }
            guard i < b.count else { throw fail("unexpected end") }
            switch b[i] {
            case UInt8(ascii: "{"):
                i += 1
                var pairs: [(String, JSON)] = []
                skipWS()
                if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(pairs) }
                while true {
                    skipWS()
                    guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a key") }
                    let k = try string()
                    skipWS()
                    try expect(":")
                    skipWS()
                    pairs.append((k, try value(depth: depth + 1)))
                    skipWS()
                    guard i < b.count else { throw fail("unexpected end") }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "}") { i += 1; return .object(pairs) }
                    throw fail("expected , or }")
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [JSON] = []
                skipWS()
                if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    skipWS()
                    items.append(try value(depth: depth + 1))
                    skipWS()
                    guard i < b.count else { throw fail("unexpected end") }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                    throw fail("expected , or ]")
                }
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try expect("true"); return .bool(true)
            case UInt8(ascii: "f"): try expect("false"); return .bool(false)
            case UInt8(ascii: "n"): try expect("null"); return .null
            default:
                let s = i
                while i < b.count, let c = Optional(b[i]),
                      (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: "-") || c == UInt8(ascii: "+") || c == UInt8(ascii: ".")
                        || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") { i += 1 }
                guard i > s, let d = Double(String(decoding: UnsafeBufferPointer(rebasing: b[s..<i]), as: UTF8.self)) else {
                    throw fail("unexpected character")
                }
                return .number(d)
            }
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 <= b.count else { throw fail("short \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = b[i]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: throw fail("bad \\u escape")
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }

        mutating func string() throws -> String {
            i += 1  // opening quote
            let start = i
            // Fast path: no escapes.
            while i < b.count, b[i] != UInt8(ascii: "\""), b[i] != UInt8(ascii: "\\") { i += 1 }
            guard i < b.count else { throw fail("unterminated string") }
            if b[i] == UInt8(ascii: "\"") {
                let s = String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
                i += 1
                return s
            }
            var out = Array(b[start..<i])
            while true {
                guard i < b.count else { throw fail("unterminated string") }
                let c = b[i]
                if c == UInt8(ascii: "\"") { i += 1; break }
                if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
                i += 1
                guard i < b.count else { throw fail("unterminated escape") }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "u"):
                    var v = try hex4()
                    if v >= 0xD800 && v < 0xDC00, i + 6 <= b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") {
                        let save = i
                        i += 2
                        let lo = try hex4()
                        if lo >= 0xDC00 && lo < 0xE000 { v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00) } else { i = save }
                    }
                    let scalar = Unicode.Scalar(v) ?? "\u{FFFD}"
                    out.append(contentsOf: String(Character(scalar)).utf8)
                default: out.append(e)  // \" \\ \/
                }
            }
            return String(decoding: out, as: UTF8.self)
        }
    }
}
