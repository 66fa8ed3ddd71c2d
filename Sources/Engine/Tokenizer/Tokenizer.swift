import Foundation

/// Token attributes, numbered as GGUF's `tokenizer.ggml.token_type`.
public enum TokenAttribute: UInt8, Sendable {
    case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
}

/// Where SentencePiece-style tokenizers put the `▁` that stands for a leading space.
enum SpacePrefix: Sendable, Equatable {
    /// Before every text segment (HF `Prepend("▁")` normalizer, llama.cpp `add_space_prefix`).
    case always
    /// Only before text that starts the input (HF Metaspace `prepend_scheme: "first"`).
    case first
    case never
}

enum TokenizerModelKind: Sendable, Equatable {
    /// GPT-2 family: bytes mapped to printable characters, split by a regex, BPE by merge rank.
    case byteLevel(PreTokenizerKind, addPrefixSpace: Bool)
    /// SentencePiece BPE (Llama-2): spaces become `▁`, BPE over characters, byte fallback.
    case sentencePiece(prefix: SpacePrefix, splitOnSpace: Bool)
}

/// Everything a loader extracts from GGUF metadata or tokenizer.json before the tables are built.
struct TokenizerSpec {
    enum Merges { case strings([String]), pairs([(String, String)]), scores([Float]) }
    var source: String
    var tokens: [String]
    var attributes: [TokenAttribute]
    var kind: TokenizerModelKind
    var merges: Merges
    var ignoreMerges = false
    var byteFallback = false
    var fuseUnk = false
    var unkID: Int32? = nil
    var specials: [SpecialMatcher.Entry] = []
    var bosID: Int32? = nil
    var addBOS = false
    /// End-of-sequence ids named by the metadata (eos / eot / eom).
    var eosIDs: Set<Int32> = []
    var chatTemplate: String? = nil
    var stripLeadingSpaceOnDecode = false
}

/// A text tokenizer for the supported model families: byte-level BPE (GPT-2, SmolLM2, Llama-3) or SentencePiece
/// BPE with byte fallback (Llama-2), loaded from GGUF metadata or a Hugging Face tokenizer.json.
/// Immutable after loading; safe to use from many threads.
public final class Tokenizer: Sendable {
    let kind: TokenizerModelKind
    let table: TokenTable
    let attributes: [TokenAttribute]
    let merges: MergeTable
    /// Token for each raw byte (byte-level: the mapped character; SentencePiece: `<0xNN>`), or -1.
    let byteIDs: [Int32]
    let ignoreMerges: Bool
    let byteFallback: Bool
    let fuseUnk: Bool
    let unkID: Int32?
    let specials: SpecialMatcher
    /// Bytes each token decodes to: `pieceBytes[pieceOffsets[i] ..< pieceOffsets[i+1]]`.
    let pieceBytes: [UInt8]
    let pieceOffsets: [Int32]
    /// Tokens skipped by `skipSpecial` (control, unknown, HF special added tokens).
    let isSpecial: [Bool]
    /// SentencePiece `<0xNN>` byte tokens (decoded in runs, like HF's ByteFallback decoder).
    let isBytePiece: [Bool]
    let stripLeadingSpaceOnDecode: Bool
    let addBOSDefault: Bool
    /// SentencePiece: no token has `▁` after another character, so text can be cut into words before
    /// each such `▁` and each word encoded (and cached) on its own with the same result.
    let spmWordSplit: Bool

    /// Number of token ids (the model's vocabulary size as far as the tokenizer knows).
    public let vocabSize: Int
    /// Beginning-of-sequence token, when the model has one.
    public let bosID: Int32?
    /// Every id that ends a generation. Rule: the metadata's eos id (GGUF `tokenizer.ggml.eos_token_id`,
    /// `eot_token_id`, `eom_token_id`; tokenizer_config `eos_token`), plus the chat format's end-of-turn token,
    /// plus any of the well-known end markers `</s>`, `<|endoftext|>`, `<|im_end|>`, `<|eot_id|>`,
    /// `<|end_of_text|>`, `<|eom_id|>`, `<|end|>`, `<end_of_turn>` present in the vocabulary as a special
    /// (control) token.
    public let eosIDs: Set<Int32>
    /// The raw Jinja chat template from the metadata, if any.
    public let chatTemplate: String?
    /// The chat prompt format detected from the template (or, without one, from the special tokens).
    public let chatFormat: ChatFormat?
    /// Whether `encode` adds `bosID` by default (GGUF `tokenizer.ggml.add_bos_token`, tokenizer.json
    /// post-processor or tokenizer_config `add_bos_token`).
    public var addsBOSByDefault: Bool { addBOSDefault && bosID != nil }

