import Foundation

/// Loads a model of a supported family (Llama, Gemma 3, Qwen2, Mistral) from a GGUF file or a Hugging Face
/// directory (config.json + safetensors).
public enum ModelLoader {
    public static let supportedArchitectures = ["llama", "gemma3", "qwen2"]

    /// Loads `path`: a `.gguf` file, or a directory with `config.json` and safetensors weights.
    public static func load(path: String) throws -> LanguageModel {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ModelLoadError(file: path, problem: "no such file or directory",
                                 fix: "pass --model with the path of a .gguf file or of a directory holding config.json and *.safetensors")
        }
        if isDir.boolValue { return try loadSafetensors(directory: path) }
        return try load(gguf: GGUFFile(path: path))
    }

    // MARK: GGUF

    public static func load(gguf g: GGUFFile) throws -> LanguageModel {
        let path = g.path
        guard let arch = g.metadata["general.architecture"]?.stringValue else {
            throw ModelLoadError(file: path, problem: "metadata general.architecture is missing", fix: "the file is not a model GGUF; regenerate it")
        }
        guard supportedArchitectures.contains(arch) else {
            throw ModelLoadError(file: path, problem: "architecture '\(arch)' is not supported (supported: \(supportedArchitectures.joined(separator: ", ")))",
                                 fix: "use a model of a supported family (Llama 2/3, SmolLM2, TinyLlama, Gemma 3, ...)")
        }
        let meta = GGUFModelMetadata(file: g, arch: arch)
        try meta.checkKeys()
        let hidden = try meta.requiredInt("embedding_length")
        let heads = try meta.requiredInt("attention.head_count")
        guard let emb = g.tensors["token_embd.weight"] else {
            throw ModelLoadError(file: path, problem: "tensor token_embd.weight is missing", fix: "the file is incomplete; regenerate it")
        }
        guard let eps = try meta.double("attention.layer_norm_rms_epsilon") else {
            throw ModelLoadError(file: path, problem: "metadata \(arch).attention.layer_norm_rms_epsilon is missing",
                                 fix: "regenerate the GGUF with a current converter (llama.cpp refuses it too)")
        }
        let vocab = try meta.int("vocab_size") ?? (emb.dims.count > 1 ? emb.dims[1] : 0)
        let headDim = try meta.attentionShape(hidden: hidden, heads: heads)
        var config = ModelConfig(
            vocabSize: vocab, hiddenSize: hidden, intermediateSize: try meta.requiredInt("feed_forward_length"),
            layerCount: try meta.requiredInt("block_count"), headCount: heads,
            kvHeadCount: try meta.int("attention.head_count_kv") ?? heads, headDim: headDim,
            contextLength: try meta.int("context_length") ?? 2048, rmsNormEps: Float(eps),
            ropeTheta: try meta.ropeTheta(), ropeScaling: try meta.ropeScaling(hasFreqFactors: g.tensors["rope_freqs.weight"] != nil),
            ropeStyle: .interleaved, tiedEmbeddings: g.tensors["output.weight"] == nil)
        if arch == "gemma3" { try gemma3(&config, meta) }
        if arch == "qwen2" {
            // llama.cpp runs Qwen2 with NeoX (half-split) rotary pairs and unpermuted Q/K weights.
            config.architecture = "qwen2"
            config.ropeStyle = .halfSplit
        }
        try validate(config, file: path)
        try meta.checkRotaryDimension(headDim: headDim)
        var used: Set<String> = []
        if let rf = g.tensors["rope_freqs.weight"] {
            config.ropeFreqFactors = try vector(g, rf, count: headDim / 2)
            used.insert(rf.name)
        }

        func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
            guard let t = g.tensors[name] else {
                throw ModelLoadError(file: path, problem: "tensor \(name) is missing", fix: "the file is incomplete or not a \(arch) model")
            }
            guard t.dims.count == 2, t.dims[0] == cols, t.dims[1] == rows else {
                throw ModelLoadError(file: path, problem: "tensor \(name) has shape \(t.dims) (ggml order), expected [\(cols), \(rows)]",
                                     fix: "the file does not match its own metadata; regenerate it")
            }
            guard t.type.isSupportedForCompute else {
                throw ModelLoadError(file: path, problem: "tensor \(name) has weight type \(t.type), which this engine cannot compute with",
                                     fix: "use a file quantised to one of \(GGMLType.supportedNames)")
            }
            used.insert(name)
            return WeightMatrix(type: t.type, rows: rows, cols: cols, data: g.data(of: t), owner: g)
        }
        // A norm's weights or a bias (Gemma's norm weights are stored as 1 + w by llama.cpp's converter:
        // used as they are).
        func vector1D(_ name: String, count: Int? = nil) throws -> [Float] {
            guard let t = g.tensors[name] else {
                throw ModelLoadError(file: path, problem: "tensor \(name) is missing", fix: "the file is incomplete; regenerate it")
            }
            used.insert(name)
            return try vector(g, t, count: count ?? hidden)
        }
        let c = config
        var layers: [LayerWeights] = []
        for i in 0..<c.layerCount {
            let p = "blk.\(i)."
            var layer = LayerWeights(
                attnNorm: try vector1D(p + "attn_norm.weight"),
                wq: try matrix(p + "attn_q.weight", rows: c.qDim, cols: hidden),
                wk: try matrix(p + "attn_k.weight", rows: c.kvDim, cols: hidden),
                wv: try matrix(p + "attn_v.weight", rows: c.kvDim, cols: hidden),
                wo: try matrix(p + "attn_output.weight", rows: hidden, cols: c.qDim),
                ffnNorm: try vector1D(p + "ffn_norm.weight"),
                gate: try matrix(p + "ffn_gate.weight", rows: c.intermediateSize, cols: hidden),
                up: try matrix(p + "ffn_up.weight", rows: c.intermediateSize, cols: hidden),
                down: try matrix(p + "ffn_down.weight", rows: hidden, cols: c.intermediateSize))
            if arch == "qwen2" {
                layer.qBias = try vector1D(p + "attn_q.bias", count: c.qDim)
                layer.kBias = try vector1D(p + "attn_k.bias", count: c.kvDim)
                layer.vBias = try vector1D(p + "attn_v.bias", count: c.kvDim)
            }
            if arch == "gemma3" {
                layer.qNorm = try vector1D(p + "attn_q_norm.weight", count: c.headDim)
                layer.kNorm = try vector1D(p + "attn_k_norm.weight", count: c.headDim)
                layer.postAttentionNorm = try vector1D(p + "post_attention_norm.weight")
                layer.postMLPNorm = try vector1D(p + "post_ffw_norm.weight")
            }
            layers.append(layer)
        }
        let embedding = try matrix("token_embd.weight", rows: vocab, cols: hidden)
        let output = c.tiedEmbeddings ? embedding : try matrix("output.weight", rows: vocab, cols: hidden)
        let outputNorm = try vector1D("output_norm.weight")
        // llama.cpp's optional per-layer rotary table (written by old converters, never read).
        try checkUnused(g.tensorOrder, used: used, file: path, family: arch, harmless: { $0.hasPrefix("blk.") && $0.hasSuffix(".attn_rot_embd") })
        return LanguageModel(config: c, tokenEmbedding: embedding, outputNorm: outputNorm,
                          output: output, layers: layers, source: path)
    }

    /// Gemma 3 as llama.cpp runs it: the GGUF holds the window, the rest is fixed by the architecture
    /// (llama.cpp's and transformers' values): every 6th layer global (or
    /// `attention.sliding_window_pattern`), local RoPE base 10000, GELU-tanh, embeddings × √hidden, NeoX
    /// (half-split) rotary pairs, scores scaled by 1/√key_length (27B, the 62-layer model: by
    /// 1/√(hidden/heads), its query_pre_attn_scalar).
    static func gemma3(_ c: inout ModelConfig, _ meta: GGUFModelMetadata) throws {
        c.architecture = "gemma3"
        c.activation = .geluTanh
        c.ropeStyle = .halfSplit
        c.embeddingScale = Float(Double(c.hiddenSize).squareRoot())
        let scalar = c.layerCount == 62 ? c.hiddenSize / c.headCount : c.headDim
        c.attentionScale = Float(pow(Double(scalar), -0.5))
        guard let window = try meta.int("attention.sliding_window"), window > 0 else {
            throw ModelLoadError(file: meta.path, problem: "metadata gemma3.attention.sliding_window is missing or not positive",
                                 fix: "regenerate the GGUF with a current converter")
        }
        let pattern = try meta.int("attention.sliding_window_pattern") ?? 6
        guard pattern > 0 else {
            throw ModelLoadError(file: meta.path, problem: "metadata gemma3.attention.sliding_window_pattern = \(pattern) is not positive",
                                 fix: "regenerate the GGUF with a current converter")
        }
        c.slidingWindow = window
        c.slidingLayers = (0..<c.layerCount).map { ($0 + 1) % pattern != 0 }
        c.slidingRopeTheta = 10_000
    }

    /// Tensors present but not used mean a variant this engine does not compute (biases, extra norms, a
    /// different head): an error naming them, unless `harmless`.
    static func checkUnused(_ names: [String], used: Set<String>, file: String, family: String, harmless: (String) -> Bool) throws {
        let unused = names.filter { !used.contains($0) && !harmless($0) }
        guard !unused.isEmpty else { return }
        let shown = unused.prefix(4).joined(separator: ", ") + (unused.count > 4 ? ", … (\(unused.count) in all)" : "")
        throw ModelLoadError(file: file, problem: "the file holds tensors a \(family) model does not use: \(shown); they belong to a variant this engine does not compute (biases, extra norms or projections)",
                             fix: "use a plain \(family) checkpoint, or remove the tensors if you know the model ignores them")
    }

    static func vector(_ g: GGUFFile, _ t: GGUFTensorInfo, count: Int) throws -> [Float] {
        guard t.elementCount == count else {
            throw ModelLoadError(file: g.path, problem: "tensor \(t.name) has \(t.elementCount) elements, expected \(count)", fix: "the file does not match its metadata; regenerate it")
        }
        guard t.type.isSupportedForCompute else {
            throw ModelLoadError(file: g.path, problem: "tensor \(t.name) has type \(t.type)", fix: "use F32 norms")
        }
        let m = WeightMatrix(type: t.type, rows: 1, cols: count, data: g.data(of: t), owner: g)
        return m.dequantized()
    }

    static func validate(_ c: ModelConfig, file: String) throws {
        func bad(_ what: String) -> ModelLoadError {
            ModelLoadError(file: file, problem: "inconsistent model configuration: \(what)", fix: "check the model's metadata / config.json")
        }
        guard c.hiddenSize > 0, c.layerCount > 0, c.headCount > 0, c.kvHeadCount > 0, c.vocabSize > 0, c.intermediateSize > 0, c.headDim > 0 else {
            throw bad("sizes must be positive")
        }
        // Far above any real model, low enough that products of sizes cannot overflow.
        let limit = 1 << 24
        guard [c.hiddenSize, c.layerCount, c.headCount, c.kvHeadCount, c.vocabSize, c.intermediateSize, c.headDim].allSatisfy({ $0 <= limit }),
              c.qDim <= limit, c.kvDim <= limit else {
            throw bad("implausibly large sizes (hidden \(c.hiddenSize), layers \(c.layerCount), heads \(c.headCount)/\(c.kvHeadCount), head dim \(c.headDim), vocab \(c.vocabSize), feed-forward \(c.intermediateSize))")
        }
        guard c.headCount % c.kvHeadCount == 0 else { throw bad("\(c.headCount) heads are not a multiple of \(c.kvHeadCount) KV heads") }
        guard c.headDim % 2 == 0 else { throw bad("head dimension \(c.headDim) is odd") }
    }

    // MARK: safetensors

    public static func loadSafetensors(directory: String) throws -> LanguageModel {
        let hf = try HFModelConfig(directory: directory)
        let cfgPath = hf.file
        let config = try hf.modelConfig()
        let ckpt = try SafetensorsCheckpoint(directory: directory)
        let hasHead = ckpt.tensors["lm_head.weight"] != nil
        if !config.tiedEmbeddings, !hasHead {
            throw ModelLoadError(file: cfgPath, problem: "lm_head.weight is missing and \"tie_word_embeddings\" is \(hf.fields.object["tie_word_embeddings"] == nil ? "absent (false)" : "false")",
                                 fix: "set \"tie_word_embeddings\": true if the model's output head is its embedding, or restore lm_head.weight")
        }
        try validate(config, file: cfgPath)
        let c = config, hidden = c.hiddenSize
        var used: Set<String> = []
        func tensor(_ name: String) throws -> SafetensorsTensor {
            guard let t = ckpt.tensors[name] else {
                throw ModelLoadError(file: directory, problem: "tensor \(name) is missing from the safetensors files", fix: "the checkpoint is incomplete or not a \(hf.family.rawValue) model")
            }
            guard t.ggmlType != nil else {
                throw ModelLoadError(file: t.file.path, problem: "tensor \(name) has dtype \(t.dtype); weights must be F32, F16 or BF16", fix: "convert the checkpoint")
            }
            used.insert(name)
            return t
        }
        // The head dimension and KV head count come from config.json (or their defaults): name those
        // fields when the projections disagree, before any generic shape error.
        if let q = ckpt.tensors["model.layers.0.self_attn.q_proj.weight"], q.shape.count == 2, q.shape[1] == hidden, q.shape[0] != c.qDim, q.shape[0] % c.headCount == 0 {
            throw ModelLoadError(file: cfgPath, problem: "head dimension \(c.headDim) (\(hf.fields.object["head_dim"] == nil ? "hidden_size / num_attention_heads" : "\"head_dim\"")) does not match the weights: q_proj has \(q.shape[0]) rows for \(c.headCount) heads",
                                 fix: "set \"head_dim\": \(q.shape[0] / c.headCount) in config.json")
        }
        if let k = ckpt.tensors["model.layers.0.self_attn.k_proj.weight"], k.shape.count == 2, k.shape[1] == hidden, k.shape[0] != c.kvDim, k.shape[0] % c.headDim == 0 {
            throw ModelLoadError(file: cfgPath, problem: "\"num_key_value_heads\" (\(c.kvHeadCount)\(hf.fields.object["num_key_value_heads"] == nil ? ", absent: num_attention_heads" : "")) does not match the weights: k_proj has \(k.shape[0]) rows of head dimension \(c.headDim)",
                                 fix: "set \"num_key_value_heads\": \(k.shape[0] / c.headDim) in config.json")
        }
        func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
            let t = try tensor(name)
            guard t.shape == [rows, cols] else {
                throw ModelLoadError(file: t.file.path, problem: "tensor \(name) has shape \(t.shape), expected [\(rows), \(cols)]", fix: "config.json does not match the weights")
            }
            return WeightMatrix(type: t.ggmlType!, rows: rows, cols: cols, data: t.data, owner: t.file)
        }
        // Gemma's RMSNorms multiply by (1 + w), computed here in floats as transformers computes it.
        let normShift: Float = hf.family == .gemma3 ? 1 : 0
        func vector(_ name: String, count n: Int) throws -> [Float] {
            let t = try tensor(name)
            guard t.shape == [n] else {
                throw ModelLoadError(file: t.file.path, problem: "tensor \(name) has shape \(t.shape), expected [\(n)]", fix: "config.json does not match the weights")
            }
            return WeightMatrix(type: t.ggmlType!, rows: 1, cols: n, data: t.data, owner: t.file).dequantized()
        }
        func norm(_ name: String, count: Int? = nil) throws -> [Float] {
            let w = try vector(name, count: count ?? hidden)
            return normShift == 0 ? w : w.map { normShift + $0 }
        }
        var layers: [LayerWeights] = []
        let gemma = hf.family == .gemma3
        for i in 0..<c.layerCount {
            let p = "model.layers.\(i)."
            var layer = LayerWeights(
                attnNorm: try norm(p + "input_layernorm.weight"),
                wq: try matrix(p + "self_attn.q_proj.weight", rows: c.qDim, cols: hidden),
                wk: try matrix(p + "self_attn.k_proj.weight", rows: c.kvDim, cols: hidden),
                wv: try matrix(p + "self_attn.v_proj.weight", rows: c.kvDim, cols: hidden),
                wo: try matrix(p + "self_attn.o_proj.weight", rows: hidden, cols: c.qDim),
                // Gemma's post_attention_layernorm follows the attention; its MLP norm is pre_feedforward.
                ffnNorm: try norm(p + (gemma ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight")),
                gate: try matrix(p + "mlp.gate_proj.weight", rows: c.intermediateSize, cols: hidden),
                up: try matrix(p + "mlp.up_proj.weight", rows: c.intermediateSize, cols: hidden),
                down: try matrix(p + "mlp.down_proj.weight", rows: hidden, cols: c.intermediateSize))
            if hf.family == .qwen2 {
                layer.qBias = try vector(p + "self_attn.q_proj.bias", count: c.qDim)
                layer.kBias = try vector(p + "self_attn.k_proj.bias", count: c.kvDim)
                layer.vBias = try vector(p + "self_attn.v_proj.bias", count: c.kvDim)
            }
            if gemma {
                layer.qNorm = try norm(p + "self_attn.q_norm.weight", count: c.headDim)
                layer.kNorm = try norm(p + "self_attn.k_norm.weight", count: c.headDim)
                layer.postAttentionNorm = try norm(p + "post_attention_layernorm.weight")
                layer.postMLPNorm = try norm(p + "post_feedforward_layernorm.weight")
            }
            layers.append(layer)
        }
        let embedding = try matrix("model.embed_tokens.weight", rows: c.vocabSize, cols: hidden)
        let output = c.tiedEmbeddings ? embedding : try matrix("lm_head.weight", rows: c.vocabSize, cols: hidden)
        let outputNorm = try norm("model.norm.weight")
        // Harmless: rotary inverse-frequency buffers saved by old transformers versions, and an lm_head
        // that transformers itself replaces by the embedding when the config ties them.
        try checkUnused(ckpt.tensors.keys.sorted(), used: used, file: directory, family: hf.family.rawValue, harmless: { name in
            (name.hasPrefix("model.layers.") && name.hasSuffix(".self_attn.rotary_emb.inv_freq"))
                || (c.tiedEmbeddings && name == "lm_head.weight")
        })
        return LanguageModel(config: c, tokenEmbedding: embedding, outputNorm: outputNorm,
                          output: output, layers: layers, source: directory)
    }
}
