/// Incremental detokenizer for generated tokens: feed ids one at a time, get back only complete UTF-8 text.
/// Bytes of a multi-byte character split across tokens are held back until the character is complete;
/// bytes that can never become valid UTF-8 come out as U+FFFD.
///
/// Not thread-safe (one per generation stream).
public final class StreamingDetokenizer {
    public let tokenizer: Tokenizer
    public let skipSpecial: Bool
    private var stripLeadingSpace: Bool
    private var pending: [UInt8] = []

    /// - Parameters:
    ///   - skipSpecial: drop control/special tokens (e.g. `<|im_end|>`) from the output.
    ///   - stripLeadingSpace: for SentencePiece models, drop the space of the first `▁` piece (what `decode`
    ///     does at the start of a text). Leave false when continuing after a prompt.
    public init(tokenizer: Tokenizer, skipSpecial: Bool = false, stripLeadingSpace: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecial = skipSpecial
        if case .sentencePiece = tokenizer.kind { self.stripLeadingSpace = stripLeadingSpace } else { self.stripLeadingSpace = false }
    }

    /// Adds one token; returns the text that became complete (possibly "").
    public func append(_ id: Int32) -> String {
        if skipSpecial && tokenizer.isSpecialToken(id) { return "" }
        var piece = tokenizer.tokenBytes(id)
        if stripLeadingSpace, !piece.isEmpty {
            if piece.first == 0x20 { piece = piece.dropFirst() }
            stripLeadingSpace = false
        }
        pending.append(contentsOf: piece)
        let cut = completePrefixLength(pending)
        guard cut > 0 else { return "" }
        let s = String(decoding: pending[0..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return s
    }

    /// Adds several tokens; returns the text that became complete.
    public func append(contentsOf ids: [Int32]) -> String { ids.map { append($0) }.joined() }

    /// Emits whatever is still held back (an incomplete character becomes U+FFFD) and resets.
    public func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Bytes held back waiting for the rest of a character.
    public var pendingByteCount: Int { pending.count }
}

/// Length of the longest prefix of `b` that does not end inside a still-completable UTF-8 sequence.
func completePrefixLength(_ b: [UInt8]) -> Int {
    let n = b.count
    var i = n - 1
    var back = 0
    // Walk back over at most 3 continuation bytes to the lead byte of the last sequence.
    while i >= 0 && back < 3 && b[i] & 0xC0 == 0x80 { i -= 1; back += 1 }
    guard i >= 0 else { return n }
    let lead = b[i]
    let need: Int
    switch lead {
    case 0xC2...0xDF: need = 2
    case 0xE0...0xEF: need = 3
    case 0xF0...0xF4: need = 4
    default: return n  // ASCII, stray continuation or invalid lead: nothing to wait for
    }
    let have = n - i
    if have >= need { return n }
    // Check the second byte's range for E0/ED/F0/F4 so an impossible sequence is not held forever.
    if have >= 2 {
        let c = b[i + 1]
        let ok: Bool
        switch lead {
        case 0xE0: ok = c >= 0xA0
        case 0xED: ok = c <= 0x9F
        case 0xF0: ok = c >= 0x90
        case 0xF4: ok = c <= 0x8F
        default: ok = true
        }
        if !ok { return n }
    }
    return i
}
