/// A GGUF's model metadata (`ARCH.*` keys: llama, gemma3, qwen2), read strictly: every key is either read
/// and used, known to leave the computation unchanged, or the file is refused naming the key. Defaults are
/// llama.cpp's own for the same file (the head dimensions, the KV head count, the RoPE base 10000 and the
/// context length); the RMSNorm epsilon has no default there and none here.
struct GGUFModelMetadata {
    let file: GGUFFile
    let arch: String

    /// Keys this loader reads (after the `llama.` prefix).
    static let readKeys: Set<String> = [
        "context_length", "embedding_length", "block_count", "feed_forward_length", "vocab_size",
        "attention.head_count", "attention.head_count_kv", "attention.key_length", "attention.value_length",
        "attention.layer_norm_rms_epsilon",
        "rope.freq_base", "rope.dimension_count", "rope.scale_linear",
        "rope.scaling.type", "rope.scaling.factor", "rope.scaling.attn_factor",
        "rope.scaling.low_freq_factor", "rope.scaling.high_freq_factor", "rope.scaling.original_context_length",
        "expert_count", "expert_used_count",
    ]
    /// Keys read for one architecture only.
    static let architectureKeys: [String: Set<String>] = [
        "gemma3": ["attention.sliding_window", "attention.sliding_window_pattern"],
    ]
    /// Keys that describe the model without changing what it computes.
    static let harmlessKeys: Set<String> = ["rope.scaling.finetuned", "tensor_data_layout"]
    /// Scaling types this engine computes. llama.cpp writes "none", "linear", "yarn" and "longrope";
    /// "llama3" is the transformers name, accepted for files that carry its parameters as metadata.
    static let supportedScalingTypes = ["none", "linear", "llama3"]

    var path: String { file.path }
    private func key(_ k: String) -> String { "\(arch).\(k)" }
    private func value(_ k: String) -> GGUFValue? { file.metadata[key(k)] }

    private func refuse(_ problem: String, fix: String) -> ModelLoadError {
        ModelLoadError(file: path, problem: problem, fix: fix)
    }
    private func wrongType(_ k: String, _ what: String) -> ModelLoadError {
        refuse("metadata \(key(k)) is not \(what)", fix: "regenerate the GGUF with a current converter")
    }

    func int(_ k: String) throws -> Int? {
        guard let v = value(k) else { return nil }
        guard let i = v.intValue else { throw wrongType(k, "an integer") }
        return i
    }
    func requiredInt(_ k: String) throws -> Int {
        guard let v = value(k)?.intValue else {
            throw refuse("metadata \(key(k)) is missing or not an integer", fix: "regenerate the GGUF with a current converter")
        }
        return v
    }
    func double(_ k: String) throws -> Double? {
        guard let v = value(k) else { return nil }
        guard let d = v.doubleValue else { throw wrongType(k, "a number") }
        return d
    }
    func string(_ k: String) throws -> String? {
        guard let v = value(k) else { return nil }
        guard let s = v.stringValue else { throw wrongType(k, "a string") }
        return s
    }

    /// Refuses keys this loader does not know (they may change the computation), multi-file splits and
    /// mixture-of-experts models.
    func checkKeys() throws {
        let prefix = arch + "."
        for k in file.metadata.keys.sorted() where k.hasPrefix(prefix) {
            let name = String(k.dropFirst(prefix.count))
            if Self.readKeys.contains(name) || Self.harmlessKeys.contains(name) || Self.architectureKeys[arch, default: []].contains(name) { continue }
            throw refuse("metadata \(k) is not supported by this engine's \(arch) (it may change the computation)",
                         fix: "use a plain \(arch) GGUF; the keys read are \(Self.readKeys.union(Self.architectureKeys[arch, default: []]).sorted().map { prefix + $0 }.joined(separator: ", "))")
        }
        if let n = file.metadata["split.count"]?.intValue, n > 1 {
            throw refuse("this is part of a GGUF split into \(n) files (split.count = \(n))",
                         fix: "merge the parts into one file with `llama-gguf-split --merge FIRST-PART OUT.gguf`")
        }
        for k in ["expert_count", "expert_used_count"] {
            if let n = try int(k), n > 0 {
                throw refuse("mixture-of-experts models are not supported (\(key(k)) = \(n))", fix: "use a dense model of a supported family")
            }
        }
    }

