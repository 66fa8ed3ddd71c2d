import Foundation

/// A Hugging Face `config.json` for the Llama architecture, read strictly: every field that changes the
/// computation is read and used, or the model is refused with an error naming the field and the fix.
/// A default is taken only where the tensors' shapes check it (head counts, head dimension) or where it
/// does not change the math (the context length).
///
/// RoPE settings come in two layouts, both read:
/// - transformers ≥ 5 (`save_pretrained` today): `"rope_parameters": {"rope_type": …, "rope_theta": …, …}`;
/// - older files: top-level `"rope_theta"` and `"rope_scaling": {"rope_type" or "type": …, …}` (or null).
/// As in transformers, a non-empty `rope_scaling` takes precedence over `rope_parameters`, and a
/// `rope_theta` inside the parameters over the top-level one.
struct HFLlamaConfig {
    let file: String
    let fields: JSONFields

    /// Rope types transformers defines that this engine computes.
    static let supportedRopeTypes = ["default", "linear", "llama3"]
    /// `hidden_act` values transformers maps to SiLU.
    static let siluNames: Set<String> = ["silu", "swish"]

    init(directory: String) throws {
        file = directory + "/config.json"
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ModelLoadError(file: file, problem: "config.json is missing",
                                 fix: "a safetensors model directory needs the model's config.json beside the weights")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ModelLoadError(file: file, problem: "not a JSON object", fix: "restore config.json from the model's repository")
        }
        fields = JSONFields(object: object, file: file, prefix: "")
    }

    func refuse(_ problem: String, fix: String) -> ModelLoadError {
        ModelLoadError(file: file, problem: problem, fix: fix)
    }

    /// The model's configuration. `tiedEmbeddings` is what config.json says (transformers' default when
    /// absent: false); the loader checks it against the presence of `lm_head.weight`.
    func modelConfig() throws -> ModelConfig {
        try checkArchitecture()
        let f = fields
        let hidden = try f.requiredInt("hidden_size")
        let heads = try f.requiredInt("num_attention_heads")
        guard let act = try f.string("hidden_act") else {
            throw refuse("field \"hidden_act\" is missing", fix: "add \"hidden_act\": \"silu\" to config.json (the Llama activation)")
        }
        guard Self.siluNames.contains(act) else {
            throw refuse("\"hidden_act\": \"\(act)\" is not supported (Llama models use silu)",
                         fix: "use a Llama checkpoint with \"hidden_act\": \"silu\"")
        }
        for key in ["attention_bias", "mlp_bias"] where try f.bool(key) == true {
            throw refuse("\"\(key)\": true: this engine's Llama has no bias terms",
                         fix: "use a checkpoint without \(key == "mlp_bias" ? "MLP" : "attention") biases")
        }
        if f.object["quantization_config"] != nil, !(f.object["quantization_config"] is NSNull) {
            throw refuse("\"quantization_config\" is set: the tensors are quantised by a library this engine does not read",
                         fix: "use the unquantised checkpoint (F32/F16/BF16), or a GGUF file")
        }
        if let window = try f.int("sliding_window") {
            throw refuse("\"sliding_window\": \(window): sliding-window attention is not supported for llama",
                         fix: "remove the field if the model does not use it, or use a supported model")
        }
        guard let eps = try f.double("rms_norm_eps") else {
            throw refuse("field \"rms_norm_eps\" is missing", fix: "add the model's RMSNorm epsilon (e.g. \"rms_norm_eps\": 1e-05) to config.json")
        }
        let context = try f.int("max_position_embeddings")
        let rope = try ropeSettings(maxPositions: context)
        return ModelConfig(
            vocabSize: try f.requiredInt("vocab_size"), hiddenSize: hidden, intermediateSize: try f.requiredInt("intermediate_size"),
            layerCount: try f.requiredInt("num_hidden_layers"), headCount: heads,
            kvHeadCount: try f.int("num_key_value_heads") ?? heads,
            headDim: try f.int("head_dim") ?? (heads > 0 ? hidden / heads : 0),
            contextLength: context ?? 2048, rmsNormEps: Float(eps),
            ropeTheta: rope.theta, ropeScaling: rope.scaling, ropeStyle: .halfSplit,
            tiedEmbeddings: try f.bool("tie_word_embeddings") ?? false)
    }

    func checkArchitecture() throws {
        let modelType = try fields.string("model_type") ?? ""
        let archs = fields.object["architectures"] as? [String] ?? []
        guard modelType == "llama" else {
            throw refuse("model_type '\(modelType)' / architectures \(archs) is not supported (supported: llama / LlamaForCausalLM)",
                         fix: "use a Llama-family model")
        }
        if !archs.isEmpty, !archs.contains("LlamaForCausalLM") {
            throw refuse("architectures \(archs) is not supported (supported: LlamaForCausalLM)",
                         fix: "use a causal-LM Llama checkpoint")
        }
    }

    /// The RoPE base and scaling, from either layout.
    func ropeSettings(maxPositions: Int?) throws -> (theta: Double, scaling: RopeScaling?) {
        let top = fields
        let scalingObject = top.object["rope_scaling"] as? [String: Any]
        let parametersObject = top.object["rope_parameters"] as? [String: Any]
        for key in ["rope_scaling", "rope_parameters"] {
            if let v = top.object[key], !(v is NSNull), !(v is [String: Any]) {
                throw refuse("field \"\(key)\" is not an object", fix: "restore config.json from the model's repository")
            }
        }
        let params: JSONFields
        if let s = scalingObject, !s.isEmpty {
            params = JSONFields(object: s, file: file, prefix: "rope_scaling.")
        } else {
            params = JSONFields(object: parametersObject ?? [:], file: file, prefix: "rope_parameters.")
        }
        if params.object.values.contains(where: { $0 is [String: Any] }) {
            throw refuse("\"\(params.prefix.dropLast())\" holds per-layer-type RoPE parameters, which llama does not use",
                         fix: "write one flat rope_parameters object")
        }
        guard let theta = try params.double("rope_theta") ?? top.double("rope_theta") else {
            throw refuse("the RoPE base is missing: neither \"rope_parameters\": {\"rope_theta\": …} nor a top-level \"rope_theta\"",
                         fix: "add the model's RoPE base, e.g. \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 10000.0} (Llama 1/2 use 10000, Llama 3 500000)")
        }
        guard theta > 0, theta.isFinite else {
            throw refuse("\(params.object["rope_theta"] != nil ? params.prefix : "")rope_theta = \(theta) is not a positive number",
                         fix: "restore config.json from the model's repository")
        }
        for source in [params, top] {
            if let p = try source.double("partial_rotary_factor"), p != 1 {
                throw refuse("\(source.prefix)partial_rotary_factor = \(p): partial rotary embeddings are not supported for llama",
                             fix: "use a model that rotates whole heads")
            }
        }
        let type = try params.string("rope_type") ?? params.string("type") ?? "default"
        switch type {
        case "default":
            return (theta, nil)
        case "linear":
            return (theta, .linear(factor: try params.positive("factor")))
        case "llama3":
            let low = try params.positive("low_freq_factor"), high = try params.positive("high_freq_factor")
            guard high > low else {
                throw refuse("\(params.prefix)high_freq_factor (\(high)) must be larger than low_freq_factor (\(low))",
                             fix: "restore the model's RoPE scaling parameters")
            }
            // transformers: a top-level original_max_position_embeddings wins, then the parameters', then
            // max_position_embeddings.
            guard let original = try top.int("original_max_position_embeddings") ?? params.int("original_max_position_embeddings") ?? maxPositions,
                  original > 0 else {
                throw refuse("llama3 RoPE scaling needs \(params.prefix)original_max_position_embeddings (or max_position_embeddings)",
                             fix: "add the pre-training context length, e.g. \"original_max_position_embeddings\": 8192")
            }
            return (theta, .llama3(Llama3RopeScaling(factor: try params.positive("factor"), lowFreqFactor: low,
                                                     highFreqFactor: high, originalContextLength: original)))
        default:
            throw refuse("\(params.prefix)rope_type \"\(type)\" is not supported (supported: \(Self.supportedRopeTypes.joined(separator: ", ")))",
                         fix: "use a model whose RoPE is one of those, or a GGUF file converted from it")
        }
    }
}

