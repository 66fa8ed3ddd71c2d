import Foundation

/// Loads a Llama-family model from a GGUF file or a Hugging Face directory (config.json + safetensors).
public enum ModelLoader {
    public static let supportedArchitectures = ["llama"]

    /// Loads `path`: a `.gguf` file, or a directory with `config.json` and safetensors weights.
    public static func load(path: String) throws -> LlamaModel {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ModelLoadError(file: path, problem: "no such file or directory",
                                 fix: "pass --model with the path of a .gguf file or of a directory holding config.json and *.safetensors")
        }
        if isDir.boolValue { return try loadSafetensors(directory: path) }
        return try load(gguf: GGUFFile(path: path))
    }

    // MARK: GGUF

    public static func load(gguf g: GGUFFile) throws -> LlamaModel {
        let path = g.path
        guard let arch = g.metadata["general.architecture"]?.stringValue else {
            throw ModelLoadError(file: path, problem: "metadata general.architecture is missing", fix: "the file is not a model GGUF; regenerate it")
        }
        guard supportedArchitectures.contains(arch) else {
            throw ModelLoadError(file: path, problem: "architecture '\(arch)' is not supported (supported: \(supportedArchitectures.joined(separator: ", ")))",
                                 fix: "use a Llama-family model (Llama 2/3, SmolLM2, TinyLlama, ...)")
        }
        func int(_ key: String, default d: Int? = nil) throws -> Int {
            if let v = g.metadata["\(arch).\(key)"]?.intValue { return v }
            if let d { return d }
            throw ModelLoadError(file: path, problem: "metadata \(arch).\(key) is missing or not an integer", fix: "regenerate the GGUF with a current converter")
        }
        func float(_ key: String, default d: Double) -> Double { g.metadata["\(arch).\(key)"]?.doubleValue ?? d }

        let hidden = try int("embedding_length")
        let heads = try int("attention.head_count")
        guard let emb = g.tensors["token_embd.weight"] else {
            throw ModelLoadError(file: path, problem: "tensor token_embd.weight is missing", fix: "the file is incomplete; regenerate it")
        }
        let vocab = g.metadata["\(arch).vocab_size"]?.intValue ?? (emb.dims.count > 1 ? emb.dims[1] : 0)
        // (heads is checked by validate below; avoid dividing by zero before that.)
        let headDim = try int("rope.dimension_count", default: heads > 0 ? hidden / heads : 0)
        var scaling: Llama3RopeScaling?
        if g.metadata["\(arch).rope.scaling.type"]?.stringValue == "llama3",
           let factor = g.metadata["\(arch).rope.scaling.factor"]?.doubleValue {
            scaling = Llama3RopeScaling(factor: factor,
                                        lowFreqFactor: float("rope.scaling.low_freq_factor", default: 1),
                                        highFreqFactor: float("rope.scaling.high_freq_factor", default: 4),
                                        originalContextLength: try int("rope.scaling.original_context_length", default: 8192))
        }
        var config = ModelConfig(
            vocabSize: vocab, hiddenSize: hidden, intermediateSize: try int("feed_forward_length"),
            layerCount: try int("block_count"), headCount: heads,
            kvHeadCount: try int("attention.head_count_kv", default: heads), headDim: headDim,
            contextLength: try int("context_length", default: 2048),
            rmsNormEps: Float(float("attention.layer_norm_rms_epsilon", default: 1e-5)),
            ropeTheta: float("rope.freq_base", default: 10000), ropeScaling: scaling,
            ropeStyle: .interleaved, tiedEmbeddings: g.tensors["output.weight"] == nil)
        if let rf = g.tensors["rope_freqs.weight"] {
            config.ropeFreqFactors = try vector(g, rf, count: headDim / 2)
        }
        try validate(config, file: path)

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
            return WeightMatrix(type: t.type, rows: rows, cols: cols, data: g.data(of: t), owner: g)
        }
        func norm(_ name: String) throws -> [Float] {
            guard let t = g.tensors[name] else {
                throw ModelLoadError(file: path, problem: "tensor \(name) is missing", fix: "the file is incomplete; regenerate it")
            }
            return try vector(g, t, count: hidden)
        }
        let c = config
        var layers: [LayerWeights] = []
        for i in 0..<c.layerCount {
            let p = "blk.\(i)."
            layers.append(LayerWeights(
                attnNorm: try norm(p + "attn_norm.weight"),
                wq: try matrix(p + "attn_q.weight", rows: c.qDim, cols: hidden),
                wk: try matrix(p + "attn_k.weight", rows: c.kvDim, cols: hidden),
                wv: try matrix(p + "attn_v.weight", rows: c.kvDim, cols: hidden),
                wo: try matrix(p + "attn_output.weight", rows: hidden, cols: c.qDim),
                ffnNorm: try norm(p + "ffn_norm.weight"),
                gate: try matrix(p + "ffn_gate.weight", rows: c.intermediateSize, cols: hidden),
                up: try matrix(p + "ffn_up.weight", rows: c.intermediateSize, cols: hidden),
                down: try matrix(p + "ffn_down.weight", rows: hidden, cols: c.intermediateSize)))
        }
        let embedding = try matrix("token_embd.weight", rows: vocab, cols: hidden)
        let output = c.tiedEmbeddings ? embedding : try matrix("output.weight", rows: vocab, cols: hidden)
        return LlamaModel(config: c, tokenEmbedding: embedding, outputNorm: try norm("output_norm.weight"),
                          output: output, layers: layers, source: path)
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

    public static func loadSafetensors(directory: String) throws -> LlamaModel {
        let cfgPath = directory + "/config.json"
        guard let data = FileManager.default.contents(atPath: cfgPath) else {
            throw ModelLoadError(file: cfgPath, problem: "config.json is missing", fix: "a safetensors model directory needs the model's config.json beside the weights")
        }
        guard let j = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ModelLoadError(file: cfgPath, problem: "not a JSON object", fix: "restore config.json from the model's repository")
        }
        let archs = j["architectures"] as? [String] ?? []
        let modelType = j["model_type"] as? String ?? ""
        guard modelType == "llama" || archs.contains("LlamaForCausalLM") else {
            throw ModelLoadError(file: cfgPath, problem: "model_type '\(modelType)' / architectures \(archs) is not supported (supported: llama / LlamaForCausalLM)",
                                 fix: "use a Llama-family model")
        }
        func int(_ k: String) throws -> Int {
            guard let v = j[k] as? Int else {
                throw ModelLoadError(file: cfgPath, problem: "field \"\(k)\" is missing or not an integer", fix: "restore config.json from the model's repository")
            }
            return v
        }
        let hidden = try int("hidden_size"), heads = try int("num_attention_heads")
        var scaling: Llama3RopeScaling?
        if let rs = j["rope_scaling"] as? [String: Any], (rs["rope_type"] as? String ?? rs["type"] as? String) == "llama3" {
            scaling = Llama3RopeScaling(factor: rs["factor"] as? Double ?? 8, lowFreqFactor: rs["low_freq_factor"] as? Double ?? 1,
                                        highFreqFactor: rs["high_freq_factor"] as? Double ?? 4,
                                        originalContextLength: rs["original_max_position_embeddings"] as? Int ?? 8192)
        }
        let ckpt = try SafetensorsCheckpoint(directory: directory)
        let tied = (j["tie_word_embeddings"] as? Bool ?? false) || ckpt.tensors["lm_head.weight"] == nil
        let config = ModelConfig(
            vocabSize: try int("vocab_size"), hiddenSize: hidden, intermediateSize: try int("intermediate_size"),
            layerCount: try int("num_hidden_layers"), headCount: heads,
            kvHeadCount: j["num_key_value_heads"] as? Int ?? heads, headDim: j["head_dim"] as? Int ?? (heads > 0 ? hidden / heads : 0),
            contextLength: j["max_position_embeddings"] as? Int ?? 2048,
            rmsNormEps: Float(j["rms_norm_eps"] as? Double ?? 1e-6),
            ropeTheta: j["rope_theta"] as? Double ?? 10000, ropeScaling: scaling, ropeStyle: .halfSplit, tiedEmbeddings: tied)
        try validate(config, file: cfgPath)
        let c = config
        func tensor(_ name: String) throws -> SafetensorsTensor {
            guard let t = ckpt.tensors[name] else {
                throw ModelLoadError(file: directory, problem: "tensor \(name) is missing from the safetensors files", fix: "the checkpoint is incomplete or not a Llama model")
            }
            guard t.ggmlType != nil else {
                throw ModelLoadError(file: t.file.path, problem: "tensor \(name) has dtype \(t.dtype); weights must be F32, F16 or BF16", fix: "convert the checkpoint")
            }
            return t
        }
        func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
            let t = try tensor(name)
            guard t.shape == [rows, cols] else {
                throw ModelLoadError(file: t.file.path, problem: "tensor \(name) has shape \(t.shape), expected [\(rows), \(cols)]", fix: "config.json does not match the weights")
            }
            return WeightMatrix(type: t.ggmlType!, rows: rows, cols: cols, data: t.data, owner: t.file)
        }
        func norm(_ name: String) throws -> [Float] {
            let t = try tensor(name)
            guard t.shape == [hidden] else {
                throw ModelLoadError(file: t.file.path, problem: "tensor \(name) has shape \(t.shape), expected [\(hidden)]", fix: "config.json does not match the weights")
            }
            return WeightMatrix(type: t.ggmlType!, rows: 1, cols: hidden, data: t.data, owner: t.file).dequantized()
        }
        var layers: [LayerWeights] = []
        for i in 0..<c.layerCount {
            let p = "model.layers.\(i)."
            layers.append(LayerWeights(
                attnNorm: try norm(p + "input_layernorm.weight"),
                wq: try matrix(p + "self_attn.q_proj.weight", rows: c.qDim, cols: hidden),
                wk: try matrix(p + "self_attn.k_proj.weight", rows: c.kvDim, cols: hidden),
                wv: try matrix(p + "self_attn.v_proj.weight", rows: c.kvDim, cols: hidden),
                wo: try matrix(p + "self_attn.o_proj.weight", rows: hidden, cols: c.qDim),
                ffnNorm: try norm(p + "post_attention_layernorm.weight"),
                gate: try matrix(p + "mlp.gate_proj.weight", rows: c.intermediateSize, cols: hidden),
                up: try matrix(p + "mlp.up_proj.weight", rows: c.intermediateSize, cols: hidden),
                down: try matrix(p + "mlp.down_proj.weight", rows: hidden, cols: c.intermediateSize)))
        }
        let embedding = try matrix("model.embed_tokens.weight", rows: c.vocabSize, cols: hidden)
        let output = c.tiedEmbeddings ? embedding : try matrix("lm_head.weight", rows: c.vocabSize, cols: hidden)
        return LlamaModel(config: c, tokenEmbedding: embedding, outputNorm: try norm("model.norm.weight"),
                          output: output, layers: layers, source: directory)
    }
}