    /// Head dimension and RoPE settings (llama.cpp's defaults for absent keys).
    func attentionShape(hidden: Int, heads: Int) throws -> Int {
        let headDim = try int("attention.key_length") ?? (heads > 0 ? hidden / heads : 0)
        if let v = try int("attention.value_length"), v != headDim {
            throw refuse("\(key("attention.value_length")) = \(v) differs from the key length \(headDim)",
                         fix: "use a model whose keys and values have the same head dimension")
        }
        return headDim
    }

    /// Called after the sizes are validated: the rotary dimension must be the whole head.
    func checkRotaryDimension(headDim: Int) throws {
        if let r = try int("rope.dimension_count"), r != headDim {
            throw refuse("\(key("rope.dimension_count")) = \(r) but the head dimension is \(headDim): partial rotary embeddings are not supported",
                         fix: "use a model that rotates whole heads (or fix the metadata: it must equal \(headDim))")
        }
    }

    func ropeTheta() throws -> Double {
        let theta = try double("rope.freq_base") ?? 10000
        guard theta > 0, theta.isFinite else {
            throw refuse("\(key("rope.freq_base")) = \(theta) is not a positive number", fix: "regenerate the GGUF with a current converter")
        }
        return theta
    }

    /// The scaling: type from `rope.scaling.type`, factor from `rope.scaling.factor` (or the older
    /// `rope.scale_linear`). A file without a type but with a factor is linear, as llama.cpp reads it.
    func ropeScaling(hasFreqFactors: Bool) throws -> RopeScaling? {
        let factor = try double("rope.scaling.factor") ?? double("rope.scale_linear")
        let scaled = factor.map { $0 != 0 && $0 != 1 } ?? false
        if let a = try double("rope.scaling.attn_factor"), a != 1 {
            throw refuse("\(key("rope.scaling.attn_factor")) = \(a) is not supported (it rescales the rotary embedding)",
                         fix: "use a model without YaRN-style attention scaling")
        }
        func positive(_ k: String) throws -> Double {
            guard let v = try double(k) else {
                throw refuse("metadata \(key(k)) is missing (needed by the rope scaling type)", fix: "regenerate the GGUF with a current converter")
            }
            guard v > 0, v.isFinite else { throw wrongType(k, "a positive number (it is \(v))") }
            return v
        }
        let type = try string("rope.scaling.type")
        switch type {
        case nil:
            return scaled ? .linear(factor: factor!) : nil
        case "none":
            guard !scaled else {
                throw refuse("\(key("rope.scaling.type")) is \"none\" but the scaling factor is \(factor!)",
                             fix: "the metadata contradicts itself; regenerate the GGUF")
            }
            return nil
        case "linear":
            let k = value("rope.scaling.factor") == nil && value("rope.scale_linear") != nil ? "rope.scale_linear" : "rope.scaling.factor"
            return .linear(factor: try positive(k))
        case "llama3":
            guard !hasFreqFactors else {
                throw refuse("both \(key("rope.scaling.type")) = llama3 and a rope_freqs.weight tensor: the scaling would be applied twice",
                             fix: "regenerate the GGUF with a current converter")
            }
            let low = try positive("rope.scaling.low_freq_factor"), high = try positive("rope.scaling.high_freq_factor")
            guard high > low else {
                throw refuse("\(key("rope.scaling.high_freq_factor")) (\(high)) must be larger than the low frequency factor (\(low))",
                             fix: "regenerate the GGUF with a current converter")
            }
            guard let original = try int("rope.scaling.original_context_length"), original > 0 else {
                throw refuse("metadata \(key("rope.scaling.original_context_length")) is missing or not positive (needed by llama3 scaling)",
                             fix: "regenerate the GGUF with a current converter")
            }
            return .llama3(Llama3RopeScaling(factor: try positive("rope.scaling.factor"), lowFreqFactor: low,
                                             highFreqFactor: high, originalContextLength: original))
        case let other?:
            throw refuse("\(key("rope.scaling.type")) \"\(other)\" is not supported (supported: \(Self.supportedScalingTypes.joined(separator: ", ")))",
                         fix: "use a model whose RoPE scaling is one of those")
        }
    }
}