/// Typed reads of one JSON object of a config file. Absent and `null` read as nil; a value of the wrong
/// type is an error naming the field (with `prefix`, e.g. "rope_parameters.").
struct JSONFields {
    let object: [String: Any]
    let file: String
    let prefix: String

    private func wrongType(_ key: String, _ what: String) -> ModelLoadError {
        ModelLoadError(file: file, problem: "field \"\(prefix)\(key)\" is not \(what)", fix: "restore config.json from the model's repository")
    }
    private func value(_ key: String) -> Any? {
        guard let v = object[key], !(v is NSNull) else { return nil }
        return v
    }
    /// JSONSerialization gives true/false as NSNumbers of ObjC type "c" (`is Bool` also holds for 0 and 1).
    private static func number(_ v: Any) -> (NSNumber, isBool: Bool)? {
        guard let n = v as? NSNumber else { return nil }
        return (n, String(cString: n.objCType) == "c")
    }

    func int(_ key: String) throws -> Int? {
        guard let v = value(key) else { return nil }
        guard let (n, isBool) = Self.number(v), !isBool, let i = Int(exactly: n.doubleValue) else { throw wrongType(key, "an integer") }
        return i
    }
    func requiredInt(_ key: String) throws -> Int {
        guard let v = try? int(key) else {
            throw ModelLoadError(file: file, problem: "field \"\(prefix)\(key)\" is missing or not an integer",
                                 fix: "restore config.json from the model's repository")
        }
        return v
    }
    func double(_ key: String) throws -> Double? {
        guard let v = value(key) else { return nil }
        guard let (n, isBool) = Self.number(v), !isBool else { throw wrongType(key, "a number") }
        return n.doubleValue
    }
    /// A required number > 0.
    func positive(_ key: String) throws -> Double {
        guard let v = try double(key) else {
            throw ModelLoadError(file: file, problem: "field \"\(prefix)\(key)\" is missing", fix: "add the model's value for \(prefix)\(key) to config.json")
        }
        guard v > 0, v.isFinite else { throw wrongType(key, "a positive number (it is \(v))") }
        return v
    }
    func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v as? String else { throw wrongType(key, "a string") }
        return s
    }
    func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard let (n, isBool) = Self.number(v), isBool else { throw wrongType(key, "true or false") }
        return n.boolValue
    }
}