    static let endMarkers = ["</s>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|eom_id|>",
                             "<|end|>", "<end_of_turn>"]

    init(spec: TokenizerSpec) throws {
        let n = spec.tokens.count
        guard n > 0 else {
            throw ModelLoadError(file: spec.source, problem: "the tokenizer has an empty vocabulary", fix: "use the model's own tokenizer files")
        }
        kind = spec.kind
        vocabSize = n
        let tb = TokenTable(tokens: spec.tokens)
        table = tb
        attributes = spec.attributes
        ignoreMerges = spec.ignoreMerges
        byteFallback = spec.byteFallback
        fuseUnk = spec.fuseUnk
        unkID = spec.unkID
        specials = SpecialMatcher(spec.specials)
        stripLeadingSpaceOnDecode = spec.stripLeadingSpaceOnDecode
        chatTemplate = spec.chatTemplate

        // Merge tb.
        var mt = MergeTable(capacity: 0)
        switch spec.merges {
        case .strings(let list):
            mt = MergeTable(capacity: list.count)
            var buf: [UInt8] = []
            for (rank, m) in list.enumerated() {
                var m = m
                m.withUTF8 { u in
                    guard u.count >= 3, let sp = u[1...].firstIndex(of: 0x20) else { return }
                    let a = UnsafeBufferPointer(rebasing: u[0..<sp]), b = UnsafeBufferPointer(rebasing: u[(sp + 1)...])
                    guard let ia = tb.lookup(a), let ib = tb.lookup(b) else { return }
                    buf.removeAll(keepingCapacity: true)
                    buf.append(contentsOf: a); buf.append(contentsOf: b)
                    guard let r = tb.lookup(buf) else { return }
                    mt.add(ia, ib, rank: Int32(rank), result: r)
                }
            }
        case .pairs(let list):
            mt = MergeTable(capacity: list.count)
            for (rank, (a, b)) in list.enumerated() {
                guard let ia = tb.lookup(a), let ib = tb.lookup(b), let r = tb.lookup(a + b) else { continue }
                mt.add(ia, ib, rank: Int32(rank), result: r)
            }
        case .scores(let scores):
            // SentencePiece BPE: any two adjacent pieces whose concatenation is a normal token may merge;
            // the higher the token's score, the earlier (llama.cpp llm_tokenizer_spm, sentencepiece bpe_model).
            var cands: [(Int32, Int32, Float, Int32)] = []
                        tb.bytes.withUnsafeBufferPointer { all in
                for id in 0..<n where spec.attributes[id] == .normal {
                    let s = Int(tb.offsets[id]), e = Int(tb.offsets[id + 1])
                    var k = s + 1
                    while k < e {
                        if all[k] & 0xC0 != 0x80,
                           let l = tb.lookup(UnsafeBufferPointer(rebasing: all[s..<k])),
                           let r = tb.lookup(UnsafeBufferPointer(rebasing: all[k..<e])) {
                            cands.append((l, r, id < scores.count ? scores[id] : 0, Int32(id)))
                        }
                        k += 1
                    }
                }
            }
            let distinct = Array(Set(cands.map { $0.2 })).sorted(by: >)
            var rankOf: [Float: Int32] = [:]
            for (i, s) in distinct.enumerated() { rankOf[s] = Int32(i) }
            mt = MergeTable(capacity: cands.count)
            for c in cands { mt.add(c.0, c.1, rank: rankOf[c.2]!, result: c.3) }
        }
        merges = mt

        // Byte tokens and decode pieces.
        var byteIDs = [Int32](repeating: -1, count: 256)
        var bytePiece = [Bool](repeating: false, count: n)
        var pieces: [UInt8] = []
        pieces.reserveCapacity(tb.bytes.count)
        var offs: [Int32] = [0]
        offs.reserveCapacity(n + 1)
        switch spec.kind {
        case .byteLevel:
            for b in 0..<256 { byteIDs[b] = tb.lookup(ByteLevel.byteToUTF8[b]) ?? -1 }
            for id in 0..<n {
                let t = tb.textBytes(id)
                if let d = ByteLevel.decode(t) { pieces.append(contentsOf: d) } else { pieces.append(contentsOf: t) }
                offs.append(Int32(pieces.count))
            }
        case .sentencePiece:
            for id in 0..<n {
                let t = tb.textBytes(id)
                if let b = Tokenizer.byteTokenValue(t), spec.attributes[id] == .byte || spec.byteFallback {
                    if byteIDs[Int(b)] < 0 { byteIDs[Int(b)] = Int32(id) }
                    bytePiece[id] = true
                    pieces.append(b)
                } else {
                    var i = t.startIndex
                    while i < t.endIndex {
                        if t[i] == 0xE2, i + 2 < t.endIndex, t[i + 1] == 0x96, t[i + 2] == 0x81 {
                            pieces.append(0x20); i += 3
                        } else { pieces.append(t[i]); i += 1 }
                    }
                }
                offs.append(Int32(pieces.count))
            }
        }
        self.byteIDs = byteIDs
        isBytePiece = bytePiece
        var splittable = true
        if case .sentencePiece = spec.kind {
            let b = tb.bytes
            outer: for id in 0..<n where spec.attributes[id] == .normal || spec.attributes[id] == .userDefined {
                let s = Int(tb.offsets[id]), e = Int(tb.offsets[id + 1])
                var k = s + 1
                while k + 2 < e {
                    if b[k] == 0xE2 && b[k + 1] == 0x96 && b[k + 2] == 0x81
                        && !(k - 3 >= s && b[k - 3] == 0xE2 && b[k - 2] == 0x96 && b[k - 1] == 0x81) {
                        splittable = false; break outer
                    }
                    k += 1
                }
            }
        }
        spmWordSplit = splittable
        pieceBytes = pieces
        pieceOffsets = offs
        isSpecial = spec.attributes.map { $0 == .control || $0 == .unknown }

        bosID = spec.bosID.flatMap { $0 >= 0 && Int($0) < n ? $0 : nil }
        addBOSDefault = spec.addBOS

        let tokenNames = Set(spec.specials.map { String(decoding: $0.bytes, as: UTF8.self) })
        let bosText = bosID.map { tb.text(Int($0)) }
        let eosText = spec.eosIDs.filter { $0 >= 0 && Int($0) < n }.min().map { tb.text(Int($0)) }
        let format = ChatFormat.detect(template: spec.chatTemplate, specialTokens: tokenNames, bosToken: bosText, eosToken: eosText)
        chatFormat = format
        var eos = spec.eosIDs.filter { $0 >= 0 && Int($0) < n }
        if let f = format, let id = tb.lookup(f.endOfTurnToken) { eos.insert(id) }
        for m in Tokenizer.endMarkers {
            if let id = tb.lookup(m), spec.attributes[Int(id)] == .control { eos.insert(id) }
        }
        eosIDs = eos
    }

