/// Hand-written scanners for the split regexes of the supported byte-level BPE tokenizers. They follow
/// the regex semantics of Hugging Face tokenizers (Oniguruma): `\s` = Unicode White_Space, `\p{L}` =
/// general categories L*, `\p{N}` = N*; matches are found left to right, alternatives tried in order.
enum PreTokenizerKind: Sendable, Equatable {
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2
    /// Llama-3 (and GPT-4 cl100k): `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    case llama3
    /// Qwen2: the Llama-3 regex with single digits (`\p{N}` instead of `\p{N}{1,3}`).
    case qwen2
    /// SmolLM / StarCoder: every `\p{N}` character is its own piece (HF `Digits(individual_digits=True)`),
    /// then the GPT-2 regex inside the remaining stretches.
    case digitsThenGPT2
    /// No splitting: the whole segment is one piece.
    case none
}

/// Character classes used by the scanners.
enum CharClass: UInt8 {
    case letter, number, space /* White_Space other than CR/LF */, newline /* \r or \n */, other
}

@inline(__always)
func classify(_ v: UInt32) -> CharClass {
    if v < 0x80 { return asciiClass[Int(v)] }
    guard let s = Unicode.Scalar(v) else { return .other }
    let p = s.properties
    if p.isWhitespace { return .space }
    switch p.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
    case .decimalNumber, .letterNumber, .otherNumber: return .number
    default: return .other
    }
}

private let asciiClass: [CharClass] = (0..<128).map { (c: Int) -> CharClass in
    switch c {
    case 0x0A, 0x0D: return .newline
    case 0x09, 0x0B, 0x0C, 0x20: return .space
    case 0x30...0x39: return .number
    case 0x41...0x5A, 0x61...0x7A: return .letter
    default: return .other
    }
}

/// A segment of text decoded to scalars, with each scalar's class and byte offset.
struct ScalarText {
    var values: [UInt32] = []
    var classes: [CharClass] = []
    /// byteOffsets[i] = byte offset of scalar i; byteOffsets[count] = total bytes.
    var byteOffsets: [Int] = []

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        values.reserveCapacity(bytes.count)
        classes.reserveCapacity(bytes.count)
        byteOffsets.reserveCapacity(bytes.count + 1)
        var i = 0
        let n = bytes.count
        while i < n {
            let b0 = bytes[i]
            var v = UInt32(b0), len = 1
            if b0 >= 0xC0 {
                if b0 < 0xE0, i + 1 < n { v = UInt32(b0 & 0x1F) << 6 | UInt32(bytes[i + 1] & 0x3F); len = 2 }
                else if b0 < 0xF0, i + 2 < n {
                    v = UInt32(b0 & 0x0F) << 12 | UInt32(bytes[i + 1] & 0x3F) << 6 | UInt32(bytes[i + 2] & 0x3F); len = 3
                } else if i + 3 < n {
                    v = UInt32(b0 & 0x07) << 18 | UInt32(bytes[i + 1] & 0x3F) << 12 | UInt32(bytes[i + 2] & 0x3F) << 6
                        | UInt32(bytes[i + 3] & 0x3F); len = 4
                }
            }
            values.append(v)
            classes.append(classify(v))
            byteOffsets.append(i)
            i += len
        }
        byteOffsets.append(n)
    }

    var count: Int { values.count }
}

/// Splits `text` into pieces; returns the byte ranges (start, end) of the pieces, in order.
func preTokenize(_ text: ScalarText, _ kind: PreTokenizerKind) -> [(Int, Int)] {
    var pieces: [(Int, Int)] = []
    pieces.reserveCapacity(text.count / 3 + 1)
    let n = text.count
    func emit(_ a: Int, _ b: Int) { if b > a { pieces.append((text.byteOffsets[a], text.byteOffsets[b])) } }
    switch kind {
    case .none:
        emit(0, n)
    case .gpt2:
        scanGPT2(text, 0, n, emit)
    case .llama3:
        scanLlama3(text, 0, n, digits: 3, emit)
    case .qwen2:
        scanLlama3(text, 0, n, digits: 1, emit)
    case .digitsThenGPT2:
        var start = 0
        for i in 0..<n where text.classes[i] == .number {
            scanGPT2(text, start, i, emit)
            emit(i, i + 1)
            start = i + 1
        }
        scanGPT2(text, start, n, emit)
    }
    return pieces
}

