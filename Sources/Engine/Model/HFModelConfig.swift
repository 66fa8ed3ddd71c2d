import Foundation

/// A Hugging Face `config.json` of a supported family (model_type llama, gemma3_text, qwen2, mistral),
/// read strictly: every field that changes the computation is read and used, or the model is refused
/// with an error naming the field and the fix.
/// A default is taken only where the tensors' shapes check it (head counts, head dimension) or where it
/// does not change the math (the context length).
///
/// RoPE settings come in two layouts, both read:
/// - transformers ≥ 5 (`save_pretrained` today): `"rope_parameters": {"rope_type": …, "rope_theta": …, …}`;
/// - older files: top-level `"rope_theta"` and `"rope_scaling": {"rope_type" or "type": …, …}` (or null).
/// As in transformers, a non-empty `rope_scaling` takes precedence over `rope_parameters`, and a
/// `rope_theta` inside the parameters over the top-level one.
struct HFModelConfig {
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
        if family == .gemma3 { return try gemma3Config() }
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
        // (Qwen2's q/k/v biases are part of the family, read from the weights; no MLP biases anywhere.)
        for key in ["attention_bias", "mlp_bias"] where try f.bool(key) == true && !(family == .qwen2 && key == "attention_bias") {
            throw refuse("\"\(key)\": true: this engine's Llama has no bias terms",
                         fix: "use a checkpoint without \(key == "mlp_bias" ? "MLP" : "attention") biases")
        }
        if f.object["quantization_config"] != nil, !(f.object["quantization_config"] is NSNull) {
            throw refuse("\"quantization_config\" is set: the tensors are quantised by a library this engine does not read",
                         fix: "use the unquantised checkpoint (F32/F16/BF16), or a GGUF file")
        }
        let (window, slidingLayers) = try slidingWindow()
        guard let eps = try f.double("rms_norm_eps") else {
            throw refuse("field \"rms_norm_eps\" is missing", fix: "add the model's RMSNorm epsilon (e.g. \"rms_norm_eps\": 1e-05) to config.json")
        }
        let context = try f.int("max_position_embeddings")
        let rope = try ropeSettings(maxPositions: context)
        var c = ModelConfig(
            vocabSize: try f.requiredInt("vocab_size"), hiddenSize: hidden, intermediateSize: try f.requiredInt("intermediate_size"),
            layerCount: try f.requiredInt("num_hidden_layers"), headCount: heads,
            kvHeadCount: try f.int("num_key_value_heads") ?? heads,
            headDim: try f.int("head_dim") ?? (heads > 0 ? hidden / heads : 0),
            contextLength: context ?? 2048, rmsNormEps: Float(eps),
            ropeTheta: rope.theta, ropeScaling: rope.scaling, ropeStyle: .halfSplit,
            tiedEmbeddings: try f.bool("tie_word_embeddings") ?? false)
        c.architecture = family.rawValue
        c.slidingWindow = window
        c.slidingLayers = slidingLayers
        return c
    }

    /// The sliding window of the Llama-like families: none for Llama; Mistral's `sliding_window` (null:
    /// none) on every layer; Qwen2's when `use_sliding_window`, on the layers `layer_types` marks (or
    /// from `max_window_layers` on, as transformers derives them).
    func slidingWindow() throws -> (Int?, [Bool]) {
        let f = fields
        func positive(_ w: Int) throws -> Int {
            guard w > 0 else { throw refuse("\"sliding_window\" = \(w) is not positive", fix: "restore config.json from the model's repository") }
            return w
        }
        switch family {
        case .llama, .gemma3:
            if let window = try f.int("sliding_window") {
                throw refuse("\"sliding_window\": \(window): sliding-window attention is not supported for llama",
                             fix: "remove the field if the model does not use it, or use a supported model")
            }
            return (nil, [])
        case .mistral:
            return (try f.int("sliding_window").map(positive), [])
        case .qwen2:
            guard try f.bool("use_sliding_window") == true, let w = try f.int("sliding_window") else { return (nil, []) }
            let layers = try f.requiredInt("num_hidden_layers")
            let firstSliding = try f.int("max_window_layers") ?? 28
            let types = (f.object["layer_types"] as? [String])
                ?? (0..<layers).map { $0 >= firstSliding ? "sliding_attention" : "full_attention" }
            guard types.count == layers, types.allSatisfy({ $0 == "sliding_attention" || $0 == "full_attention" }) else {
                throw refuse("\"layer_types\" must list \(layers) entries, each sliding_attention or full_attention", fix: "restore config.json from the model's repository")
            }
            return (try positive(w), types.map { $0 == "sliding_attention" })
        }
    }

    /// The families a config.json may name: model_type and the causal-LM class transformers saves.
    enum Family: String { case llama, gemma3, qwen2, mistral }
    static let families: [(modelType: String, family: Family, architecture: String)] = [
        ("llama", .llama, "LlamaForCausalLM"), ("gemma3_text", .gemma3, "Gemma3ForCausalLM"),
        ("qwen2", .qwen2, "Qwen2ForCausalLM"), ("mistral", .mistral, "MistralForCausalLM"),
    ]

    var family: Family {
        let modelType = (try? fields.string("model_type")) ?? nil
        return Self.families.first { $0.modelType == modelType }?.family ?? .llama
    }

    func checkArchitecture() throws {
        let modelType = try fields.string("model_type") ?? ""
        let archs = fields.object["architectures"] as? [String] ?? []
        let supported = Self.families.map { "\($0.modelType) / \($0.architecture)" }.joined(separator: ", ")
        guard let entry = Self.families.first(where: { $0.modelType == modelType }) else {
            throw refuse("model_type '\(modelType)' / architectures \(archs) is not supported (supported: \(supported))",
                         fix: "use a model of a supported family (for Gemma 3 with vision, extract the text model: model_type gemma3_text)")
        }
        if !archs.isEmpty, !archs.contains(entry.architecture) {
            throw refuse("architectures \(archs) is not supported (supported: \(supported))",
                         fix: "use a causal-LM checkpoint (\(entry.architecture))")
        }
    }

    /// Gemma 3 (text): GELU-tanh MLP, q/k norms, post-norms, scaled embeddings, sliding-window layers
    /// with their own RoPE base, attention scaled by query_pre_attn_scalar^−½ (transformers'
    /// `Gemma3TextConfig`; its defaults where a field is absent).
    func gemma3Config() throws -> ModelConfig {
        let f = fields
        let hidden = try f.requiredInt("hidden_size")
        let heads = try f.requiredInt("num_attention_heads")
        let act = try f.string("hidden_activation") ?? f.string("hidden_act") ?? "gelu_pytorch_tanh"
        guard act == "gelu_pytorch_tanh" else {
            throw refuse("\"hidden_activation\": \"\(act)\" is not supported for gemma3_text (supported: gelu_pytorch_tanh)",
                         fix: "use a Gemma 3 checkpoint with its own activation")
        }
        for key in ["final_logit_softcapping", "attn_logit_softcapping"] {
            if let v = try f.double(key) {
                throw refuse("\"\(key)\": \(v): logit soft-capping is not supported", fix: "set it to null (Gemma 3 does not use it)")
            }
        }
        if try f.bool("use_bidirectional_attention") == true {
            throw refuse("\"use_bidirectional_attention\": true is not supported (a causal decoder is)", fix: "use a causal Gemma 3 checkpoint")
        }
        if try f.bool("attention_bias") == true {
            throw refuse("\"attention_bias\": true is not supported for gemma3_text", fix: "use a checkpoint without attention biases")
        }
        if f.object["quantization_config"] != nil, !(f.object["quantization_config"] is NSNull) {
            throw refuse("\"quantization_config\" is set: the tensors are quantised by a library this engine does not read",
                         fix: "use the unquantised checkpoint (F32/F16/BF16), or a GGUF file")
        }
        let layers = try f.requiredInt("num_hidden_layers")
        let headDim = try f.int("head_dim") ?? 256
        var types: [String]
        if let list = f.object["layer_types"] as? [String] {
            types = list
        } else {
            let pattern = try f.int("sliding_window_pattern") ?? 6
            types = (0..<layers).map { ($0 + 1) % pattern != 0 ? "sliding_attention" : "full_attention" }
        }
        guard types.count == layers, types.allSatisfy({ $0 == "sliding_attention" || $0 == "full_attention" }) else {
            throw refuse("\"layer_types\" must list \(layers) entries, each sliding_attention or full_attention", fix: "restore config.json from the model's repository")
        }
        let window = try f.int("sliding_window") ?? 4096
        guard window > 0 else { throw refuse("\"sliding_window\" = \(window) is not positive", fix: "restore config.json from the model's repository") }
        let (globalTheta, localTheta, scaling) = try gemma3Rope()
        let scalar = try f.double("query_pre_attn_scalar") ?? 256
        guard let eps = try f.double("rms_norm_eps") ?? Optional(1e-6), eps > 0 else {
            throw refuse("\"rms_norm_eps\" is not positive", fix: "restore config.json from the model's repository")
        }
        var c = ModelConfig(
            vocabSize: try f.requiredInt("vocab_size"), hiddenSize: hidden, intermediateSize: try f.requiredInt("intermediate_size"),
            layerCount: layers, headCount: heads, kvHeadCount: try f.int("num_key_value_heads") ?? heads, headDim: headDim,
            contextLength: try f.int("max_position_embeddings") ?? 131_072, rmsNormEps: Float(eps),
            ropeTheta: globalTheta, ropeScaling: scaling, ropeStyle: .halfSplit,
            tiedEmbeddings: try f.bool("tie_word_embeddings") ?? true)
        c.architecture = "gemma3"
        c.activation = .geluTanh
        c.embeddingScale = Float(Double(hidden).squareRoot())
        c.attentionScale = Float(pow(scalar, -0.5))
        c.slidingWindow = window
        c.slidingLayers = types.map { $0 == "sliding_attention" }
        c.slidingRopeTheta = localTheta
        return c
    }

    /// Gemma 3's two RoPE bases: `rope_parameters` per layer type (transformers ≥ 5), or the older
    /// top-level rope_theta / rope_local_base_freq / rope_scaling (which applies to the global layers).
    func gemma3Rope() throws -> (global: Double, local: Double, scaling: RopeScaling?) {
        let top = fields
        func flat(_ o: [String: Any], _ prefix: String) throws -> (theta: Double?, scaling: RopeScaling?) {
            let p = JSONFields(object: o, file: file, prefix: prefix)
            let type = try p.string("rope_type") ?? p.string("type") ?? "default"
            switch type {
            case "default": return (try p.double("rope_theta"), nil)
            case "linear": return (try p.double("rope_theta"), .linear(factor: try p.positive("factor")))
            default:
                throw refuse("\(prefix)rope_type \"\(type)\" is not supported for gemma3_text (supported: default, linear)",
                             fix: "use a model whose RoPE is one of those")
            }
        }
        if let params = top.object["rope_parameters"] as? [String: Any], let full = params["full_attention"] as? [String: Any] {
            let g = try flat(full, "rope_parameters.full_attention.")
            let local = params["sliding_attention"] as? [String: Any]
            let l = try local.map { try flat($0, "rope_parameters.sliding_attention.") }
            if l?.scaling != nil {
                throw refuse("rope_parameters.sliding_attention is scaled: not supported", fix: "use rope_type default for the sliding layers")
            }
            return (g.theta ?? 1_000_000, l?.theta ?? 10_000, g.scaling)
        }
        var scaling: RopeScaling? = nil
        if let s = top.object["rope_scaling"] as? [String: Any], !s.isEmpty { scaling = try flat(s, "rope_scaling.").scaling }
        return (try top.double("rope_theta") ?? 1_000_000, try top.double("rope_local_base_freq") ?? 10_000, scaling)
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
