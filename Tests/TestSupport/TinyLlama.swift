import Foundation
import SiriusEngine

/// The shape of a tiny random Llama model.
public struct TinyLlamaSpec: Sendable, Equatable {
    public var vocab = 300
    public var hidden = 64
    public var intermediate = 128
    public var layers = 2
    public var heads = 4
    public var kvHeads = 2
    public var eps: Float = 1e-5
    public var ropeTheta: Double = 10000
    public var contextLength = 256
    public var tied = false
    public var seed: UInt64 = 1

    public init() {}
    public var headDim: Int { hidden / heads }

    /// hidden 64, intermediate 128, 2 layers, 4 heads over 2 KV heads (GQA), vocab 300.
    public static func small(tied: Bool = false, seed: UInt64 = 1) -> Self {
        var s = Self()
        s.tied = tied; s.seed = seed
        return s
    }

    /// Every matrix has rows of 256 (K-quant super-blocks): hidden 256, intermediate 256, head dim 64.
    public static func kQuant(tied: Bool = false, seed: UInt64 = 1) -> Self {
        var s = Self()
        s.hidden = 256; s.intermediate = 256; s.vocab = 272; s.tied = tied; s.seed = seed
        return s
    }
}

/// Storage types of a tiny model's tensors (norm vectors F32 unless said otherwise, as llama.cpp writes them).
public struct TinyWeightTypes: Sendable, CustomStringConvertible {
    public var layers: GGMLType
    public var embedding: GGMLType
    public var output: GGMLType
    public var norms: GGMLType = .f32
    public init(_ all: GGMLType) { layers = all; embedding = all; output = all }
    public init(layers: GGMLType, embedding: GGMLType, output: GGMLType, norms: GGMLType = .f32) {
        self.layers = layers; self.embedding = embedding; self.output = output; self.norms = norms
    }
    public var description: String {
        layers == embedding && layers == output ? "\(layers)" : "layers \(layers), embedding \(embedding), output \(output)"
    }
}

/// A tiny Llama model with random float weights in Hugging Face layout (`[out, in]`, row-major,
/// un-permuted Q/K rows), generated from `spec.seed` with `SeededRandom`.
public struct TinyLlama: Sendable {
    public var spec: TinyLlamaSpec
    public var embedding: [Float]
    public var layers: [ReferenceLlama.Layer]
    public var outputNorm: [Float]
    /// nil when tied.
    public var lmHead: [Float]?

    public init(_ spec: TinyLlamaSpec) {
        self.spec = spec
        var rng = SeededRandom(seed: spec.seed)
        func uniform(_ n: Int, _ a: Float) -> [Float] { (0..<n).map { _ in (rng.nextUnit() * 2 - 1) * a } }
        /// Rows of `cols` with standard deviation `gain / sqrt(cols)`.
        func matrix(_ rows: Int, _ cols: Int, gain: Float = 1) -> [Float] {
            uniform(rows * cols, gain * (3 / Float(cols)).squareRoot())
        }
        func norm() -> [Float] { uniform(spec.hidden, 0.25).map { 1 + $0 } }
        let s = spec, qDim = s.heads * s.headDim, kvDim = s.kvHeads * s.headDim
        embedding = uniform(s.vocab * s.hidden, 1)
        var ls: [ReferenceLlama.Layer] = []
        for _ in 0..<s.layers {
            ls.append(ReferenceLlama.Layer(
                attnNorm: norm(), wq: matrix(qDim, s.hidden, gain: 1.5), wk: matrix(kvDim, s.hidden, gain: 1.5),
                wv: matrix(kvDim, s.hidden), wo: matrix(s.hidden, qDim),
                ffnNorm: norm(), gate: matrix(s.intermediate, s.hidden), up: matrix(s.intermediate, s.hidden),
                down: matrix(s.hidden, s.intermediate)))
        }
        layers = ls
        outputNorm = norm()
        lmHead = s.tied ? nil : matrix(s.vocab, s.hidden, gain: 2)
    }

    // MARK: the Q/K permutation

    /// llama.cpp's `convert_hf_to_gguf.py` `permute`: per head, rows reshaped to (2, headDim/2) and
    /// transposed, so HF's half-split pairs (i, i+d/2) become adjacent rows (2i, 2i+1).
    public static func permuteRows(_ w: [Float], heads: Int, cols: Int) -> [Float] {
        let rows = w.count / cols, hd = rows / heads, half = hd / 2
        var out = [Float](repeating: 0, count: w.count)
        for h in 0..<heads {
            for i in 0..<half {
                for j in 0..<2 {
                    let dst = h * hd + 2 * i + j, src = h * hd + j * half + i
                    for c in 0..<cols { out[dst * cols + c] = w[src * cols + c] }
                }
            }
        }
        return out
    }

    /// The float weights after storing them as `types` (quantise, then dequantise with `RefQuant`).
    func roundTrip(_ w: [Float], cols: Int, _ type: GGMLType) -> [Float] {
        RefQuant.dequantize(RefQuant.quantize(w, rows: w.count / cols, cols: cols, as: type), type: type, count: w.count)
    }

    // MARK: GGUF