@inline(__always) private func isSpaceClass(_ c: CharClass) -> Bool { c == .space || c == .newline }

/// The contraction alternatives; `caseInsensitive` adds Oniguruma's Unicode case folding (ſ folds to s).
@inline(__always)
private func contraction(_ v: [UInt32], _ i: Int, _ end: Int, caseInsensitive: Bool) -> Int {
    guard v[i] == 0x27, i + 1 < end else { return 0 }
    func lower(_ c: UInt32) -> UInt32 {
        guard caseInsensitive else { return c }
        if c >= 0x41 && c <= 0x5A { return c + 0x20 }
        if c == 0x17F { return 0x73 }  // ſ
        return c
    }
    let a = lower(v[i + 1])
    switch a {
    case 0x73, 0x74, 0x6D, 0x64: return 2  // s t m d
    case 0x72, 0x76:  // r v → re ve
        if i + 2 < end && lower(v[i + 2]) == 0x65 { return 3 }
    case 0x6C:  // ll
        if i + 2 < end && lower(v[i + 2]) == 0x6C { return 3 }
    default: break
    }
    return 0
}

private func scanGPT2(_ t: ScalarText, _ start: Int, _ end: Int, _ emit: (Int, Int) -> Void) {
    let v = t.values, c = t.classes
    var i = start
    func run(_ from: Int, _ cls: CharClass) -> Int {
        var j = from
        while j < end && c[j] == cls { j += 1 }
        return j
    }
    while i < end {
        let k = contraction(v, i, end, caseInsensitive: false)
        if k > 0 { emit(i, i + k); i += k; continue }
        let lead = v[i] == 0x20 && i + 1 < end ? 1 : 0
        let ci = c[i + lead]
        if lead == 1 || !isSpaceClass(ci) {
            let cls = c[i + lead]
            if cls == .letter || cls == .number || cls == .other {
                let j = run(i + lead, cls)
                emit(i, j); i = j; continue
            }
        }
        // whitespace: \s+(?!\S) | \s+
        var j = i
        while j < end && isSpaceClass(c[j]) { j += 1 }
        if j == i { j = i + 1 }  // unreachable with the classes above; keeps progress guaranteed
        if j < end && j - i >= 2 { j -= 1 }
        emit(i, j); i = j
    }
}

private func scanLlama3(_ t: ScalarText, _ start: Int, _ end: Int, digits: Int, _ emit: (Int, Int) -> Void) {
    let v = t.values, c = t.classes
    var i = start
    func run(_ from: Int, _ cls: CharClass) -> Int {
        var j = from
        while j < end && c[j] == cls { j += 1 }
        return j
    }
    while i < end {
        let k = contraction(v, i, end, caseInsensitive: true)
        if k > 0 { emit(i, i + k); i += k; continue }
        let ci = c[i]
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if ci == .letter { let j = run(i, .letter); emit(i, j); i = j; continue }
        if (ci == .space || ci == .other) && i + 1 < end && c[i + 1] == .letter {
            let j = run(i + 1, .letter); emit(i, j); i = j; continue
        }
        // \p{N}{1,3}
        if ci == .number {
            var j = i + 1
            while j < end && j < i + digits && c[j] == .number { j += 1 }
            emit(i, j); i = j; continue
        }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        let lead = v[i] == 0x20 && i + 1 < end && c[i + 1] == .other ? 1 : 0
        if lead == 1 || ci == .other {
            var j = run(i + lead, .other)
            j = run(j, .newline)
            emit(i, j); i = j; continue
        }
        // whitespace: \s*[\r\n]+ | \s+(?!\S) | \s+
        var j = i
        var lastNL = -1
        while j < end && isSpaceClass(c[j]) {
            if c[j] == .newline { lastNL = j }
            j += 1
        }
        if lastNL >= 0 { emit(i, lastNL + 1); i = lastNL + 1; continue }
        if j < end && j - i >= 2 { j -= 1 }
        emit(i, j); i = j
    }
}
