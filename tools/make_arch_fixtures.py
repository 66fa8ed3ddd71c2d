#!/usr/bin/env python3
"""Tiny random models of the non-Llama families, made with transformers' own config and model classes,
with transformers' greedy continuations: the fixtures of Tests/EngineTests/ArchitectureTests.

Each variant is saved by `save_pretrained` (config.json + model.safetensors) and, where the GGUF format
can describe it, also written as a GGUF file the way llama.cpp's converter writes that architecture (its
tensor names, its metadata keys, Gemma's norm weights stored as 1 + w, no Q/K permutation for NeoX-style
RoPE). The reference comes from the directory reloaded by transformers in fp32, eager attention: the
first step's logits and the greedy ids, one full forward + argmax per step. Prompts are longer than the
sliding window, so the window is exercised in prefill and in decoding.

Usage (a venv with `pip install torch==2.13.0 transformers gguf accelerate`):
    python tools/make_arch_fixtures.py --out Tests/EngineTests/Fixtures/arch
"""
import argparse
import json
import os
import shutil

import numpy as np
import torch
import transformers
from transformers import (AutoModelForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig, MistralConfig, MistralForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM)
from transformers_reference import greedy

NEW_TOKENS = 16
PROMPT_LEN = 21      # > the sliding window (8) below


def save_and_reference(model, out, name, gguf_writer, seed):
    """Saves `model` with save_pretrained (and as GGUF), reloads it in fp32 with eager attention, and
    returns the directory, the reloaded model, a random prompt and transformers' greedy continuation."""
    d = os.path.join(out, name)
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d)
    if os.path.exists(os.path.join(d, "generation_config.json")):
        os.remove(os.path.join(d, "generation_config.json"))
    ref = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    if gguf_writer:
        gguf_writer(ref, ref.config, os.path.join(d, "model.gguf"))
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(3, ref.config.vocab_size, (PROMPT_LEN,), generator=g).tolist()
    out_ids, first, margin = greedy(ref, ids, NEW_TOKENS)
    assert margin > 1e-3, "argmax too close to call (%g); pick another seed" % margin
    return d, ref, ids, out_ids, first, margin


def randomize_norms(model, shift):
    """Norm weights away from their initial value (Gemma initialises w = 0, i.e. a factor 1 + w = 1)."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(shift + 0.25 * (2 * torch.rand_like(p) - 1))


def gguf_writer(path, arch, model, cfg, rope_theta):
    """A GGUF writer with the metadata every architecture here shares, and the model's tensors as fp32."""
    import gguf
    w = gguf.GGUFWriter(path, arch)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(rope_theta)
    return w, {k: v.detach().to(torch.float32).numpy() for k, v in model.state_dict().items()}