    /// The model as a GGUF file: llama metadata, Q/K rows permuted, matrices stored as `types`.
    public func ggufWriter(_ types: TinyWeightTypes, alignment: Int? = nil) -> GGUFWriter {
        let s = spec
        var g = GGUFWriter()
        g.alignment = alignment
        g.set("general.architecture", .string("llama"))
        g.set("general.name", .string("tiny-random-llama"))
        g.set("general.quantization_version", .u32(2))
        g.set("llama.context_length", .u32(UInt32(s.contextLength)))
        g.set("llama.embedding_length", .u32(UInt32(s.hidden)))
        g.set("llama.block_count", .u32(UInt32(s.layers)))
        g.set("llama.feed_forward_length", .u32(UInt32(s.intermediate)))
        g.set("llama.rope.dimension_count", .u32(UInt32(s.headDim)))
        g.set("llama.attention.head_count", .u32(UInt32(s.heads)))
        g.set("llama.attention.head_count_kv", .u32(UInt32(s.kvHeads)))
        g.set("llama.attention.layer_norm_rms_epsilon", .f32(s.eps))
        g.set("llama.rope.freq_base", .f32(Float(s.ropeTheta)))
        g.set("llama.vocab_size", .u32(UInt32(s.vocab)))
        g.add("token_embd.weight", floats: embedding, shape: [s.vocab, s.hidden], type: types.embedding)
        for (i, l) in layers.enumerated() {
            let p = "blk.\(i)."
            g.add(p + "attn_norm.weight", floats: l.attnNorm, shape: [s.hidden], type: types.norms)
            g.add(p + "attn_q.weight", floats: Self.permuteRows(l.wq, heads: s.heads, cols: s.hidden),
                  shape: [s.heads * s.headDim, s.hidden], type: types.layers)
            g.add(p + "attn_k.weight", floats: Self.permuteRows(l.wk, heads: s.kvHeads, cols: s.hidden),
                  shape: [s.kvHeads * s.headDim, s.hidden], type: types.layers)
            g.add(p + "attn_v.weight", floats: l.wv, shape: [s.kvHeads * s.headDim, s.hidden], type: types.layers)
            g.add(p + "attn_output.weight", floats: l.wo, shape: [s.hidden, s.heads * s.headDim], type: types.layers)
            g.add(p + "ffn_norm.weight", floats: l.ffnNorm, shape: [s.hidden], type: types.norms)
            g.add(p + "ffn_gate.weight", floats: l.gate, shape: [s.intermediate, s.hidden], type: types.layers)
            g.add(p + "ffn_up.weight", floats: l.up, shape: [s.intermediate, s.hidden], type: types.layers)
            g.add(p + "ffn_down.weight", floats: l.down, shape: [s.hidden, s.intermediate], type: types.layers)
        }
        g.add("output_norm.weight", floats: outputNorm, shape: [s.hidden], type: types.norms)
        if let lmHead { g.add("output.weight", floats: lmHead, shape: [s.vocab, s.hidden], type: types.output) }
        return g
    }

    /// The reference for the GGUF copy: the stored (quantised, permuted) weights, interleaved RoPE.
    public func ggufReference(_ types: TinyWeightTypes) -> ReferenceLlama {
        let s = spec
        let ls = layers.map { l in
            ReferenceLlama.Layer(
                attnNorm: roundTrip(l.attnNorm, cols: s.hidden, types.norms),
                wq: roundTrip(Self.permuteRows(l.wq, heads: s.heads, cols: s.hidden), cols: s.hidden, types.layers),
                wk: roundTrip(Self.permuteRows(l.wk, heads: s.kvHeads, cols: s.hidden), cols: s.hidden, types.layers),
                wv: roundTrip(l.wv, cols: s.hidden, types.layers), wo: roundTrip(l.wo, cols: s.heads * s.headDim, types.layers),
                ffnNorm: roundTrip(l.ffnNorm, cols: s.hidden, types.norms), gate: roundTrip(l.gate, cols: s.hidden, types.layers),
                up: roundTrip(l.up, cols: s.hidden, types.layers), down: roundTrip(l.down, cols: s.intermediate, types.layers))
        }
        return ReferenceLlama(vocab: s.vocab, hidden: s.hidden, intermediate: s.intermediate, heads: s.heads,
                              kvHeads: s.kvHeads, headDim: s.headDim, eps: Double(s.eps), ropeTheta: s.ropeTheta,
                              ropeStyle: .interleaved, embedding: roundTrip(embedding, cols: s.hidden, types.embedding),
                              layers: ls, outputNorm: roundTrip(outputNorm, cols: s.hidden, types.norms),
                              output: lmHead.map { roundTrip($0, cols: s.hidden, types.output) })
    }

    /// Writes the GGUF copy to a temporary file, loads it with `ModelLoader`, deletes the file (the
    /// mapping stays valid) and returns the model with its reference.
    public func loadGGUF(_ types: TinyWeightTypes) throws -> (model: LanguageModel, reference: ReferenceLlama) {
        let dir = try TempDir("tiny-gguf")
        defer { dir.remove() }
        let path = try dir.write(ggufWriter(types).bytes(), to: "tiny.gguf")
        return (try ModelLoader.load(path: path), ggufReference(types))
    }

