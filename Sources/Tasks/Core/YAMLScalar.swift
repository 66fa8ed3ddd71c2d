import Foundation

/// Reads one top-level `key: "double-quoted scalar"` from a YAML file, with YAML 1.2's escapes and
/// line folding. Enough for lm-evaluation-harness task files; not a YAML parser.
enum YAMLScalar {
    enum Failure: Error, Equatable {
        case keyNotFound, notDoubleQuoted, unterminated, badEscape(String)
    }

    static func doubleQuoted(key: String, in text: String) throws -> String {
        let scalars = Array(text.unicodeScalars)
        // Find `key:` at the start of a line.
        let keyScalars = Array((key + ":").unicodeScalars)
        var i = 0
        var found: Int? = nil
        while i + keyScalars.count <= scalars.count {
            if (i == 0 || scalars[i - 1] == "\n") && Array(scalars[i..<i + keyScalars.count]) == keyScalars {
                found = i + keyScalars.count
                break
            }
            i += 1
        }
        guard var p = found else { throw Failure.keyNotFound }
        while p < scalars.count && (scalars[p] == " " || scalars[p] == "\t") { p += 1 }
        guard p < scalars.count, scalars[p] == "\"" else { throw Failure.notDoubleQuoted }
        p += 1

        var out = String.UnicodeScalarView()
        func isBlank(_ s: Unicode.Scalar) -> Bool { s == " " || s == "\t" }
        while true {
            guard p < scalars.count else { throw Failure.unterminated }
            let c = scalars[p]
            if c == "\"" { break }
            if c == "\\" {
                p += 1
                guard p < scalars.count else { throw Failure.unterminated }
                let e = scalars[p]
                p += 1
                switch e {
                case "0": out.append("\u{0}")
                case "a": out.append("\u{7}")
                case "b": out.append("\u{8}")
                case "t", "\t": out.append("\t")
                case "n": out.append("\n")
                case "v": out.append("\u{b}")
                case "f": out.append("\u{c}")
                case "r": out.append("\r")
                case "e": out.append("\u{1b}")
                case " ": out.append(" ")
                case "\"": out.append("\"")
                case "/": out.append("/")
                case "\\": out.append("\\")
                case "N": out.append("\u{85}")
                case "_": out.append("\u{a0}")
                case "L": out.append("\u{2028}")
                case "P": out.append("\u{2029}")
                case "x", "u", "U":
                    let width = e == "x" ? 2 : e == "u" ? 4 : 8
                    guard p + width <= scalars.count,
                          let v = UInt32(String(String.UnicodeScalarView(scalars[p..<p + width])), radix: 16),
                          let s = Unicode.Scalar(v) else { throw Failure.badEscape(String(e)) }
                    out.append(s)
                    p += width
                case "\n", "\r":
                    // Escaped line break: nothing, and the next line's leading blanks go too.
                    if e == "\r" && p < scalars.count && scalars[p] == "\n" { p += 1 }
                    while p < scalars.count && isBlank(scalars[p]) { p += 1 }
                default: throw Failure.badEscape(String(e))
                }
                continue
            }
            if c == "\n" || c == "\r" {
                // Unescaped line break: trailing blanks go; one break folds to a space, and each
                // further (empty) line gives one newline; leading blanks of the next line go.
                while let last = out.last, isBlank(last) { out.removeLast() }
                var breaks = 0
                while p < scalars.count && (scalars[p] == "\n" || scalars[p] == "\r" || isBlank(scalars[p])) {
                    if scalars[p] == "\n" { breaks += 1 }
                    p += 1
                }
                if breaks <= 1 {
                    out.append(" ")
                } else {
                    for _ in 0..<(breaks - 1) { out.append("\n") }
                }
                continue
            }
            out.append(c)
            p += 1
        }
        return String(out)
    }
}