def finish_gguf(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_gemma3_gguf(model, cfg, path):
    w, sd = gguf_writer(path, "gemma3", model, cfg, cfg.rope_parameters["full_attention"]["rope_theta"])
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_sliding_window(cfg.sliding_window)

    def norm(name):   # llama.cpp's converter stores Gemma's (1 + w)
        return (sd[name] + 1).astype(np.float32)

    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    for i in range(cfg.num_hidden_layers):
        p, b = "model.layers.%d." % i, "blk.%d." % i
        w.add_tensor(b + "attn_norm.weight", norm(p + "input_layernorm.weight"))
        w.add_tensor(b + "attn_q.weight", sd[p + "self_attn.q_proj.weight"])
        w.add_tensor(b + "attn_k.weight", sd[p + "self_attn.k_proj.weight"])
        w.add_tensor(b + "attn_v.weight", sd[p + "self_attn.v_proj.weight"])
        w.add_tensor(b + "attn_output.weight", sd[p + "self_attn.o_proj.weight"])
        w.add_tensor(b + "attn_q_norm.weight", norm(p + "self_attn.q_norm.weight"))
        w.add_tensor(b + "attn_k_norm.weight", norm(p + "self_attn.k_norm.weight"))
        w.add_tensor(b + "post_attention_norm.weight", norm(p + "post_attention_layernorm.weight"))
        w.add_tensor(b + "ffn_norm.weight", norm(p + "pre_feedforward_layernorm.weight"))
        w.add_tensor(b + "post_ffw_norm.weight", norm(p + "post_feedforward_layernorm.weight"))
        w.add_tensor(b + "ffn_gate.weight", sd[p + "mlp.gate_proj.weight"])
        w.add_tensor(b + "ffn_up.weight", sd[p + "mlp.up_proj.weight"])
        w.add_tensor(b + "ffn_down.weight", sd[p + "mlp.down_proj.weight"])
    w.add_tensor("output_norm.weight", norm("model.norm.weight"))
    finish_gguf(w)


# name: (extra config, also written as GGUF)
GEMMA3_VARIANTS = {
    # llama.cpp's fixed choices (pattern 6, local base 10000, scores scaled by 1/sqrt(head_dim)): GGUF too.
    "gemma3": ({}, True),
    # Fields a GGUF cannot carry: an explicit layer pattern and query_pre_attn_scalar != head_dim.
    "gemma3_layer_types": ({"layer_types": ["sliding_attention", "full_attention", "sliding_attention",
                                            "sliding_attention", "full_attention", "sliding_attention"],
                            "query_pre_attn_scalar": 24}, False),
}


def make_gemma3(out, name, extra, with_gguf, seed):
    torch.manual_seed(seed)
    kw = dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=6,
              num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
              rms_norm_eps=1e-6, initializer_range=0.1, sliding_window=8, query_pre_attn_scalar=16,
              rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 100000.0},
                               "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
              tie_word_embeddings=True, pad_token_id=0, bos_token_id=2, eos_token_id=1)
    kw.update(extra)
    cfg = Gemma3TextConfig(**kw)
    model = Gemma3ForCausalLM(cfg).to(torch.float32)
    randomize_norms(model, 0.0)
    d, ref, ids, out_ids, first, margin = save_and_reference(model, out, name, write_gemma3_gguf if with_gguf else None, seed)
    assert ref.config.layer_types == cfg.layer_types
    case = {"name": name, "architecture": "gemma3", "gguf": with_gguf, "sliding_window": cfg.sliding_window,
            "layer_types": cfg.layer_types, "prompt_ids": ids, "output_ids": out_ids,
            "first_logits": [float(x) for x in first], "min_argmax_margin": margin}
    with open(os.path.join(d, "expected.json"), "w") as fh:
        json.dump(case, fh, indent=1)
    print(name, "->", out_ids, "margin %.4f" % margin)


