import Foundation

/// Text helpers that work on Unicode scalars, as Python's `str` does (Swift's `String` compares
/// grapheme clusters with canonical equivalence; the reference code does neither).
struct ScalarText: Sendable {
    var scalars: [Unicode.Scalar]

    init(_ string: String) { scalars = Array(string.unicodeScalars) }
    init(_ scalars: ArraySlice<Unicode.Scalar>) { self.scalars = Array(scalars) }

    var count: Int { scalars.count }
    var string: String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    /// Python's `str.find(sub, start)`: the index of the first occurrence at or after `start`, or nil.
    func find(_ needle: String, from start: Int = 0) -> Int? {
        let n = Array(needle.unicodeScalars)
        guard !n.isEmpty else { return min(start, count) }
        guard start >= 0, count >= n.count, start <= count - n.count else { return nil }
        var i = start
        while i <= count - n.count {
            if scalars[i] == n[0] {
                var j = 1
                while j < n.count && scalars[i + j] == n[j] { j += 1 }
                if j == n.count { return i }
            }
            i += 1
        }
        return nil
    }

    subscript(range: Range<Int>) -> String {
        ScalarText(scalars[range]).string
    }
}

/// Cuts `text` at the earliest occurrence of any stop string (what lm-eval's `until` and bigcode's
/// stop words do to the generation before anything reads it).
public func truncateAtStopStrings(_ text: String, _ stops: [String]) -> String {
    let t = ScalarText(text)
    var cut = t.count
    for stop in stops where !stop.isEmpty {
        if let i = t.find(stop), i < cut { cut = i }
    }
    return cut == t.count ? text : t[0..<cut]
}

/// Python's `str.strip()` for the whitespace that occurs in these data sets.
func pythonStrip(_ s: String) -> String {
    s.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// A compiled regular expression (NSRegularExpression) with the few Python `re` operations the metrics
/// use. Not named `Regex`: that would shadow the standard library's `Regex` in this module.
struct TextPattern: @unchecked Sendable { // NSRegularExpression is immutable and thread-safe
    let expression: NSRegularExpression

    init(_ pattern: String, dotAll: Bool = false) {
        // The patterns are literals of this library; a bad one is a programming error.
        expression = try! NSRegularExpression(pattern: pattern, options: dotAll ? [.dotMatchesLineSeparators] : [])
    }

    /// Python's `re.findall`: per match, the captured groups (or the whole match when there are none).
    func findAll(_ text: String) -> [[String?]] {
        let ns = text as NSString
        return expression.matches(in: text, range: NSRange(location: 0, length: ns.length)).map { m in
            if m.numberOfRanges == 1 { return [ns.substring(with: m.range)] }
            return (1..<m.numberOfRanges).map { g in
                let r = m.range(at: g)
                return r.location == NSNotFound ? nil : ns.substring(with: r)
            }
        }
    }

    /// Python's `re.sub(pattern, "", text)`.
    func removeAll(_ text: String) -> String {
        let ns = text as NSString
        return expression.stringByReplacingMatches(in: text, range: NSRange(location: 0, length: ns.length), withTemplate: "")
    }
}
