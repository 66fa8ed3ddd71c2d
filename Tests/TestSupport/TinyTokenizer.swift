import Foundation
import SiriusEngine

/// A tiny byte-level BPE tokenizer (GPT-2 style) written as GGUF `tokenizer.ggml.*` metadata, so a
/// tiny random model file carries its own tokenizer and the real loaders (`sirius-worker`) can open it
/// like any llama.cpp GGUF: the 256 byte tokens (GPT-2's byte-to-character map), a few merges, then
/// the control tokens BOS and EOS. Any UTF-8 text encodes (bytes are the fallback).
public struct TinyByteTokenizer: Sendable {
    /// Merges as GGUF writes them: two byte-level token texts separated by one space, each side an
    /// earlier token.
    public var merges: [String]
    public var bos = "<|begin_of_text|>"
    public var eos = "<|end_of_text|>"
    /// `tokenizer.ggml.pre`: "gpt2" or "llama-bpe".
    public var pre = "gpt2"

    /// Some English merges ("Ġ" is the byte-level space), enough that ordinary prompts exercise them.
    public static let defaultMerges = [
        "Ġ t", "h e", "Ġt he", "i n", "e r", "Ġ a", "o n", "r e", "Ġ w", "a t",
        "Ġ n", "u m", "Ġn um", "b er", "Ġnum ber", "o f", "Ġ of", "Ġ i", "Ġi s", "s t",
    ]

    public init(merges: [String] = TinyByteTokenizer.defaultMerges) { self.merges = merges }

    /// GPT-2's reversible byte → character map: printable Latin-1 bytes map to themselves, the
    /// others to U+0100 onwards in byte order.
    public static let byteCharacters: [String] = {
        let kept = Set(Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF))
        var next = 0x100
        return (0..<256).map { b in
            if kept.contains(b) { return String(UnicodeScalar(UInt8(b))) }
            defer { next += 1 }
            return String(UnicodeScalar(UInt32(next))!)
        }
    }()

    /// Every token text in id order: bytes, merge results, BOS, EOS.
    public var tokens: [String] {
        Self.byteCharacters + merges.map { $0.replacingOccurrences(of: " ", with: "") } + [bos, eos]
    }
    public var vocabSize: Int { tokens.count }
    public var bosID: Int { vocabSize - 2 }
    public var eosID: Int { vocabSize - 1 }

    /// Sets the tokenizer metadata on `g` (the model's vocabulary size must equal `vocabSize`).
    public func apply(to g: inout GGUFWriter) {
        let toks = tokens
        precondition(Set(toks).count == toks.count, "tiny tokenizer: duplicate token texts")
        var types = [Int32](repeating: 1, count: toks.count)   // 1 normal, 3 control
        types[bosID] = 3
        types[eosID] = 3
        g.set("tokenizer.ggml.model", .string("gpt2"))
        g.set("tokenizer.ggml.pre", .string(pre))
        g.set("tokenizer.ggml.tokens", .strings(toks))
        g.set("tokenizer.ggml.token_type", .int32s(types))
        g.set("tokenizer.ggml.merges", .strings(merges))
        g.set("tokenizer.ggml.bos_token_id", .u32(UInt32(bosID)))
        g.set("tokenizer.ggml.eos_token_id", .u32(UInt32(eosID)))
        g.set("tokenizer.ggml.add_bos_token", .bool(true))
    }
}

extension TinyLlama {
    /// A tiny random Llama whose GGUF copy also carries `tokenizer` (the vocabulary is sized to it):
    /// one file that `sirius-worker` loads model and tokenizer from.
    public static func withTokenizer(_ tokenizer: TinyByteTokenizer = TinyByteTokenizer(),
                                     spec: TinyLlamaSpec = .small(seed: 7)) -> TinyLlama {
        var s = spec
        s.vocab = tokenizer.vocabSize
        return TinyLlama(s)
    }

    /// Writes the GGUF copy with `tokenizer`'s metadata to `path`.
    public func writeGGUF(to path: String, _ types: TinyWeightTypes, tokenizer: TinyByteTokenizer) throws {
        precondition(spec.vocab == tokenizer.vocabSize, "vocabulary \(spec.vocab) ≠ tokenizer's \(tokenizer.vocabSize)")
        var g = ggufWriter(types)
        tokenizer.apply(to: &g)
        try g.write(to: path)
    }
}