def permute_for_llama_cpp(w, heads):
    """llama.cpp's converter reorders the rows of q/k for its adjacent-pair RoPE (facts of the format)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_llama_like_gguf(model, cfg, path, arch, permute_qk, biases):
    """A Llama-shaped model as llama.cpp's converter writes it: `arch`'s tensor names, q/k rows permuted
    for adjacent-pair RoPE (llama) or left as they are (NeoX RoPE: qwen2), q/k/v biases when present."""
    w, sd = gguf_writer(path, arch, model, cfg, cfg.rope_parameters["rope_theta"])
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    if head_dim != cfg.hidden_size // cfg.num_attention_heads:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    heads = {"q": cfg.num_attention_heads, "k": cfg.num_key_value_heads}
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    for i in range(cfg.num_hidden_layers):
        p, b = "model.layers.%d." % i, "blk.%d." % i
        w.add_tensor(b + "attn_norm.weight", sd[p + "input_layernorm.weight"])
        for x in ("q", "k", "v"):
            weight = sd[p + "self_attn.%s_proj.weight" % x]
            w.add_tensor(b + "attn_%s.weight" % x, permute_for_llama_cpp(weight, heads[x]) if permute_qk and x in heads else weight)
            if biases:
                w.add_tensor(b + "attn_%s.bias" % x, sd[p + "self_attn.%s_proj.bias" % x])
        w.add_tensor(b + "attn_output.weight", sd[p + "self_attn.o_proj.weight"])
        w.add_tensor(b + "ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
        w.add_tensor(b + "ffn_gate.weight", sd[p + "mlp.gate_proj.weight"])
        w.add_tensor(b + "ffn_up.weight", sd[p + "mlp.up_proj.weight"])
        w.add_tensor(b + "ffn_down.weight", sd[p + "mlp.down_proj.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    finish_gguf(w)


def write_qwen2_gguf(model, cfg, path):
    """Qwen2: arch qwen2, q/k/v biases, no Q/K permutation (NeoX RoPE)."""
    write_llama_like_gguf(model, cfg, path, "qwen2", permute_qk=False, biases=True)


def write_mistral_gguf(model, cfg, path):
    """Mistral: architecture llama (Q/K permuted, head dimension as key_length), and no sliding window
    (the llama GGUF has no key for it)."""
    write_llama_like_gguf(model, cfg, path, "llama", permute_qk=True, biases=False)


LLAMA_LIKE = dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6, initializer_range=0.1,
                  tie_word_embeddings=False, rope_parameters={"rope_type": "default", "rope_theta": 100000.0})
# name: (config class, model class, extra config, GGUF writer or None)
OTHER_VARIANTS = {
    # Qwen2 as llama.cpp runs it (no window): safetensors and GGUF.
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, {}, write_qwen2_gguf),
    # Qwen2's sliding window on its upper layers (GGUF has no key for it).
    "qwen2_window": (Qwen2Config, Qwen2ForCausalLM, {"use_sliding_window": True, "sliding_window": 8, "max_window_layers": 2}, None),
    # Mistral: the window on every layer (llama.cpp converts Mistral to a llama GGUF, without the window).
    "mistral": (MistralConfig, MistralForCausalLM, {"sliding_window": 8, "head_dim": 16}, None),
    # Mistral without a window, also as the llama GGUF llama.cpp's converter writes for it.
    "mistral_no_window": (MistralConfig, MistralForCausalLM, {"sliding_window": None, "head_dim": 16}, write_mistral_gguf),
}


def make_other(out, name, cfg_cls, model_cls, extra, gguf_writer, seed):
    torch.manual_seed(seed)
    kw = dict(LLAMA_LIKE)
    kw.update(extra)
    cfg = cfg_cls(**kw)
    model = model_cls(cfg).to(torch.float32)
    randomize_norms(model, 1.0)
    with torch.no_grad():            # biases away from their zero initialisation
        for n, p in model.named_parameters():
            if n.endswith(".bias"):
                p.copy_(0.3 * (2 * torch.rand_like(p) - 1))
    d, ref, ids, out_ids, first, margin = save_and_reference(model, out, name, gguf_writer, seed)
    window = getattr(ref.config, "sliding_window", None)
    types = getattr(ref.config, "layer_types", None) or ["sliding_attention" if window else "full_attention"] * cfg.num_hidden_layers
    case = {"name": name, "architecture": ref.config.model_type, "gguf": gguf_writer is not None,
            "gguf_architecture": "llama" if gguf_writer is write_mistral_gguf else ref.config.model_type,
            "sliding_window": window or 0, "layer_types": types, "prompt_ids": ids, "output_ids": out_ids,
            "first_logits": [float(x) for x in first], "min_argmax_margin": margin}
    with open(os.path.join(d, "expected.json"), "w") as fh:
        json.dump(case, fh, indent=1)
    print(name, "->", out_ids, "margin %.4f" % margin, "layer types", types)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="Tests/EngineTests/Fixtures/arch")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for i, (name, (extra, with_gguf)) in enumerate(GEMMA3_VARIANTS.items()):
        make_gemma3(args.out, name, extra, with_gguf, seed=300 + 10 * i)
    for i, (name, (cfg_cls, model_cls, extra, writer)) in enumerate(OTHER_VARIANTS.items()):
        make_other(args.out, name, cfg_cls, model_cls, extra, writer, seed=400 + 10 * i)
    import gguf
    with open(os.path.join(args.out, "README.md"), "w") as fh:
        fh.write("Made by tools/make_arch_fixtures.py with transformers %s, torch %s, gguf-py %s.\n"
                 % (transformers.__version__, torch.__version__, getattr(gguf, "__version__", "?")))


if __name__ == "__main__":
    main()