    /// `<0xNN>` → NN
    static func byteTokenValue(_ t: ArraySlice<UInt8>) -> UInt8? {
        guard t.count == 6 else { return nil }
        let a = Array(t)
        guard a[0] == UInt8(ascii: "<"), a[1] == UInt8(ascii: "0"), a[2] == UInt8(ascii: "x"), a[5] == UInt8(ascii: ">") else { return nil }
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: c - 0x30
            case 0x41...0x46: c - 0x41 + 10
            case 0x61...0x66: c - 0x61 + 10
            default: nil
            }
        }
        guard let h = hex(a[3]), let l = hex(a[4]) else { return nil }
        return h << 4 | l
    }

    // MARK: - Lookups

    /// The token's text as stored in the vocabulary (byte-level tokens in their mapped form, e.g. "Ġthe";
    /// SentencePiece tokens with `▁`). Empty for an out-of-range id.
    public func tokenText(_ id: Int32) -> String {
        guard id >= 0, Int(id) < vocabSize else { return "" }
        return table.text(Int(id))
    }

    /// The id of the token whose vocabulary text is exactly `text`.
    public func tokenID(_ text: String) -> Int32? { table.lookup(text) }

    /// Whether `id` is a special (control / unknown / special added) token.
    public func isSpecialToken(_ id: Int32) -> Bool { id >= 0 && Int(id) < vocabSize && isSpecial[Int(id)] }

    /// The raw bytes `id` stands for when decoded (no leading-space stripping).
    public func tokenBytes(_ id: Int32) -> ArraySlice<UInt8> {
        guard id >= 0, Int(id) < vocabSize else { return [] }
        return pieceBytes[Int(pieceOffsets[Int(id)])..<Int(pieceOffsets[Int(id) + 1])]
    }

    func isByteToken(_ id: Int32) -> Bool { isBytePiece[Int(id)] }

    // MARK: - Encoding

    /// Tokenizes `text`. `addBOS`: nil = as the model's metadata says. `parseSpecial`: match control /
    /// special tokens written in the text (e.g. "<|im_start|>") as single tokens, like Hugging Face does for
    /// added tokens; user-defined (non-special) added tokens are always matched.
    public func encode(_ text: String, addBOS: Bool? = nil, parseSpecial: Bool = true) -> [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(text.utf8.count / 3 + 2)
        if addBOS ?? addBOSDefault, let b = bosID { out.append(b) }
        var text = text
        text.withUTF8 { buf in
            let segments: [SpecialMatcher.Segment] = specials.isEmpty ? [.text(0, buf.count)]
                : specials.split(buf, parseSpecial: parseSpecial)
            var cache: [ArraySlice<UInt8>: [Int32]] = [:]
            for seg in segments {
                switch seg {
                case .token(let id): out.append(id)
                case .text(let a, let b):
                    let slice = UnsafeBufferPointer(rebasing: buf[a..<b])
                    switch kind {
                    case .byteLevel(let pre, let addPrefixSpace):
                        encodeByteLevel(slice, pre: pre, addPrefixSpace: addPrefixSpace, cache: &cache, into: &out)
                    case .sentencePiece(let prefix, let split):
                        let addPrefix = prefix == .always || (prefix == .first && a == 0)
                        encodeSentencePiece(slice, addPrefix: addPrefix, splitOnSpace: split, cache: &cache, into: &out)
                    }
                }
            }
        }
        return out
    }

    private func encodeByteLevel(_ seg: UnsafeBufferPointer<UInt8>, pre: PreTokenizerKind, addPrefixSpace: Bool,
                                 cache: inout [ArraySlice<UInt8>: [Int32]], into out: inout [Int32]) {
        if addPrefixSpace && seg.first != 0x20 {
            let withSpace = [0x20] + Array(seg)
            withSpace.withUnsafeBufferPointer { encodeByteLevel($0, pre: pre, addPrefixSpace: false, cache: &cache, into: &out) }
            return
        }
        let text = ScalarText(seg)
        let all = Array(seg)
        for (s, e) in preTokenize(text, pre) {
            let word = all[s..<e]
            if let hit = cache[word] { out.append(contentsOf: hit); continue }
            let ids = bpeByteLevelWord(word)
            if cache.count < 50_000 { cache[word] = ids }
            out.append(contentsOf: ids)
        }
    }

    private func bpeByteLevelWord(_ word: ArraySlice<UInt8>) -> [Int32] {
        if ignoreMerges {
            var mapped: [UInt8] = []
            mapped.reserveCapacity(word.count * 2)
            for b in word { mapped.append(contentsOf: ByteLevel.byteToUTF8[Int(b)]) }
            if let id = table.lookup(mapped) { return [id] }
        }
        var symbols: [Int32] = []
        symbols.reserveCapacity(word.count)
        for b in word where byteIDs[Int(b)] >= 0 { symbols.append(byteIDs[Int(b)]) }
        applyMerges(&symbols, merges)
        return symbols
    }

    private func encodeSentencePiece(_ seg: UnsafeBufferPointer<UInt8>, addPrefix: Bool, splitOnSpace: Bool,
                                     cache: inout [ArraySlice<UInt8>: [Int32]], into out: inout [Int32]) {
        guard !seg.isEmpty else { return }
        var norm: [UInt8] = []
        norm.reserveCapacity(seg.count + 8)
        if addPrefix { norm.append(contentsOf: [0xE2, 0x96, 0x81]) }
        for b in seg { if b == 0x20 { norm.append(contentsOf: [0xE2, 0x96, 0x81]) } else { norm.append(b) } }
        let text = norm.withUnsafeBufferPointer { ScalarText($0) }
        // Word boundaries: before every ▁ (Metaspace split), or, when no token has a ▁ after another
        // character (so no merge can cross it), before a ▁ that follows a non-▁ character.
        var start = 0
        func word(_ a: Int, _ b: Int) {
            guard b > a else { return }
            let key = norm[text.byteOffsets[a]..<text.byteOffsets[b]]
            if let hit = cache[key] { out.append(contentsOf: hit); return }
            let ids = sentencePieceWord(text, a, b, norm)
            if cache.count < 50_000 { cache[key] = ids }
            out.append(contentsOf: ids)
        }
        if splitOnSpace || spmWordSplit {
            for i in 1..<max(1, text.count) where text.values[i] == 0x2581 && (splitOnSpace || text.values[i - 1] != 0x2581) {
                word(start, i)
                start = i
            }
        }
        word(start, text.count)
    }

    private func sentencePieceWord(_ text: ScalarText, _ a: Int, _ b: Int, _ norm: [UInt8]) -> [Int32] {
        norm.withUnsafeBufferPointer { nb in
            var symbols: [Int32] = []
            symbols.reserveCapacity(b - a)
            var lastWasUnk = false
            for i in a..<b {
                let s = text.byteOffsets[i], e = text.byteOffsets[i + 1]
                if let id = table.lookup(UnsafeBufferPointer(rebasing: nb[s..<e])) {
                    symbols.append(id); lastWasUnk = false; continue
                }
                if byteFallback && (s..<e).allSatisfy({ byteIDs[Int(nb[$0])] >= 0 }) {
                    for k in s..<e { symbols.append(byteIDs[Int(nb[k])]) }
                    lastWasUnk = false
                    continue
                }
                if let u = unkID {
                    if !(fuseUnk && lastWasUnk) { symbols.append(u) }
                    lastWasUnk = true
                }
            }
            applyMerges(&symbols, merges)
            return symbols
        }
    }

    // MARK: - Decoding

    /// Decodes ids to text as the reference (Hugging Face `decode`) does: byte-level tokens are mapped back
    /// to bytes; SentencePiece `▁` becomes a space, `<0xNN>` tokens become bytes (a run of them that is not
    /// valid UTF-8 gives one U+FFFD per byte), and the one leading space the space prefix introduced is
    /// removed. Special tokens appear as their text unless `skipSpecial`.
    public func decode(_ ids: [Int32], skipSpecial: Bool = false) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ids.count * 4)
        switch kind {
        case .byteLevel:
            for id in ids where id >= 0 && Int(id) < vocabSize {
                if skipSpecial && isSpecial[Int(id)] { continue }
                bytes.append(contentsOf: tokenBytes(id))
            }
        case .sentencePiece:
            var run: [UInt8] = []
            func flushRun() {
                guard !run.isEmpty else { return }
                if isValidUTF8(run) { bytes.append(contentsOf: run) }
                else { for _ in run { bytes.append(contentsOf: [0xEF, 0xBF, 0xBD]) } }
                run.removeAll(keepingCapacity: true)
            }
            for id in ids where id >= 0 && Int(id) < vocabSize {
                if skipSpecial && isSpecial[Int(id)] { continue }
                if isByteToken(id) { run.append(contentsOf: tokenBytes(id)); continue }
                flushRun()
                bytes.append(contentsOf: tokenBytes(id))
            }
            flushRun()
            if stripLeadingSpaceOnDecode && bytes.first == 0x20 { bytes.removeFirst() }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

func isValidUTF8(_ b: [UInt8]) -> Bool {
    var it = b.makeIterator()
    var d = UTF8()
    while true {
        switch d.decode(&it) {
        case .scalarValue: continue
        case .emptyInput: return true
        case .error: return false
        }
    }
}
