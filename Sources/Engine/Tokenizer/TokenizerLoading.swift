import Foundation

extension Tokenizer {
    /// Loads the tokenizer stored in a GGUF file's `tokenizer.ggml.*` metadata (formats.md §1):
    /// `model` = "gpt2" (byte-level BPE with `merges`; `pre` picks the split regex: "gpt2"/"default" GPT-2,
    /// "llama3"/"llama-bpe" Llama-3, "smollm"/"starcoder"/"refact"/"codeshell" digits + GPT-2) or "llama"
    /// (SentencePiece BPE from `scores`, with `<0xNN>` byte tokens and `add_space_prefix`).
    public convenience init(gguf: GGUFFile) throws {
        let m = gguf.metadata
        let src = gguf.path
        func bad(_ problem: String) -> ModelLoadError {
            ModelLoadError(file: src, problem: problem, fix: "use a GGUF converted by llama.cpp's convert_hf_to_gguf.py, which writes the tokenizer.ggml.* keys")
        }
        guard let model = m["tokenizer.ggml.model"]?.stringValue else { throw bad("no tokenizer.ggml.model metadata") }
        guard let tokVals = m["tokenizer.ggml.tokens"]?.arrayValue else { throw bad("no tokenizer.ggml.tokens metadata") }
        var tokens: [String] = []
        tokens.reserveCapacity(tokVals.count)
        for v in tokVals {
            guard let s = v.stringValue else { throw bad("tokenizer.ggml.tokens holds a non-string value") }
            tokens.append(s)
        }
        let n = tokens.count
        var attrs = [TokenAttribute](repeating: .normal, count: n)
        if let types = m["tokenizer.ggml.token_type"]?.arrayValue {
            guard types.count == n else { throw bad("tokenizer.ggml.token_type has \(types.count) entries for \(n) tokens") }
            for (i, t) in types.enumerated() { attrs[i] = t.intValue.flatMap { TokenAttribute(rawValue: UInt8(clamping: $0)) } ?? .normal }
        }
        func id(_ key: String) -> Int32? {
            guard let v = m[key]?.intValue, v >= 0, v < n else { return nil }
            return Int32(v)
        }
        var spec: TokenizerSpec
        switch model {
        case "gpt2":
            let pre = m["tokenizer.ggml.pre"]?.stringValue ?? "default"
            let kind: PreTokenizerKind
            switch pre {
            case "gpt2", "default", "gpt-2": kind = .gpt2
            case "llama3", "llama-bpe", "llama-v3": kind = .llama3
            case "qwen2": kind = .qwen2
            case "smollm", "starcoder", "refact", "codeshell": kind = .digitsThenGPT2
            default:
                throw ModelLoadError(file: src, problem: "tokenizer.ggml.pre = \"\(pre)\" is a pre-tokenizer this engine does not implement",
                                     fix: "use a model whose pre-tokenizer is gpt2, llama3/llama-bpe, qwen2 or smollm, or load its tokenizer.json")
            }
            guard let mv = m["tokenizer.ggml.merges"]?.arrayValue else { throw bad("a gpt2 tokenizer without tokenizer.ggml.merges") }
            let merges = mv.compactMap(\.stringValue)
            spec = TokenizerSpec(source: src, tokens: tokens, attributes: attrs,
                                 kind: .byteLevel(kind, addPrefixSpace: m["tokenizer.ggml.add_space_prefix"]?.boolValue ?? false),
                                 merges: .strings(merges))
            spec.ignoreMerges = kind == .llama3
            spec.addBOS = m["tokenizer.ggml.add_bos_token"]?.boolValue ?? false
        case "llama":
            guard let sv = m["tokenizer.ggml.scores"]?.arrayValue, sv.count == n else {
                throw bad("a llama (SentencePiece) tokenizer needs tokenizer.ggml.scores with one score per token")
            }
            let scores = sv.map { Float($0.doubleValue ?? 0) }
            let prefix = m["tokenizer.ggml.add_space_prefix"]?.boolValue ?? true
            spec = TokenizerSpec(source: src, tokens: tokens, attributes: attrs,
                                 kind: .sentencePiece(prefix: prefix ? .always : .never, splitOnSpace: false),
                                 merges: .scores(scores))
            spec.byteFallback = true
            spec.fuseUnk = true
            spec.unkID = id("tokenizer.ggml.unknown_token_id") ?? (n > 0 && attrs[0] == .unknown ? 0 : nil)
            spec.stripLeadingSpaceOnDecode = prefix
            spec.addBOS = m["tokenizer.ggml.add_bos_token"]?.boolValue ?? true
        default:
            throw ModelLoadError(file: src, problem: "tokenizer.ggml.model = \"\(model)\" is not supported (only gpt2 and llama)",
                                 fix: "use a model with a BPE or SentencePiece-BPE tokenizer (gpt2 or llama in the GGUF)")
        }
        for i in 0..<n {
            switch attrs[i] {
            case .control, .unknown:
                spec.specials.append(.init(bytes: Array(tokens[i].utf8), id: Int32(i), needsParseSpecial: true, lstrip: false, rstrip: false))
            case .userDefined:
                spec.specials.append(.init(bytes: Array(tokens[i].utf8), id: Int32(i), needsParseSpecial: false, lstrip: false, rstrip: false))
            default: break
            }
        }
        spec.bosID = id("tokenizer.ggml.bos_token_id")
        for k in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
            if let e = id(k) { spec.eosIDs.insert(e) }
        }
        spec.chatTemplate = m["tokenizer.chat_template"]?.stringValue
        try self.init(spec: spec)
    }

    /// Loads the GGUF file at `path` and its tokenizer.
    public convenience init(ggufPath path: String) throws {
        try self.init(gguf: try GGUFFile(path: path))
    }

    /// Loads a Hugging Face `tokenizer.json` (BPE model) and optionally its `tokenizer_config.json` (bos/eos
    /// tokens, `add_bos_token`, `chat_template`; a `chat_template.jinja` next to it is read too).
    ///
    /// Supported pipelines: byte-level BPE with pre-tokenizer ByteLevel(use_regex) (GPT-2), Split(Llama-3
    /// regex) + ByteLevel, Digits(individual) + ByteLevel (SmolLM2); SentencePiece BPE with normalizer
    /// Prepend("▁") + Replace(" ", "▁") (Llama-2) or pre-tokenizer Metaspace. BOS: tokenizer_config's
    /// `add_bos_token` if present, else the special token the post-processor's TemplateProcessing puts
    /// before `$A`.
    public convenience init(tokenizerJSON path: String, configJSON configPath: String? = nil) throws {
        func load(_ p: String) throws -> JSON {
            guard let d = FileManager.default.contents(atPath: p) else {
                throw ModelLoadError(file: p, problem: "cannot read the file", fix: "check the path")
            }
            do { return try JSON.parse([UInt8](d)) } catch {
                throw ModelLoadError(file: p, problem: "\(error)", fix: "download the file again")
            }
        }
        let root = try load(path)
        let config = try configPath.map(load)
        func bad(_ problem: String) -> ModelLoadError {
            ModelLoadError(file: path, problem: problem, fix: "use a BPE tokenizer.json (Llama-2, Llama-3, SmolLM2, Qwen2 style)")
        }
        guard let model = root["model"] else { throw bad("no \"model\" section") }
        let mtype = model["type"]?.string ?? "BPE"
        guard mtype == "BPE" else { throw bad("model type \(mtype) is not supported (only BPE)") }
        guard let vocabPairs = model["vocab"]?.pairs else { throw bad("no model.vocab object") }
        let added = root["added_tokens"]?.array ?? []
        var maxID = -1
        for (_, v) in vocabPairs { if let i = v.int { maxID = max(maxID, i) } }
        for a in added { if let i = a["id"]?.int { maxID = max(maxID, i) } }
        guard maxID >= 0, maxID < 10_000_000 else { throw bad("vocabulary ids out of range") }
        var tokens = [String](repeating: "", count: maxID + 1)
        var filled = [Bool](repeating: false, count: maxID + 1)
        for (k, v) in vocabPairs {
            guard let i = v.int, i >= 0 else { throw bad("vocab entry \"\(k)\" has no integer id") }
            if !filled[i] { tokens[i] = k; filled[i] = true }
        }
        var attrs = [TokenAttribute](repeating: .normal, count: tokens.count)
        var specials: [SpecialMatcher.Entry] = []
        for a in added {
            guard let i = a["id"]?.int, i >= 0, let content = a["content"]?.string else { continue }
            if !filled[i] { tokens[i] = content; filled[i] = true }
            let special = a["special"]?.bool ?? false
            attrs[i] = special ? .control : .userDefined
            specials.append(.init(bytes: Array(content.utf8), id: Int32(i), needsParseSpecial: special,
                                  lstrip: a["lstrip"]?.bool ?? false, rstrip: a["rstrip"]?.bool ?? false))
        }
        let merges: TokenizerSpec.Merges
        let mlist = model["merges"]?.array ?? []
        if let first = mlist.first, first.array != nil {
            merges = .pairs(mlist.compactMap { m in
                guard let p = m.array, p.count == 2, let a = p[0].string, let b = p[1].string else { return nil }
                return (a, b)
            })
        } else {
            merges = .strings(mlist.compactMap(\.string))
        }

        // Normalizer and pre-tokenizer → model kind.
        func flatten(_ j: JSON?, _ listKey: String) -> [JSON] {
            guard let j, !j.isNull else { return [] }
            if j["type"]?.string == "Sequence" { return (j[listKey]?.array ?? []).flatMap { flatten($0, listKey) } }
            return [j]
        }
        let norms = flatten(root["normalizer"], "normalizers")
        let pres = flatten(root["pre_tokenizer"], "pretokenizers")
        var prepend = false, replaceSpace = false
        for nz in norms {
            switch nz["type"]?.string {
            case "Prepend" where nz["prepend"]?.string == "▁": prepend = true
            case "Replace" where nz["content"]?.string == "▁" && nz["pattern"]?["String"]?.string == " ": replaceSpace = true
            default: throw bad("normalizer \(nz["type"]?.string ?? "?") is not supported")
            }
        }
        let llama3Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        let gpt2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
        let qwen2Regex = llama3Regex.replacingOccurrences(of: #"\p{N}{1,3}"#, with: #"\p{N}"#)
        var kind: TokenizerModelKind? = nil
        var split: PreTokenizerKind? = nil
        var digits = false
        for p in pres {
            switch p["type"]?.string {
            case "Split":
                let rx = p["pattern"]?["Regex"]?.string ?? ""
                if rx == llama3Regex { split = .llama3 } else if rx == qwen2Regex { split = .qwen2 } else if rx == gpt2Regex { split = .gpt2 } else {
                    throw bad("Split pre-tokenizer regex \(rx) is not supported (only the GPT-2, Llama-3 and Qwen2 patterns)")
                }
            case "Digits":
                guard p["individual_digits"]?.bool == true else { throw bad("Digits(individual_digits: false) is not supported") }
                digits = true
            case "ByteLevel":
                let useRegex = p["use_regex"]?.bool ?? true
                let pk: PreTokenizerKind
                if let s = split { pk = s } else if useRegex { pk = digits ? .digitsThenGPT2 : .gpt2 } else { pk = .none }
                kind = .byteLevel(pk, addPrefixSpace: p["add_prefix_space"]?.bool ?? false)
            case "Metaspace":
                let scheme = p["prepend_scheme"]?.string ?? ((p["add_prefix_space"]?.bool ?? true) ? "always" : "never")
                kind = .sentencePiece(prefix: scheme == "first" ? .first : scheme == "never" ? .never : .always,
                                      splitOnSpace: p["split"]?.bool ?? true)
            default: throw bad("pre-tokenizer \(p["type"]?.string ?? "?") is not supported")
            }
        }
        if kind == nil && (replaceSpace || prepend) { kind = .sentencePiece(prefix: prepend ? .always : .never, splitOnSpace: false) }
        if kind == nil, root["decoder"]?["type"]?.string == "ByteLevel" { kind = .byteLevel(.none, addPrefixSpace: false) }
        guard let kind else { throw bad("cannot tell the tokenizer family (no ByteLevel, Metaspace or ▁ normalizer)") }

        var spec = TokenizerSpec(source: path, tokens: tokens, attributes: attrs, kind: kind, merges: merges)
        spec.specials = specials
        spec.ignoreMerges = model["ignore_merges"]?.bool ?? false
        spec.byteFallback = model["byte_fallback"]?.bool ?? false
        spec.fuseUnk = model["fuse_unk"]?.bool ?? false
        // Exact (byte-wise) text → id; String == would match canonically equivalent tokens.
        let exact: (String) -> Int32? = { t in tokens.firstIndex(where: { $0.utf8.elementsEqual(t.utf8) }).map(Int32.init) }
        if let u = model["unk_token"]?.string, let uid = exact(u) {
            spec.unkID = uid
            spec.attributes[Int(uid)] = .unknown
        }
        for d in flatten(root["decoder"], "decoders") {
            if d["type"]?.string == "Strip", d["content"]?.string == " ", (d["start"]?.int ?? 0) >= 1 { spec.stripLeadingSpaceOnDecode = true }
            if d["type"]?.string == "Metaspace", (d["prepend_scheme"]?.string ?? "always") != "never",
               d["add_prefix_space"]?.bool ?? true { spec.stripLeadingSpaceOnDecode = true }
        }
        // Post-processor: special tokens before $A.
        var templateBOS: Int32? = nil
        for pp in flatten(root["post_processor"], "processors") where pp["type"]?.string == "TemplateProcessing" {
            for piece in pp["single"]?.array ?? [] {
                if piece["Sequence"] != nil { break }
                if let name = piece["SpecialToken"]?["id"]?.string {
                    let tid = pp["special_tokens"]?[name]?["ids"]?.array?.first?.int
                    templateBOS = tid.map(Int32.init) ?? exact(name)
                    break
                }
            }
        }
        func tokenString(_ j: JSON?) -> String? { j?.string ?? j?["content"]?.string }
        let cfgBOS = tokenString(config?["bos_token"]).flatMap(exact)
        spec.bosID = cfgBOS ?? templateBOS
        if let add = config?["add_bos_token"]?.bool { spec.addBOS = add } else { spec.addBOS = templateBOS != nil }
        if let e = tokenString(config?["eos_token"]).flatMap(exact) { spec.eosIDs.insert(e) }
        var template: String? = config?["chat_template"]?.string
        if template == nil, let list = config?["chat_template"]?.array {
            template = list.first(where: { $0["name"]?.string == "default" })?["template"]?.string ?? list.first?["template"]?.string
        }
        if template == nil, let cp = configPath {
            let j = (cp as NSString).deletingLastPathComponent + "/chat_template.jinja"
            if let d = FileManager.default.contents(atPath: j) { template = String(decoding: d, as: UTF8.self) }
        }
        spec.chatTemplate = template
        try self.init(spec: spec)
    }
}
