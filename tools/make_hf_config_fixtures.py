#!/usr/bin/env python3
"""Tiny random Llama checkpoints saved by transformers, in both config.json layouts, with transformers'
greedy continuations: the fixtures of Tests/EngineTests/HFCheckpointTests.

transformers >= 5 writes the RoPE settings as "rope_parameters": {"rope_type", "rope_theta", ...}; older
versions wrote a top-level "rope_theta" and "rope_scaling": {...} or null. Each variant below is saved with
the installed transformers' `save_pretrained` (the current layout); the "legacy" variants then get the same
settings rewritten into the older layout. Every directory is loaded back by transformers from disk, and the
reference (greedy ids, one full forward + argmax per step, and the first step's logits) comes from that
reloaded model, so the fixture checks what transformers itself reads from each file.

Usage (a venv with `pip install torch==2.13.0 transformers gguf accelerate`):
    python tools/make_hf_config_fixtures.py --out Tests/EngineTests/Fixtures/hf_llama

With --smollm2 GGUF --smollm2-out DIR it also writes SmolLM2 as transformers saves it (fp32, ~540 MB,
not a fixture) and prints transformers' greedy ids for the issue's prompt, to compare with
`sirius-worker generate --model DIR ...`.
"""
import argparse
import json
import os
import shutil

import torch
import transformers
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM
from transformers_reference import greedy

THETA = 100000.0          # not the 10000 a loader would fall back to
LLAMA3 = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 256}
VARIANTS = {
    # name: (rope_parameters in the current layout, tied embeddings, legacy layout)
    "current_default": ({"rope_type": "default", "rope_theta": THETA}, True, False),
    "legacy_default": ({"rope_type": "default", "rope_theta": THETA}, True, True),
    "current_llama3": (dict({"rope_type": "llama3", "rope_theta": 500000.0}, **LLAMA3), False, False),
    "legacy_llama3": (dict({"rope_type": "llama3", "rope_theta": 500000.0}, **LLAMA3), False, True),
    "current_linear": ({"rope_type": "linear", "rope_theta": THETA, "factor": 4.0}, False, False),
}
NEW_TOKENS = 16
PROMPT_LEN = 12


def to_legacy(cfg):
    """The same settings in the pre-5 layout: top-level rope_theta, rope_scaling (null when default)."""
    rp = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rp.pop("rope_theta")
    kind = rp.pop("rope_type")
    cfg["rope_scaling"] = None if kind == "default" else dict({"rope_type": kind}, **rp)
    return cfg


def make_variant(out, name, rope, tied, legacy, seed):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      rms_norm_eps=1e-5, initializer_range=0.3, tie_word_embeddings=tied,
                      rope_parameters=dict(rope))
    model = LlamaForCausalLM(cfg).to(torch.float16)
    # Random norm weights too (transformers initialises them to 1).
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1 + 0.25 * (2 * torch.rand_like(p) - 1))
    d = os.path.join(out, name)
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(d, extra)):
            os.remove(os.path.join(d, extra))
    path = os.path.join(d, "config.json")
    with open(path) as fh:
        saved = json.load(fh)
    assert "rope_parameters" in saved and "rope_scaling" not in saved, "transformers no longer writes rope_parameters"
    if legacy:
        saved = to_legacy(saved)
        with open(path, "w") as fh:
            json.dump(saved, fh, indent=2, sort_keys=True)
    # The reference: what transformers reads back from the directory, computed in fp32.
    ref = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    rp = ref.config.rope_parameters
    for k, v in rope.items():
        assert rp.get(k) == v, (name, k, rp.get(k), v)
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, cfg.vocab_size, (PROMPT_LEN,), generator=g).tolist()
    out_ids, first, margin = greedy(ref, ids, NEW_TOKENS)
    assert margin > 1e-3, "argmax too close to call (%g); pick another seed" % margin
    inv = ref.model.rotary_emb.inv_freq.tolist()
    case = {"name": name, "legacy_layout": legacy, "tied": tied, "rope": rope,
            "prompt_ids": ids, "output_ids": out_ids, "first_logits": [float(x) for x in first],
            "min_argmax_margin": margin, "inv_freq": inv}
    with open(os.path.join(d, "expected.json"), "w") as fh:
        json.dump(case, fh, indent=1)
    print(name, "->", out_ids, "margin %.4f" % margin)


def smollm2(gguf, out, prompt, n):
    from transformers import AutoTokenizer
    dd, f = os.path.split(os.path.abspath(os.path.expanduser(gguf)))
    tok = AutoTokenizer.from_pretrained(dd, gguf_file=f)
    loaded = AutoModelForCausalLM.from_pretrained(dd, gguf_file=f, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained (its quantizer is not serializable): copy the dequantised
    # weights into a plain model of the same config and save that.
    cfg = loaded.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    model = LlamaForCausalLM(cfg).to(torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(out)
    tok.save_pretrained(out)
    with open(os.path.join(out, "config.json")) as fh:
        print("config.json rope:", json.load(fh).get("rope_parameters"))
    ref = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    new, _, margin = greedy(ref, ids, n)
    print("prompt ids:", ids)
    print("transformers greedy ids:", new, "(min margin %.4f)" % margin)
    print("text:", repr(tok.decode(new)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="Tests/EngineTests/Fixtures/hf_llama")
    ap.add_argument("--smollm2")
    ap.add_argument("--smollm2-out")
    ap.add_argument("--prompt", default="The three primary colors are")
    ap.add_argument("--new-tokens", type=int, default=12)
    args = ap.parse_args()
    if args.smollm2:
        smollm2(args.smollm2, args.smollm2_out, args.prompt, args.new_tokens)
        return
    os.makedirs(args.out, exist_ok=True)
    for i, (name, (rope, tied, legacy)) in enumerate(VARIANTS.items()):
        # The same seed for a variant and its legacy twin: same weights, only the config layout differs.
        make_variant(args.out, name, rope, tied, legacy, seed=100 + 10 * (i // 2 if i < 4 else 2))
    with open(os.path.join(args.out, "README.md"), "w") as fh:
        fh.write("Made by tools/make_hf_config_fixtures.py with transformers %s, torch %s.\n"
                 % (transformers.__version__, torch.__version__))


if __name__ == "__main__":
    main()