    // MARK: safetensors

    /// config.json of the Hugging Face copy.
    public func configJSON(extra: [String: Any] = [:]) -> [String: Any] {
        let s = spec
        var j: [String: Any] = [
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "vocab_size": s.vocab, "hidden_size": s.hidden, "intermediate_size": s.intermediate,
            "num_hidden_layers": s.layers, "num_attention_heads": s.heads, "num_key_value_heads": s.kvHeads,
            "max_position_embeddings": s.contextLength, "rms_norm_eps": Double(s.eps), "rope_theta": s.ropeTheta,
            "tie_word_embeddings": s.tied, "hidden_act": "silu", "torch_dtype": "float32",
        ]
        for (k, v) in extra { j[k] = v }
        return j
    }

    /// The Hugging Face copy: un-permuted weights as `dtype` (F32, F16 or BF16).
    public func safetensorsWriter(dtype: String) -> SafetensorsWriter {
        let s = spec
        var w = SafetensorsWriter()
        w.add("model.embed_tokens.weight", floats: embedding, shape: [s.vocab, s.hidden], dtype: dtype)
        for (i, l) in layers.enumerated() {
            let p = "model.layers.\(i)."
            w.add(p + "input_layernorm.weight", floats: l.attnNorm, shape: [s.hidden], dtype: dtype)
            w.add(p + "self_attn.q_proj.weight", floats: l.wq, shape: [s.heads * s.headDim, s.hidden], dtype: dtype)
            w.add(p + "self_attn.k_proj.weight", floats: l.wk, shape: [s.kvHeads * s.headDim, s.hidden], dtype: dtype)
            w.add(p + "self_attn.v_proj.weight", floats: l.wv, shape: [s.kvHeads * s.headDim, s.hidden], dtype: dtype)
            w.add(p + "self_attn.o_proj.weight", floats: l.wo, shape: [s.hidden, s.heads * s.headDim], dtype: dtype)
            w.add(p + "post_attention_layernorm.weight", floats: l.ffnNorm, shape: [s.hidden], dtype: dtype)
            w.add(p + "mlp.gate_proj.weight", floats: l.gate, shape: [s.intermediate, s.hidden], dtype: dtype)
            w.add(p + "mlp.up_proj.weight", floats: l.up, shape: [s.intermediate, s.hidden], dtype: dtype)
            w.add(p + "mlp.down_proj.weight", floats: l.down, shape: [s.hidden, s.intermediate], dtype: dtype)
        }
        w.add("model.norm.weight", floats: outputNorm, shape: [s.hidden], dtype: dtype)
        if let lmHead { w.add("lm_head.weight", floats: lmHead, shape: [s.vocab, s.hidden], dtype: dtype) }
        return w
    }

    /// Writes `model.safetensors` and `config.json` into `directory`.
    public func writeSafetensors(to directory: String, dtype: String, config extra: [String: Any] = [:]) throws {
        try safetensorsWriter(dtype: dtype).write(to: directory + "/model.safetensors")
        let data = try JSONSerialization.data(withJSONObject: configJSON(extra: extra), options: [.sortedKeys])
        try data.write(to: URL(fileURLWithPath: directory + "/config.json"))
    }

    /// The reference for the Hugging Face copy stored as `dtype`: un-permuted weights, half-split RoPE.
    public func safetensorsReference(dtype: String) -> ReferenceLlama {
        let s = spec
        let t: GGMLType = dtype == "F16" ? .f16 : dtype == "BF16" ? .bf16 : .f32
        func rt(_ w: [Float]) -> [Float] { roundTrip(w, cols: w.count, t) }
        return ReferenceLlama(vocab: s.vocab, hidden: s.hidden, intermediate: s.intermediate, heads: s.heads,
                              kvHeads: s.kvHeads, headDim: s.headDim, eps: Double(s.eps), ropeTheta: s.ropeTheta,
                              ropeStyle: .halfSplit, embedding: rt(embedding),
                              layers: layers.map { l in
                                  ReferenceLlama.Layer(attnNorm: rt(l.attnNorm), wq: rt(l.wq), wk: rt(l.wk), wv: rt(l.wv),
                                                       wo: rt(l.wo), ffnNorm: rt(l.ffnNorm), gate: rt(l.gate),
                                                       up: rt(l.up), down: rt(l.down))
                              },
                              outputNorm: rt(outputNorm), output: lmHead.map(rt))
    }

    public func loadSafetensors(dtype: String) throws -> (model: LanguageModel, reference: ReferenceLlama) {
        let dir = try TempDir("tiny-st")
        defer { dir.remove() }
        try writeSafetensors(to: dir.path, dtype: dtype)
        return (try ModelLoader.load(path: dir.path), safetensorsReference(dtype: dtype))
    }

    /// `count` token ids from a seeded generator.
    public static func tokens(_ count: Int, vocab: Int, seed: UInt64) -> [Int32] {
        var rng = SeededRandom(seed: seed)
        return (0..<count).map { _ in Int32(rng.next() % UInt64(vocab)) }
    }
}
