import Foundation
import SiriusEngine
import Testing
import TestSupport

/// Every config.json field and GGUF metadata key that changes the computation is read and used, or the
/// model is refused naming it: hand-edited configs and metadata written by the test support code.
@Suite("config.json: fields that change the math are read or refused")
struct HFConfigAuditTests {
    let tiny = TinyLlama(.small(seed: 4))

    /// A model directory from the tiny model: config.json with `set` applied and `remove` deleted, and
    /// the tensors edited by `edit`.
    func directory(set: [String: Any] = [:], remove: [String] = [], edit: (inout SafetensorsWriter) -> Void = { _ in }) throws -> TempDir {
        let dir = try TempDir("audit")
        var w = tiny.safetensorsWriter(dtype: "F32")
        edit(&w)
        try w.write(to: dir.file("model.safetensors"))
        var config = tiny.configJSON(extra: set)
        for k in remove { config.removeValue(forKey: k) }
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: dir.file("config.json")))
        return dir
    }

    func load(set: [String: Any] = [:], remove: [String] = [], edit: (inout SafetensorsWriter) -> Void = { _ in }) throws -> LanguageModel {
        let dir = try directory(set: set, remove: remove, edit: edit)
        defer { dir.remove() }
        return try ModelLoader.load(path: dir.path)
    }

    /// Expects a refusal whose message names every fragment.
    func expectRefused(set: [String: Any] = [:], remove: [String] = [], edit: (inout SafetensorsWriter) -> Void = { _ in },
                       _ fragments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let dir = try directory(set: set, remove: remove, edit: edit)
        defer { dir.remove() }
        let msg = loadError(dir.path, sourceLocation: sourceLocation)
        for f in fragments {
            #expect(msg.contains(f), "\"\(msg)\" should mention \"\(f)\"", sourceLocation: sourceLocation)
        }
    }

    @Test("RoPE base from either layout; rope_parameters' own rope_theta wins over a top-level one")
    func ropeBaseLayouts() throws {
        #expect(try load(set: ["rope_theta": 50000]).config.ropeTheta == 50000)
        let current = try load(set: ["rope_parameters": ["rope_type": "default", "rope_theta": 70000.0]], remove: ["rope_theta"])
        #expect(current.config.ropeTheta == 70000 && current.config.ropeScaling == nil)
        let both = try load(set: ["rope_theta": 10000, "rope_parameters": ["rope_type": "default", "rope_theta": 70000.0]])
        #expect(both.config.ropeTheta == 70000)
        // rope_scaling: null (older files) is the default rope.
        #expect(try load(set: ["rope_scaling": NSNull()]).config.ropeScaling == nil)
    }

    @Test("a missing RoPE base is refused in both layouts")
    func missingRopeBase() throws {
        try expectRefused(remove: ["rope_theta"], ["RoPE base is missing", "rope_theta"])
        try expectRefused(set: ["rope_parameters": ["rope_type": "default"]], remove: ["rope_theta"], ["RoPE base is missing"])
        try expectRefused(set: ["rope_scaling": ["rope_type": "linear", "factor": 2.0]], remove: ["rope_theta"], ["RoPE base is missing"])
        try expectRefused(set: ["rope_theta": "10000"], ["\"rope_theta\" is not a number"])
        try expectRefused(set: ["rope_parameters": ["rope_type": "default", "rope_theta": -1.0]], remove: ["rope_theta"], ["rope_theta = -1.0"])
    }

    @Test("linear and llama3 scaling are read from both layouts")
    func scalingLayouts() throws {
        let linear: [String: Any] = ["rope_type": "linear", "factor": 4.0]
        #expect(try load(set: ["rope_scaling": linear]).config.ropeScaling == .linear(factor: 4))
        #expect(try load(set: ["rope_parameters": linear.merging(["rope_theta": 10000.0]) { a, _ in a }], remove: ["rope_theta"])
            .config.ropeScaling == .linear(factor: 4))
        // The pre-4.45 spelling "type" instead of "rope_type".
        #expect(try load(set: ["rope_scaling": ["type": "linear", "factor": 2]]).config.ropeScaling == .linear(factor: 2))
        let l3: [String: Any] = ["rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                 "original_max_position_embeddings": 128]
        let expected = RopeScaling.llama3(Llama3RopeScaling(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContextLength: 128))
        #expect(try load(set: ["rope_scaling": l3]).config.ropeScaling == expected)
        // Without an original length, transformers uses max_position_embeddings (256 here).
        var noOriginal = l3
        noOriginal.removeValue(forKey: "original_max_position_embeddings")
        noOriginal["rope_theta"] = 10000.0
        let m = try load(set: ["rope_parameters": noOriginal], remove: ["rope_theta"])
        #expect(m.config.ropeScaling == .llama3(Llama3RopeScaling(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContextLength: 256)))
    }

    @Test("rope types transformers defines but this engine does not compute are refused by name",
          arguments: ["dynamic", "yarn", "longrope", "proportional", "su", "mystery"])
    func unknownRopeType(type: String) throws {
        try expectRefused(set: ["rope_scaling": ["rope_type": type, "factor": 2.0]], ["rope_type \"\(type)\" is not supported", "default, linear, llama3"])
        try expectRefused(set: ["rope_parameters": ["rope_type": type, "rope_theta": 10000.0, "factor": 2.0]], remove: ["rope_theta"],
                          ["rope_parameters.rope_type \"\(type)\""])
    }

    @Test("incomplete scaling parameters and partial rotary embeddings are refused")
    func incompleteScaling() throws {
        try expectRefused(set: ["rope_scaling": ["rope_type": "linear"]], ["rope_scaling.factor", "missing"])
        try expectRefused(set: ["rope_scaling": ["rope_type": "llama3", "factor": 8.0, "high_freq_factor": 4.0]], ["low_freq_factor", "missing"])
        try expectRefused(set: ["rope_scaling": ["rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 1.0]],
                          ["high_freq_factor", "larger"])
        try expectRefused(set: ["partial_rotary_factor": 0.5], ["partial_rotary_factor = 0.5"])
        try expectRefused(set: ["rope_parameters": ["rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.25]],
                          ["partial_rotary_factor = 0.25"])
        #expect(try load(set: ["partial_rotary_factor": 1.0]).config.ropeTheta == 10000)
    }

    @Test("hidden_act: silu (or its alias swish) is used; anything else or nothing is refused")
    func activation() throws {
        #expect(try load(set: ["hidden_act": "swish"]).config.layerCount == 2)
        for act in ["gelu", "gelu_pytorch_tanh", "relu"] {
            try expectRefused(set: ["hidden_act": act], ["\"hidden_act\": \"\(act)\" is not supported"])
        }
        try expectRefused(remove: ["hidden_act"], ["\"hidden_act\" is missing"])
    }

    @Test("biases: attention_bias / mlp_bias true, or bias tensors in the checkpoint, are refused")
    func biases() throws {
        try expectRefused(set: ["attention_bias": true], ["\"attention_bias\": true"])
        try expectRefused(set: ["mlp_bias": true], ["\"mlp_bias\": true"])
        #expect(try load(set: ["attention_bias": false, "mlp_bias": false]).config.layerCount == 2)
        try expectRefused(set: ["attention_bias": 1], ["\"attention_bias\" is not true or false"])
        try expectRefused(edit: { $0.add("model.layers.1.self_attn.q_proj.bias", floats: Array(repeating: 0, count: 64), shape: [64], dtype: "F32") },
                          ["does not use", "model.layers.1.self_attn.q_proj.bias"])
        try expectRefused(edit: { $0.add("model.layers.0.mlp.down_proj.bias", floats: Array(repeating: 0, count: 64), shape: [64], dtype: "F32") },
                          ["model.layers.0.mlp.down_proj.bias"])
    }

    @Test("unused tensors are refused; the known harmless ones load")
    func unusedTensors() throws {
        try expectRefused(edit: { $0.add("model.layers.0.post_feedforward_layernorm.weight", floats: Array(repeating: 1, count: 64), shape: [64], dtype: "F32") },
                          ["model.layers.0.post_feedforward_layernorm.weight"])
        // Rotary buffers saved by old transformers versions.
        let m = try load(edit: { $0.add("model.layers.0.self_attn.rotary_emb.inv_freq", floats: Array(repeating: 1, count: 8), shape: [8], dtype: "F32") })
        #expect(m.config.layerCount == 2)
    }

    @Test("head_dim and num_key_value_heads inconsistent with the tensors are named with the value to set")
    func headShapes() throws {
        try expectRefused(set: ["head_dim": 32], ["head dimension 32", "\"head_dim\"", "set \"head_dim\": 16"])
        try expectRefused(set: ["num_key_value_heads": 4], ["\"num_key_value_heads\" (4)", "set \"num_key_value_heads\": 2"])
        try expectRefused(remove: ["num_key_value_heads"], ["num_key_value_heads", "absent", "set \"num_key_value_heads\": 2"])
        #expect(try load(set: ["head_dim": 16]).config.headDim == 16)
    }

    @Test("other fields: rms_norm_eps required, tied output needs the flag, quantised checkpoints and sliding windows refused")
    func otherFields() throws {
        try expectRefused(remove: ["rms_norm_eps"], ["\"rms_norm_eps\" is missing"])
        #expect(try load(set: ["rms_norm_eps": 1e-6]).config.rmsNormEps == 1e-6)
        try expectRefused(edit: { $0.tensors.removeAll { $0.name == "lm_head.weight" } }, ["lm_head.weight is missing", "tie_word_embeddings"])
        try expectRefused(remove: ["tie_word_embeddings"], edit: { $0.tensors.removeAll { $0.name == "lm_head.weight" } }, ["absent (false)"])
        let tied = try load(set: ["tie_word_embeddings": true], edit: { $0.tensors.removeAll { $0.name == "lm_head.weight" } })
        #expect(tied.config.tiedEmbeddings)
        try expectRefused(set: ["quantization_config": ["quant_method": "gptq", "bits": 4]], ["quantization_config"])
        try expectRefused(set: ["sliding_window": 4096], ["sliding_window"])
        #expect(try load(set: ["sliding_window": NSNull()]).config.layerCount == 2)
        try expectRefused(set: ["architectures": ["LlamaForSequenceClassification"]], ["LlamaForSequenceClassification"])
    }
}

@Suite("GGUF llama metadata: keys that change the math are read or refused")
struct GGUFMetadataAuditTests {
    let tiny = TinyLlama(.small(seed: 4))
    var writer: GGUFWriter { tiny.ggufWriter(TinyWeightTypes(.q8_0)) }

    func load(_ w: GGUFWriter) throws -> LanguageModel {
        let dir = try TempDir("gguf-audit")
        defer { dir.remove() }
        return try ModelLoader.load(path: try dir.write(w.bytes(), to: "m.gguf"))
    }

    @Test("scaling types: none, linear (also the older rope.scale_linear), llama3 read; yarn, longrope, unknown refused")
    func scalingTypes() throws {
        var w = writer
        w.set("llama.rope.scaling.type", .string("none"))
        #expect(try load(w).config.ropeScaling == nil)
        w.set("llama.rope.scaling.type", .string("linear"))
        w.set("llama.rope.scaling.factor", .f32(4))
        #expect(try load(w).config.ropeScaling == .linear(factor: 4))
        w = writer
        w.set("llama.rope.scale_linear", .f32(2))
        #expect(try load(w).config.ropeScaling == .linear(factor: 2))
        w = writer
        w.set("llama.rope.scaling.type", .string("linear"))
        try expectLoadError(w.bytes(), ["llama.rope.scaling.factor is missing"])
        w.set("llama.rope.scaling.type", .string("none"))
        w.set("llama.rope.scaling.factor", .f32(4))
        try expectLoadError(w.bytes(), ["\"none\" but the scaling factor is 4"])
        for type in ["yarn", "longrope", "mystery"] {
            w = writer
            w.set("llama.rope.scaling.type", .string(type))
            w.set("llama.rope.scaling.factor", .f32(4))
            try expectLoadError(w.bytes(), ["llama.rope.scaling.type \"\(type)\" is not supported", "none, linear, llama3"])
        }
        w = writer
        w.set("llama.rope.scaling.attn_factor", .f32(0.5))
        try expectLoadError(w.bytes(), ["llama.rope.scaling.attn_factor = 0.5"])
        w.set("llama.rope.scaling.attn_factor", .f32(1))
        #expect(try load(w).config.ropeScaling == nil)
    }

    @Test("llama3 scaling needs all its parameters and no rope_freqs tensor beside it")
    func llama3Parameters() throws {
        var w = writer
        w.set("llama.rope.scaling.type", .string("llama3"))
        w.set("llama.rope.scaling.factor", .f32(8))
        w.set("llama.rope.scaling.high_freq_factor", .f32(4))
        w.set("llama.rope.scaling.original_context_length", .u32(8192))
        try expectLoadError(w.bytes(), ["llama.rope.scaling.low_freq_factor is missing"])
        w.set("llama.rope.scaling.low_freq_factor", .f32(1))
        #expect(try load(w).config.ropeScaling == .llama3(Llama3RopeScaling(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContextLength: 8192)))
        w.remove("llama.rope.scaling.original_context_length")
        try expectLoadError(w.bytes(), ["original_context_length"])
        w.set("llama.rope.scaling.original_context_length", .u32(8192))
        w.add("rope_freqs.weight", floats: Array(repeating: 1, count: 8), shape: [8], type: .f32)
        try expectLoadError(w.bytes(), ["applied twice"])
    }

    @Test("RMSNorm epsilon and RoPE base are read; a missing epsilon is refused")
    func epsilonAndBase() throws {
        var w = writer
        w.set("llama.attention.layer_norm_rms_epsilon", .f32(1e-6))
        w.set("llama.rope.freq_base", .f32(50000))
        let m = try load(w)
        #expect(m.config.rmsNormEps == 1e-6 && m.config.ropeTheta == 50000)
        w.remove("llama.attention.layer_norm_rms_epsilon")
        try expectLoadError(w.bytes(), ["llama.attention.layer_norm_rms_epsilon is missing"])
        w = writer
        w.set("llama.rope.freq_base", .string("fast"))
        try expectLoadError(w.bytes(), ["llama.rope.freq_base is not a number"])
    }

    @Test("head dimensions: key/value lengths read; partial rotary and unequal value length refused")
    func headDimensions() throws {
        var w = writer
        w.set("llama.attention.key_length", .u32(16))
        w.set("llama.attention.value_length", .u32(16))
        #expect(try load(w).config.headDim == 16)
        w.set("llama.attention.value_length", .u32(8))
        try expectLoadError(w.bytes(), ["llama.attention.value_length = 8"])
        w = writer
        w.set("llama.rope.dimension_count", .u32(8))
        try expectLoadError(w.bytes(), ["llama.rope.dimension_count = 8", "head dimension is 16", "partial rotary"])
    }

    @Test("mixture of experts, split files and unknown llama keys are refused; known harmless keys load")
    func unknownKeys() throws {
        var w = writer
        w.set("llama.expert_count", .u32(0))
        w.set("llama.expert_used_count", .u32(0))
        w.set("llama.rope.scaling.finetuned", .bool(false))
        w.set("general.license", .string("apache-2.0"))
        #expect(try load(w).config.layerCount == 2)
        w.set("llama.expert_count", .u32(8))
        try expectLoadError(w.bytes(), ["mixture-of-experts", "llama.expert_count = 8"])
        for key in ["llama.attention.sliding_window", "llama.logit_scale", "llama.attention.clamp_kqv", "llama.expert_shared_count"] {
            w = writer
            w.set(key, .f32(2))
            try expectLoadError(w.bytes(), ["metadata \(key) is not supported"])
        }
        w = writer
        w.set("split.count", .u16(3))
        try expectLoadError(w.bytes(), ["split into 3 files", "llama-gguf-split --merge"])
    }

    @Test("tensors the llama model does not use (biases, extra norms) are refused, naming the family")
    func unusedTensors() throws {
        for name in ["blk.0.attn_q.bias", "blk.1.ffn_down.bias", "blk.0.attn_q_norm.weight", "blk.0.attn_post_norm.weight"] {
            var w = writer
            w.add(name, floats: Array(repeating: 0, count: 64), shape: [64], type: .f32)
            try expectLoadError(w.bytes(), ["a llama model does not use", name])
        }
        var w = writer
        w.add("blk.0.attn_rot_embd", floats: Array(repeating: 0, count: 8), shape: [8], type: .f32)
        #expect(try load(w).config.layerCount == 2)
    }
}
